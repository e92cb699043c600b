"""Tests for evaluation and the measures under it: the judge (judge), transfer baselines,
content and reconstruction (audio_metrics), latent (latent_metrics), metrics.json.

Clips are rendered in memory with synthetic_gtzan.render_clip (10 contents x 10 genres x
5 s at 16 kHz), once per module: contents 0-5 train the judge, contents 6-9 are held out
and serve as the synthetic reference renderings.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import audio_metrics as am  # noqa: E402
import evaluation as ev  # noqa: E402
import judge as jd  # noqa: E402
import latent_metrics as lm  # noqa: E402
from prepare_data import AudioConfig  # noqa: E402
from SlicingDataLoading import GENRES  # noqa: E402

SR = 16000
DURATION = 5.0
TRAIN_CONTENTS = range(0, 6)
TEST_CONTENTS = range(6, 10)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def clips():
    """{(content_id, genre): audio [T]} for 10 contents x 10 genres."""
    from synthetic_gtzan import render_clip
    return {(c, g): render_clip(c, g, sr=SR, duration=DURATION)
            for c in [*TRAIN_CONTENTS, *TEST_CONTENTS] for g in GENRES}


@pytest.fixture(scope="module")
def reference(clips):
    return {k: a for k, a in clips.items() if k[0] in TEST_CONTENTS}


@pytest.fixture(scope="module")
def chroma_ref(reference):
    return am.ChromaReference.from_audio(reference, SR)


@pytest.fixture(scope="module")
def judge(clips):
    train = [(a, g) for (c, g), a in clips.items() if c in TRAIN_CONTENTS]
    return jd.GenreJudge(progress=False).fit([a for a, _ in train], [g for _, g in train], SR)


@pytest.fixture(scope="module")
def transfer_case(reference):
    """Held-out sources, each with a target genre other than its own."""
    keys = sorted(reference)
    return dict(sources=[reference[k] for k in keys], content_ids=[c for c, _ in keys],
                source_genres=[g for _, g in keys],
                target_genres=[GENRES[(GENRES.index(g) + 1 + c % 9) % len(GENRES)] for c, g in keys])


def tone(seconds=2.0, sr=SR, f=440.0, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.01
    return (0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + noise).astype(np.float32)


# --------------------------------------------------------------------------- judge
def test_judge_features_names_shape_and_gain_invariance():
    x = tone(1.0)                                          # the shortest clip accepted
    f = jd.judge_features(x, SR)
    assert f.shape == (len(jd.JUDGE_FEATURE_NAMES),) and np.all(np.isfinite(f))
    assert tuple(jd._feature_dict(x, SR)) == jd.JUDGE_FEATURE_NAMES
    np.testing.assert_allclose(jd.judge_features(0.25 * x, SR), f, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="shorter than 1.0 s"):
        jd.judge_features(x[: SR // 2], SR)


def test_judge_held_out_contents_well_above_chance(judge, reference):
    keys = sorted(reference)
    acc = judge.evaluate([reference[k] for k in keys], [g for _, g in keys], SR)
    assert acc >= 0.8, acc                                 # chance is 0.1
    info = judge.info()
    assert info["heldout_accuracy"] == acc and info["n_train"] == 60 and info["n_test"] == 40
    proba = judge.predict_proba([reference[keys[0]], reference[keys[1]]], SR)
    assert proba.shape == (2, len(GENRES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_judge_save_load_identity(judge, reference, tmp_path):
    audios = [reference[k] for k in sorted(reference)[:5]]
    path = judge.to_file(tmp_path / "judge.npz")
    with np.load(path, allow_pickle=False) as z:           # arrays only
        assert "coef" in z.files
    loaded = jd.GenreJudge.from_file(path, progress=False)
    np.testing.assert_allclose(loaded.predict_proba(audios, SR), judge.predict_proba(audios, SR), atol=1e-12)
    assert loaded.info() == judge.info()


def test_judge_resamples_other_rates(judge, reference):
    import librosa
    keys = sorted(reference)[::4]
    at_sr = judge.predict([reference[k] for k in keys], SR)
    at_22k = judge.predict([librosa.resample(reference[k], orig_sr=SR, target_sr=22050) for k in keys], 22050)
    assert np.mean(at_sr == at_22k) >= 0.8


def test_single_cues_tell_genres_apart_far_worse_than_the_judge(clips, judge):
    train = [(a, g) for (c, g), a in clips.items() if c in TRAIN_CONTENTS]
    test = [(a, g) for (c, g), a in clips.items() if c in TEST_CONTENTS]
    args = ([a for a, _ in train], [g for _, g in train], [a for a, _ in test], [g for _, g in test], SR)
    judge_acc = judge.score(args[2], args[3], SR)
    for feature in ("rms", "centroid"):
        acc = jd.single_feature_accuracy(*args, feature)
        assert 0.0 <= acc < 0.5 and acc < judge_acc - 0.3, (feature, acc, judge_acc)
    with pytest.raises(ValueError, match="'pitch'"):
        jd.single_feature_accuracy(*args, "pitch")


def test_split_by_content_shares_no_content():
    ids = [c for c in range(10) for _ in GENRES]
    train, test = jd.split_by_content(ids, test_fraction=0.3, seed=1)
    assert len(train) + len(test) == len(ids) and len(test) == 30
    assert not {ids[i] for i in train} & {ids[i] for i in test}


# --------------------------------------------------------------------------- transfer
def test_identity_and_random_target_baselines(judge, reference, chroma_ref, transfer_case):
    base = ev.baseline_metrics(judge, reference=chroma_ref, pool=reference, sr=SR, **transfer_case)
    ident, rand = base["identity"], base["random_target"]
    assert ident["n"] == rand["n"] == 40
    assert ident["content_chroma_corr"] == pytest.approx(1.0)
    assert ident["content_retrieval"] >= 0.9, ident
    assert ident["success"] <= 0.15, ident                 # target != source: the judge says source
    assert rand["success"] >= 0.8, rand
    assert rand["content_retrieval"] <= 0.5, rand          # chance is 0.25 with 4 contents
    assert rand["content_chroma_corr"] < ident["content_chroma_corr"] - 0.3
    assert ident["content_retrieval_chance"] == pytest.approx(0.25)


def test_content_similarity_prefers_same_content_in_another_genre(reference):
    same = [am.content_similarity(reference[(c, "rock")], reference[(c, "jazz")], SR) for c in TEST_CONTENTS]
    other = [am.content_similarity(reference[(c, "rock")], reference[(c + 1 if c < 9 else 6, "jazz")], SR)
             for c in TEST_CONTENTS]
    assert np.mean(same) > np.mean(other) + 0.2, (same, other)
    x = reference[(6, "pop")]
    assert am.content_similarity(x, x, SR) == pytest.approx(1.0)
    assert am.content_similarity(x, x[: 3 * SR], SR) == pytest.approx(1.0, abs=0.05)   # trimmed to common length


def test_content_similarity_is_tempo_invariant(reference):
    import librosa
    x = reference[(7, "country")]
    faster = librosa.effects.time_stretch(x, rate=1.4)    # same pitches, 1.4 x the tempo
    aligned = am.content_similarity(x, faster, SR, max_stretch=1.0)
    searched = am.content_similarity(x, faster, SR)
    assert searched >= 0.8 and searched > aligned + 0.15, (aligned, searched)   # measured 0.88 vs 0.62
    with pytest.raises(ValueError, match="max_stretch must be >= 1, got 0.5"):
        am.content_similarity(x, faster, SR, max_stretch=0.5)


def test_chroma_of_many_clips_equals_the_chroma_of_each(reference):
    clips = list(reference.values())[:5]
    clips = clips + [clips[0][: SR * 3], clips[1][: SR * 3 + 7]]      # three lengths, one clip alone
    many = am.chroma_cens_many(clips, SR, chunk=2)
    assert len(many) == len(clips)
    import librosa
    for clip, cens in zip(clips, many):                                  # one clip through librosa alone
        alone = librosa.feature.chroma_cens(y=clip, sr=SR, hop_length=am._chroma_hop(SR), tuning=0.0)
        assert np.array_equal(cens, alone[:, ::am.CENS_DOWNSAMPLE])
        assert np.array_equal(am.chroma_cens(clip, SR), cens)
    with pytest.raises(ValueError, match="audios"):
        am.chroma_cens_many([clips[0], np.zeros(10)], SR)


def test_stretching_by_all_factors_at_once_equals_one_factor_at_a_time():
    a = np.random.default_rng(0).random((12, 97))
    factors = [f for f in am._stretch_factors(am.CONTENT_MAX_STRETCH) if f != 1.0]
    versions = am._stretched(a)
    assert len(versions) == len(factors) + 1 and versions[0] is a
    for v, f in zip(versions[1:], factors):
        assert np.array_equal(v, am._stretch(a, f))
    assert am._stretched(a, 1.0) == [a]


def test_correlating_with_many_references_at_once_equals_one_at_a_time(chroma_ref):
    """Retrieval's batched correlations are the pair-by-pair ones: references of two lengths, a
    constant one (correlation 0) and an output stretched by every factor."""
    refs = [chroma_ref.cens[k] for k in sorted(chroma_ref.cens)][:6]
    refs += [refs[0][:, :40], np.ones_like(refs[1])]
    versions = am._stretched(refs[2][:, 5:] + 0.1 * np.random.default_rng(1).random(refs[2][:, 5:].shape))
    min_frames = am._min_overlap_frames(SR)
    one_by_one = [am._best_pearson(versions, r, min_frames) for r in refs]
    at_once = am._best_pearsons(versions, refs, min_frames)
    np.testing.assert_allclose(at_once, one_by_one, atol=1e-6)
    assert at_once[-1] == 0.0 and int(np.argmax(at_once)) == 2 and at_once[2] > 0.9


def test_content_retrieval_from_audio_and_precomputed_reference(reference, chroma_ref, transfer_case):
    ref = chroma_ref
    assert ref.contents("rock") == ["6", "7", "8", "9"]
    got = am.content_retrieval(transfer_case["sources"], transfer_case["content_ids"],
                               transfer_case["target_genres"], ref, sr=SR)
    assert got >= 0.9
    sub = [k for k in sorted(reference) if k[0] in (6, 7)]   # the audio path, two contents: chance 0.5
    got_audio = am.content_retrieval([reference[k] for k in sub], [c for c, _ in sub], ["blues"] * len(sub),
                                     {k: reference[k] for k in reference if k[0] in (6, 7)}, sr=SR)
    assert got_audio >= 0.9
    with pytest.raises(ValueError, match="content '42'"):
        am.content_retrieval(transfer_case["sources"][:1], [42], ["rock"], ref, sr=SR)


def test_evaluate_transfer_without_reference(judge, transfer_case):
    r = ev.evaluate_transfer(judge, transfer_case["sources"][:4], transfer_case["sources"][:4],
                             transfer_case["source_genres"][:4], transfer_case["source_genres"][:4], SR)
    assert r["content_retrieval"] is None and r["n"] == 4
    assert 0.0 <= r["success"] <= 1.0 and 0.0 <= r["target_prob"] <= 1.0


@pytest.mark.parametrize("change, match", [
    (dict(outputs="short"), "mismatched lengths: sources=4, outputs=3"),
    (dict(target_genres=["rock", "rock", "polka", "rock"]), "'polka'"),
    (dict(sources=[], outputs=[], source_genres=[], target_genres=[]), "empty"),
    (dict(outputs="empty clip"), r"outputs\[1\]: empty audio"),
])
def test_evaluate_transfer_rejects_bad_inputs(judge, transfer_case, change, match):
    args = dict(sources=transfer_case["sources"][:4], outputs=transfer_case["sources"][:4],
                source_genres=transfer_case["source_genres"][:4], target_genres=["rock"] * 4)
    if change.get("outputs") == "short":
        change = dict(outputs=args["outputs"][:3])
    elif change.get("outputs") == "empty clip":
        change = dict(outputs=[args["outputs"][0], np.zeros(0, np.float32)] + args["outputs"][2:])
    args.update(change)
    with pytest.raises(ValueError, match=match):
        ev.evaluate_transfer(judge, sr=SR, **args)


def test_unknown_genre_index_and_name():
    assert am.genre_index("rock") == GENRES.index("rock") and am.genre_index(3) == 3
    for bad in ("Rock", "polka", 10, -1, None):
        with pytest.raises(ValueError, match="unknown genre"):
            am.genre_index(bad)


# --------------------------------------------------------------------------- reconstruction
def test_reconstruction_metrics_zero_for_identical_and_grow_with_noise():
    cfg = AudioConfig(sample_rate=SR, n_fft=1024, hop_length=256, n_mels=64)
    x = tone(2.0)
    assert am.reconstruction_metrics(x, x, cfg) == {"logmel_l1_db": 0.0, "spectral_convergence": 0.0}
    rng = np.random.default_rng(1)
    rows = [am.reconstruction_metrics(x, x + s * rng.standard_normal(x.size).astype(np.float32), cfg)
            for s in (0.003, 0.03, 0.3)]
    for key in ("logmel_l1_db", "spectral_convergence"):
        values = [r[key] for r in rows]
        assert 0 < values[0] < values[1] < values[2], (key, values)


def test_spectral_convergence_of_half_scaled_signal_is_half():
    x = tone(1.5)
    assert am.spectral_convergence(x, 0.5 * x, n_fft=512, hop=128) == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="mismatched lengths: reference has 24000 samples, output 23999"):
        am.spectral_convergence(x, x[:-1], n_fft=512, hop=128)
    assert am.spectral_convergence(x, x[:-1], n_fft=512, hop=128, trim=True) == 0.0
    with pytest.raises(ValueError, match="silent"):
        am.spectral_convergence(np.zeros(1000), np.ones(1000), n_fft=256, hop=64)


# --------------------------------------------------------------------------- latent
def test_latent_diagnostics_on_separable_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    centres = rng.standard_normal((4, 8)) * 10
    mu = centres[labels] + rng.standard_normal((120, 8))
    mu[:, 5] = 0.7                                         # a dead dimension
    out = lm.latent_diagnostics(mu, np.zeros_like(mu), labels)
    assert out["knn_genre_accuracy"] >= 0.98 and out["knn_k"] == 5
    assert out["silhouette"] > 0.5
    assert out["active_units"] == 7 and out["latent_dim"] == 8
    assert len(out["kl_per_dim"]) == 8 and out["kl_per_dim"][5] == pytest.approx(0.5 * 0.49)
    assert out["kl_total"] == pytest.approx(sum(out["kl_per_dim"]))
    assert out["notes"] == []


def test_latent_kl_of_the_prior_is_zero_and_known_values():
    z = np.zeros((10, 3))
    out = lm.latent_diagnostics(z, z, ["rock"] * 5 + ["jazz"] * 5)
    assert out["kl_per_dim"] == [0.0, 0.0, 0.0] and out["kl_total"] == 0.0 and out["active_units"] == 0
    logvar = np.full((10, 3), np.log(2.0))                 # KL = 0.5 * (2 - 1 - log 2)
    out = lm.latent_diagnostics(z, logvar, ["rock"] * 5 + ["jazz"] * 5)
    assert out["kl_per_dim"][0] == pytest.approx(0.5 * (1 - np.log(2.0)))


def test_latent_degenerate_inputs_give_nan_with_a_note():
    rng = np.random.default_rng(0)
    one_class = lm.latent_diagnostics(rng.standard_normal((20, 4)), np.zeros((20, 4)), ["rock"] * 20)
    assert np.isnan(one_class["knn_genre_accuracy"]) and np.isnan(one_class["silhouette"])
    assert len(one_class["notes"]) == 2 and "1 genre" in one_class["notes"][0]
    lone = lm.latent_diagnostics(rng.standard_normal((4, 2)), np.zeros((4, 2)), [0, 1, 1, 1])
    assert np.isnan(lone["knn_genre_accuracy"]) and "smallest with 1 rows" in lone["notes"][0]
    assert np.isfinite(lone["silhouette"])
    with pytest.raises(ValueError, match="mismatched lengths: mu=4, labels=3"):
        lm.latent_diagnostics(np.zeros((4, 2)), np.zeros((4, 2)), [0, 1, 1])
    with pytest.raises(ValueError, match=r"\(4, 2\) and \(4, 3\)"):
        lm.latent_diagnostics(np.zeros((4, 2)), np.zeros((4, 3)), [0, 0, 1, 1])


# --------------------------------------------------------------------------- evaluation's public names
# evaluation's public names before it was split: its own, and those that moved, by new home.
OWN = ("SCHEMA_VERSION", "TRANSFER_KEYS", "evaluate_transfer", "baseline_metrics", "build_metrics", "to_jsonable",
       "write_metrics", "read_metrics", "summary_table", "plot_transfer_curve", "evaluate_model", "score_clips",
       "select_checkpoint")
MOVED = {
    jd: ("N_MFCC", "TEMPO_BANDS_BPM", "TEMPOGRAM_WIN", "SINGLE_FEATURES", "JUDGE_FEATURE_NAMES", "judge_features",
         "extract_features", "GenreJudge", "split_by_content", "train_judge", "single_feature",
         "single_feature_accuracy"),
    am: ("MIN_SECONDS", "N_FFT", "HOP", "CENS_DOWNSAMPLE", "CONTENT_MAX_STRETCH", "STRETCH_STEPS",
         "MIN_OVERLAP_SECONDS", "genre_index", "chroma_cens", "chroma_cens_many", "content_similarity",
         "ChromaReference", "content_retrieval", "spectral_convergence", "reconstruction_metrics",
         "mean_reconstruction"),
    lm: ("ACTIVE_THRESHOLD", "latent_matrix", "label_array", "variance_per_dim", "active_units", "kl_per_dim",
         "separation_metrics", "latent_diagnostics"),
}


def test_evaluations_public_names_stay_and_are_the_moved_objects():
    assert sorted(ev.__all__) == sorted(OWN + sum(MOVED.values(), ()))
    for home, names in MOVED.items():
        for name in names:
            assert getattr(ev, name) is getattr(home, name), (home.__name__, name)
    for name in OWN:
        assert hasattr(ev, name) and not any(hasattr(home, name) for home in MOVED), name


# --------------------------------------------------------------------------- metrics.json
def _entry(**kw):
    base = dict(success=np.float32(0.5), target_prob=0.4, content_chroma_corr=np.float64(0.7),
                content_retrieval=None, content_retrieval_chance=None, n=np.int64(8))
    return base | kw


def _metrics():
    return ev.build_metrics(
        {"name": "tiny", "checkpoint": Path("vae_logs/x.pt")},
        {"heldout_accuracy": 0.9, "n_train": 10, "n_test": 5, "classifier": "logreg"},
        {"shift": [_entry(strength=s) for s in (0.5, 1.0)], "conditional": [_entry(strength=1.0)]},
        {"identity": _entry(success=0.0), "random_target": _entry(success=1.0)},
        {"logmel_l1_db": np.float32(3.5), "spectral_convergence": 0.2, "n": 4},
        {"knn_genre_accuracy": float("nan"), "kl_per_dim": np.array([0.1, 0.2]), "notes": ["x"]})


def test_write_metrics_round_trip(tmp_path):
    path = ev.write_metrics(tmp_path / "out" / "metrics.json", _metrics())
    loaded = ev.read_metrics(path)
    assert loaded == json.loads(path.read_text())
    assert loaded["transfer"]["shift"][1]["strength"] == 1.0 and loaded["transfer"]["shift"][0]["n"] == 8
    assert loaded["reconstruction"]["logmel_l1_db"] == 3.5 and loaded["model"]["checkpoint"] == "vae_logs/x.pt"
    assert loaded["latent"]["knn_genre_accuracy"] is None and loaded["latent"]["kl_per_dim"] == [0.1, 0.2]
    assert "NaN" not in path.read_text()
    table = ev.summary_table(loaded)
    assert "shift" in table and "conditional" in table and "random_target" in table and "0.900" in table


def test_write_metrics_is_atomic(tmp_path):
    path = ev.write_metrics(tmp_path / "metrics.json", _metrics())
    before = path.read_bytes()
    bad = _metrics() | {"model": {"name": "x", "obj": object()}}
    with pytest.raises(TypeError, match="object"):
        ev.write_metrics(path, bad)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["metrics.json"]        # no temp file left behind


def test_build_metrics_rejects_malformed_transfer():
    good = _metrics()
    with pytest.raises(ValueError, match="lacks \\['strength'\\]"):
        ev.build_metrics({}, good["judge"], {"shift": [_entry()]}, good["baselines"])
    with pytest.raises(ValueError, match="random_target"):
        ev.build_metrics({}, good["judge"], good["transfer"], {"identity": _entry()})


def test_transfer_curve_plots_models_with_content_retrieval_only(tmp_path):
    import matplotlib.image as mpimg
    rows = [{"strength": a, "success": s, "content_retrieval": r, "content_chroma_corr": 0.5, "n": 10}
            for a, s, r in ((0.5, 0.1, 0.8), (1.0, 0.3, 0.6))]
    synthetic = {"transfer": {"shift": rows, "conditional": rows[:1]},
                 "baselines": {"identity": {"success": 0.0, "content_retrieval": 0.9}}}
    real = {"transfer": {"shift": [dict(r, content_retrieval=None) for r in rows]}, "baselines": {}}
    png = ev.plot_transfer_curve({"mel VAE": synthetic, "real": real}, tmp_path / "curve.png")
    img = mpimg.imread(png)
    assert img.ndim == 3 and min(img.shape[:2]) > 200
    with pytest.raises(ValueError, match="no model has content retrieval"):
        ev.plot_transfer_curve({"real": real}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
