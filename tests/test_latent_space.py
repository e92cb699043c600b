"""Latent-space interpretation: the metrics on latents with a known answer, the notebook run
headless on a tiny checkpoint, and the shift path raising the judge's target probability."""
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from LatentSpaceInterpretation import latent_space as ls

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "LatentSpaceInterpretation" / "latent_space_interpretation.ipynb"


# --------------------------------------------------------------------------- latents with a known answer
def _clusters(n_genres=4, per_genre=30, dim=6, gap=10.0, noise=0.5, seed=0):
    """Gaussian blobs at gap x e_g: mu [G * n, D] and genre labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_genres), per_genre)
    centres = gap * np.eye(n_genres, dim)
    return centres[labels] + noise * rng.standard_normal((len(labels), dim)), labels


def test_separated_genres_score_near_one_and_shuffled_labels_near_chance():
    mu, labels = _clusters()
    good = ls.separation_metrics(mu, labels)
    assert good["knn_accuracy"] > 0.98 and good["silhouette"] > 0.8
    assert good["chance"] == pytest.approx(0.25) and good["knn_folds"] == 5 and not good["notes"]

    shuffled = np.random.default_rng(1).permutation(labels)
    bad = ls.separation_metrics(mu, shuffled)
    assert abs(bad["knn_accuracy"] - 0.25) < 0.15, bad
    assert abs(bad["silhouette"]) < 0.1, bad


def test_grouped_folds_keep_windows_of_one_clip_together():
    # Each clip is its own tight blob with a random genre: windows identify their clip, not
    # their genre. Ungrouped folds score the siblings; grouped folds see through it.
    rng = np.random.default_rng(0)
    n_clips, per_clip = 40, 4
    clip_genre = np.tile(np.arange(4), n_clips // 4)
    centres = rng.standard_normal((n_clips, 8)) * 5.0
    clip = np.repeat(np.arange(n_clips), per_clip)
    mu = centres[clip] + 0.05 * rng.standard_normal((len(clip), 8))
    labels = clip_genre[clip]
    leaky = ls.separation_metrics(mu, labels, k=1)
    honest = ls.separation_metrics(mu, labels, groups=clip, k=1)
    assert leaky["knn_accuracy"] > 0.95
    assert honest["grouped"] and honest["knn_accuracy"] < 0.5


def test_degenerate_input_gives_nan_and_a_note():
    mu, labels = _clusters(n_genres=2, per_genre=1)
    out = ls.separation_metrics(mu, labels)
    assert math.isnan(out["knn_accuracy"]) and any("knn_accuracy" in n for n in out["notes"])
    with pytest.raises(ValueError, match="labels: expected 2 labels"):
        ls.separation_metrics(mu, [0, 1, 1])
    with pytest.raises(ValueError, match="mu: holds 1 NaN"):
        ls.separation_metrics(np.array([[0.0, np.nan], [1.0, 1.0]]), [0, 1])


def test_cosine_matrix_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(0)
    means = rng.standard_normal((10, 16))
    attrs = ls.attribute_vectors(means)
    assert np.allclose(attrs.sum(0), 0.0)                    # deviations from the overall mean
    cos = ls.cosine_matrix(attrs)
    assert cos.shape == (10, 10)
    assert np.allclose(np.diag(cos), 1.0) and np.array_equal(cos, cos.T)
    assert np.all(np.abs(cos) <= 1.0)
    # Ten vectors that sum to zero: their cosines with the others average below zero.
    assert cos[~np.eye(10, dtype=bool)].mean() < 0
    two = ls.cosine_matrix([[1.0, 2.0], [-2.0, -4.0], [0.0, 0.0]])
    assert two[0, 1] == pytest.approx(-1.0) and np.isnan(two[2]).all()


def test_active_units_count_live_dimensions_and_kl_is_zero_at_the_prior():
    rng = np.random.default_rng(0)
    mu = np.concatenate([rng.standard_normal((200, 5)),              # live: variance ~1
                         0.01 * rng.standard_normal((200, 3))], 1)   # dead: variance ~1e-4
    assert ls.active_units(mu) == 5
    assert ls.active_units(mu, threshold=1e-6) == 8
    var = ls.variance_per_dim(mu)
    assert var.shape == (8,) and np.all(var[5:] < 1e-3)
    assert np.allclose(ls.kl_per_dim(np.zeros((4, 3)), np.zeros((4, 3))), 0.0)
    kl = ls.kl_per_dim(mu, np.zeros_like(mu))
    assert kl.shape == (8,) and np.all(kl[:5] > 0.3) and np.all(kl[5:] < 1e-3)


def test_genre_spread_and_means():
    mu, labels = _clusters(n_genres=3, per_genre=20, gap=10.0, noise=0.1)
    spread = ls.genre_spread(mu, labels, ["blues", "jazz", "rock"])
    assert set(spread["per_genre"]) == {"blues", "jazz", "rock"}
    assert spread["radius_to_distance"] < 0.05
    assert spread["mean_centroid_distance"] == pytest.approx(10 * math.sqrt(2), rel=0.02)
    means = ls.genre_means(mu, labels, 4)
    assert np.allclose(means[1], mu[labels == 1].mean(0)) and np.isnan(means[3]).all()


def test_collapse_epoch_marks_a_lasting_collapse(tmp_path):
    log = tmp_path / "log.csv"
    active = [3, 10, 14, 15, 12, 6, 3, 2, 1, 1]
    log.write_text("epoch,active_units,latent_dim,train_kl_raw,val_kl_raw,train_beta,train_recon\n" + "".join(
        f"{e + 1},{a},16,{0.1 * a},{0.1 * a},{min(1.0, e / 5)},0.1\n" for e, a in enumerate(active)))
    hist = ls.read_log(log)
    assert hist["epoch"].tolist() == list(range(1, 11))
    assert ls.collapse_epoch(hist, fraction=0.25) == 7          # below 4 units from epoch 7 on (epoch 1 recovers)
    assert ls.collapse_epoch(hist, latent_dim=16, fraction=0.05) is None
    png = ls.plot_history(hist, tmp_path / "history.png")
    import matplotlib.image as mpimg
    assert mpimg.imread(png).ndim == 3
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        ls.read_log(tmp_path / "missing.csv")


def test_path_pairs_spread_over_genres_and_never_target_the_source():
    from SlicingDataLoading import FileRecord
    recs = [FileRecord(Path(f"{g}.{i:05d}.wav"), g) for g in ("blues", "jazz", "rock") for i in range(3)]
    pairs = ls.path_pairs(recs, n_genres=10, n=5)
    assert [r.genre for r, _ in pairs] == ["blues", "jazz", "rock", "blues", "jazz"]
    assert all(r.label != t for r, t in pairs) and len({t for _, t in pairs}) > 1


def test_bad_arguments_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no best.pt under"):
        ls.newest_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="unknown method 'umap'"):
        ls.embed_2d(np.zeros((5, 3)), "umap")
    with pytest.raises(ValueError, match="at least two genres"):
        ls.attribute_vectors(np.zeros((1, 4)))


# --------------------------------------------------------------------------- with a model


@pytest.fixture(scope="module")
def judge_file(tiny_checkpoint, tmp_path_factory):
    """A judge fitted on the synthetic training split through ls.ensure_judge, saved to a file."""
    from SlicingDataLoading import DataLoad
    from transfer import GenreTransfer
    tr = GenreTransfer.from_checkpoint(tiny_checkpoint)
    out = tmp_path_factory.mktemp("judge")
    loader = DataLoad(tr.state["data"]["data_path"], split_mode=tr.state["data"]["split"], progress=False)
    judge = ls.ensure_judge(None, GenreTransfer(tr.model, tr.state, judge=None), loader, out)
    assert judge.heldout_accuracy is not None
    return judge.to_file(out / "judge.npz")


def test_notebook_runs_headless_and_writes_figures(tiny_checkpoint, synthetic_root, judge_file, tmp_path):
    import matplotlib.image as mpimg
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:                                    # committed without outputs
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    params = nb.cells[0]
    assert params.cell_type == "code" and "CHECKPOINT" in params.source
    out = tmp_path / "latent"
    values = dict(CHECKPOINT=str(tiny_checkpoint), DATA=str(synthetic_root), SPLIT="all", OUT=str(out),
                  JUDGE=str(judge_file), LEVEL="window", ALPHAS=[0.0, 1.0, 2.0], PATH_CLIPS=2,
                  MAX_SECONDS=None, TSNE=True)
    params.source = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    NotebookClient(nb, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(ROOT)}}).execute(env=env)

    result = json.loads((out / ls.RESULTS_FILE).read_text())
    expected = {"embedding_pca", "embedding_tsne", "genre_cosine", "genre_spread", "latent_units",
                "training_history", "transfer_path"}
    assert set(result["figures"]) == expected
    for name in result["figures"].values():
        img = mpimg.imread(out / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    sep, units = result["separation"], result["units"]
    numbers = [sep["silhouette"], sep["knn_accuracy"], result["spread"]["radius_to_distance"], units["kl_total"],
               *units["kl_per_dim"], *units["variance_per_dim"], *result["transfer_path"]["mean_target_prob"]]
    assert all(isinstance(v, float) and math.isfinite(v) for v in numbers), numbers
    cos = np.array(result["attributes"]["cosine"], dtype=float)
    assert cos.shape == (10, 10) and np.allclose(np.diag(cos), 1.0)
    from trainer import load_model
    assert 0 <= units["active_units"] <= result["latent_dim"] == load_model(tiny_checkpoint)[0].cfg.latent_channels
    assert result["n"] == 30 and sep["grouped"]
    assert len(result["transfer_path"]["target_prob"]) == 2
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "kNN genre accuracy" in printed


# The shift path is only meaningful when the latent carries genre. The session's tiny
# checkpoint is conditional (the decoder is told the source genre) and trains a latent genre
# adversary for two epochs, and its encoder sees only the pitch-harmonic view. This
# checkpoint lets the latent carry genre: the whole mel in, a plain latent sequence, no
# adversary, an unconditional decoder, a 32-unit latent, a small KL weight, and 15 short
# epochs without an adversarial phase (about 10-25 s on 2 cores).
PATH_CHECKPOINT_SETTINGS = ["model.encoder_view=mel", "model.freq_latent=False",
                            "model.conditional=False", "model.adversary=False", "train.adv_weight=0.0",
                            "model.latent_dim=32", "train.beta_max=0.01", "train.lr=0.003",
                            "train.batch_size=2", "train.gan_start=-1"]


@pytest.fixture(scope="module")
def genre_latent_checkpoint(synthetic_root, tmp_path_factory, one_thread):
    import trainer
    out = tmp_path_factory.mktemp("genre_latent_run")
    t0 = time.time()
    best = trainer.main(["--data", str(synthetic_root), "--preset", "tiny", "--out", str(out),
                         "--epochs", "15", "--set", *PATH_CHECKPOINT_SETTINGS])
    print(f"genre-latent checkpoint: {time.time() - t0:.1f} s")
    return best


def test_shift_path_raises_the_judge_target_probability(genre_latent_checkpoint, judge_file, one_thread):
    from evaluation import GenreJudge
    from SlicingDataLoading import DataLoad
    from transfer import GenreTransfer

    tr = GenreTransfer.from_checkpoint(genre_latent_checkpoint)
    judge = GenreJudge.from_file(judge_file, progress=False)
    loader = DataLoad(tr.state["data"]["data_path"], split_mode=tr.state["data"]["split"], progress=False)
    records = ls.split_records(loader, "test")                 # one clip per genre, unseen in training
    pairs = ls.path_pairs(records, len(tr.genres), n=10)
    clips = [np.array(loader.cache.load(r.path, tr.audio.sample_rate), np.float32) for r, _ in pairs]
    alphas = [0.0, 0.5, 1.0, 1.5, 2.0]
    t0 = time.time()
    path = ls.mean_transfer_path(tr, clips, [(r.genre, tr.genres[t]) for r, t in pairs], alphas, judge,
                                 progress=False)
    print(f"10 paths x 5 alphas: {time.time() - t0:.1f} s")
    mean = path["mean_target_prob"]
    print("mean p(target) by alpha:", dict(zip(alphas, np.round(mean, 4).tolist())),
          f"Spearman {path['spearman']:.3f}, share of pairs raised {path['share_raised']:.2f}, "
          f"mean p(source) {np.round(path['mean_source_prob'], 4).tolist()}")
    assert path["target_prob"].shape == (10, 5)
    assert path["non_decreasing"], mean                         # monotonic on average ...
    assert mean[-1] > mean[0] and path["spearman"] > 0.9        # ... and really rising
    assert path["share_raised"] >= 0.5                          # for most clips, not just one
