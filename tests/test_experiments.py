"""Experiments: every variant trains a step, reloads and transfers; the comparison runner
writes its table; spectrogram pictures read back as the log-mel they were drawn from;
configs and weights files fail with errors that name the value."""
import json
import shutil

import numpy as np
import pytest
import torch

import trainer
from ImageExperiment import parse_grid, sweep_variants
from TemplateCode.compare import BUDGETS, Comparison, main as compare_main, suite_variants
from TemplateCode.experiment import GenreInput, build, load_experiment, make_trainer

pytestmark = [pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning"),
              pytest.mark.usefixtures("one_thread")]
SMOKE = BUDGETS["smoke"]
SWEEP = sweep_variants(parse_grid(SMOKE.sweep))
VARIANTS = suite_variants("audio", "") + suite_variants("image", "") + SWEEP[:1]




@pytest.fixture(scope="module")
def data_root(synthetic_root, tmp_path_factory):
    """A private copy of the synthetic GTZAN (the PNG variants draw images_original into it)."""
    root = tmp_path_factory.mktemp("experiments") / "gtzan"
    shutil.copytree(synthetic_root, root, ignore=shutil.ignore_patterns(".cache"))
    return root


@pytest.fixture(scope="module")
def comparison(data_root, tmp_path_factory):
    return Comparison(data_root, tmp_path_factory.mktemp("cmp_direct"), "smoke")


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant_trains_one_step_reloads_and_transfers(variant, comparison, tmp_path):
    built = build(variant, SMOKE.size, smoke_test=True)
    train, valid, info = comparison.datasets(variant, built.audio, built.train_cfg.batch_size)
    trainer = make_trainer(built, tmp_path / variant.name, train, valid, info)
    before = [p.detach().clone() for p in built.model.parameters()]
    best = trainer.fit()
    assert trainer.step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, built.model.parameters()))
    assert np.isfinite(trainer.best_val)

    model, state = load_experiment(best)                                  # from the file alone
    assert state["family"] == variant.family and state["genre_means"].shape[0] == 10
    x, _ = next(iter(torch.utils.data.DataLoader(valid, batch_size=2)))
    x = model.prepare(x.float())
    built.model.eval().to(memory_format=torch.contiguous_format)   # trained channels-last; compare like for like
    assert torch.allclose(model.encode(x)[1], built.model.encode(x)[1], atol=1e-6)

    from transfer import GenreTransfer
    tr = GenreTransfer(model, state)
    clip = comparison.loader.cache.load(comparison.splits["test"][0].path, built.audio.sample_rate)
    clip = np.array(clip[: int(1.3 * built.audio.sample_rate)], np.float32)
    for method in ("conditional", "shift"):
        out = tr.transfer_mono(clip, "blues", "reggae", method, 1.0)
        assert out.shape == clip.shape and np.isfinite(out).all()


def test_comparison_runner_smoke_writes_the_table(data_root, tmp_path):
    out = tmp_path / "cmp"
    names = ["template_wave", "cnn_cvae_png", SWEEP[-1].name]
    args = ["--budget", "smoke", "--data", str(data_root), "--out", str(out), "--variants", ",".join(names)]
    rows = compare_main(args)
    assert [r["variant"] for r in rows] == names
    for r in rows:
        assert r["steps"] == 1 and r["parameters"] > 0 and np.isfinite(r["val_elbo"])
        assert 0.0 <= r["cond_success"] <= 1.0 and r["latent_dim"] > 0
        assert (out / r["variant"] / "latent_pca.png").stat().st_size > 1000
        assert json.loads((out / r["variant"] / "metrics.json").read_text())["model"]["name"] == r["variant"]
    header = (out / "comparison.csv").read_text().splitlines()[0].split(",")
    assert {"variant", "val_elbo", "active_units", "knn_genre_acc", "cond_success", "cond_retrieval",
            "shift_success", "logmel_l1_db"} <= set(header)
    md = (out / "comparison.md").read_text()
    assert all(f"| {n} |" in md for n in names) and "judge held-out accuracy" in md
    assert rows[-1]["data"] == "audio" and rows[1]["data"] == "png"
    again = compare_main(args[:-2] + ["--variants", names[0]])                # kept rows: nothing retrained
    assert [r["variant"] for r in again] == names and again[0] == rows[0]
    with pytest.raises(SystemExit):
        compare_main(args[:-2] + ["--variants", "no_such_variant"])


def test_template_training_script_runs(data_root, tmp_path):
    from TemplateCode.train import main
    best = main(["--kind", "image", "--size", "tiny", "--data", str(data_root), "--out", str(tmp_path),
                 "--smoke-test"])
    model, state = load_experiment(best)
    assert state["family"] == "template-mel" and type(model).__name__ == "PlainMelVAE"


# --------------------------------------------------------------------------- pictures
def test_pictures_read_back_as_the_log_mel_they_show(data_root, tmp_path):
    import matplotlib.image
    import soundfile as sf
    import torch.nn.functional as F

    from ImageExperiment.png_spectrograms import load_png, plot_box, png_name, render_png
    from prepare_data import AudioConfig, enhanced_audio_to_mel
    from SlicingDataLoading import FileRecord

    cfg = AudioConfig.preset("demo")
    wav = sorted((data_root / "genres_original" / "jazz").glob("*.wav"))[0]
    rec = FileRecord(wav, "jazz")
    assert png_name(rec) == "jazz00000.png"
    audio, _ = sf.read(wav, dtype="float32")
    path = render_png(audio, cfg, tmp_path / png_name(rec))
    image = matplotlib.image.imread(str(path))
    assert image.shape == (288, 432, 4)                                     # 432 x 288 RGBA
    top, bottom, left, right = plot_box(image[..., :3])
    assert 0 < top < bottom < 288 and 0 < left < right < 432
    picture = load_png(path, cfg.n_mels)
    assert picture.shape == (cfg.n_mels, right - left) and picture.min() >= -1 and picture.max() <= 1
    mel = enhanced_audio_to_mel(audio, cfg, fit=False)                      # (1, 1, M, F)
    ref = F.interpolate(mel, size=picture.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    assert np.abs(ref - picture).mean() < 0.05                              # < 2.5 dB on average
    blank = tmp_path / "blank.png"
    matplotlib.image.imsave(blank, np.ones((20, 30, 3)))
    with pytest.raises(ValueError, match="no plot"):
        load_png(blank, cfg.n_mels)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_png(tmp_path / "missing.png", cfg.n_mels)


# --------------------------------------------------------------------------- configs and parts
def test_configs_and_sweep_reject_bad_values():
    from AudioExperiment.composed import wave_experiment_config
    from ImageExperiment import cnn_cvae_config, hgru_config, parse_grid, sweep_variants

    wave, mel = trainer.configs("wave", "tiny")[0], trainer.configs("mel", "tiny")[0]
    with pytest.raises(ValueError, match="encoder='lstm'"):
        wave_experiment_config("tiny", wave, encoder="lstm")
    with pytest.raises(ValueError, match="attention_heads=3"):
        wave_experiment_config("tiny", wave, encoder="attention", attention_heads=3)
    with pytest.raises(KeyError, match="w2v_size"):
        wave_experiment_config("tiny", wave, w2v_size=3)
    with pytest.raises(ValueError, match="divisible"):
        cnn_cvae_config("tiny", mel, depth=8)                               # 128 bands / 2**8
    with pytest.raises(ValueError, match="latent_dim=7"):
        cnn_cvae_config("tiny", mel, latent_dim=7)
    with pytest.raises(KeyError, match="HierGRUConfig preset .huge"):
        hgru_config("huge", mel)
    grid = parse_grid("depth=2,3 width=8,16 latent_dim=16,32 beta=0.02,0.2")
    names = [v.name for v in sweep_variants(grid)]
    assert len(names) == len(set(names)) == 16 and names[0] == "cnn_cvae_sweep_d2_w8_z16_b0.02"
    assert sweep_variants(grid)[0].train == {"beta_max": 0.02}
    with pytest.raises(ValueError, match="colour"):
        parse_grid("colour=2")
    with pytest.raises(ValueError, match="beta"):
        parse_grid("beta=high")


def test_encoder_sees_the_genre_and_unknown_without_it():
    gi = GenreInput(10, 4, 6, dropout=0.0).eval()
    torch.nn.init.normal_(gi.film.to_scale_shift.weight)
    h = torch.randn(2, 6, 5)
    assert not torch.allclose(gi(h, torch.tensor([0, 0])), gi(h, torch.tensor([1, 1])))
    assert torch.allclose(gi(h), gi(h, torch.tensor([10, 10])))          # "unknown" row
    with pytest.raises(ValueError, match="dropout=1.5"):
        GenreInput(10, 4, 6, dropout=1.5)


def test_wav2vec2_encoder_loads_a_local_weights_file(tmp_path):
    from AudioExperiment.composed import wave_experiment_config
    from AudioExperiment.wav2vec2_encoder import Wav2Vec2Encoder

    cfg = wave_experiment_config("tiny", trainer.configs("wave", "tiny")[0], encoder="wav2vec2")
    source = Wav2Vec2Encoder(cfg).eval()
    torch.save(source.model.state_dict(), tmp_path / "w2v.pt")
    loaded = Wav2Vec2Encoder(wave_experiment_config("tiny", trainer.configs("wave", "tiny")[0], encoder="wav2vec2",
                                                    w2v_weights=str(tmp_path / "w2v.pt"))).eval()
    x = torch.randn(2, 1, 5 * cfg.hop_length)
    assert loaded(x).shape == (2, cfg.w2v_dim, 5)                           # exactly T / hop frames
    assert torch.allclose(loaded(x), source(x))
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        Wav2Vec2Encoder(wave_experiment_config("tiny", trainer.configs("wave", "tiny")[0], encoder="wav2vec2",
                                               w2v_weights=str(tmp_path / "nowhere.pt")))
    wider = wave_experiment_config("tiny", trainer.configs("wave", "tiny")[0], encoder="wav2vec2", w2v_dim=32,
                                   w2v_weights=str(tmp_path / "w2v.pt"))
    with pytest.raises(ValueError, match="does not fit"):
        Wav2Vec2Encoder(wider)
