"""The shared trainer: a real step, checkpoints, exact resume after SIGKILL, DDP on gloo."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trainer
from cli import InputError
from model import MelVAE, mel_config, onset_stream
from prepare_data import AudioConfig, override
from steps import train_steps

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args) -> list[str]:
    return [sys.executable, str(ROOT / "trainer.py"), *map(str, args)]


def test_a_real_training_step_lowers_the_loss():
    torch.manual_seed(0)
    audio = AudioConfig.preset("demo")
    model = MelVAE(mel_config("tiny", audio), audio)
    cfg = override(trainer.TrainConfig(), **trainer.TRAIN_PRESETS["tiny"])
    loss_fn = trainer.EfficientLoss(cfg, audio)
    wave = torch.randn(4, audio.segment_samples) * 0.1
    genre = torch.tensor([0, 1, 2, 3])
    x = model.prepare(wave)
    history = train_steps(model, loss_fn, x, genre, lr=2e-3, beta=0.01, steps=15)
    terms, losses = history[-1], [float(h["recon"]) for h in history]
    assert {"mse", "grad_l1", "kl_low", "kl_high", "kl", "adv", "recon", "total", "beta"} <= set(terms)
    assert losses[-1] < 0.5 * losses[0]


def test_frequency_gradient_term_penalises_blurred_harmonics_only():
    """A mel blurred over frequency pays the contrast term; one shifted in level does not."""
    audio = AudioConfig.preset("demo")
    target = torch.full((2, 1, audio.n_mels, 16), -0.6)
    target[:, :, 20::12] = 0.4                                  # harmonic peaks every 12 bins
    blurred = torch.nn.functional.avg_pool2d(target, (5, 1), stride=1, padding=(2, 0), count_include_pad=False)
    genre = torch.tensor([0, 1])

    def terms(recon, weight):
        cfg = override(trainer.TrainConfig(), freq_grad_weight=weight)
        out = {"recon": recon, "target": target, "mu": torch.zeros(2, 4, 2), "logvar": torch.zeros(2, 4, 2)}
        return trainer.EfficientLoss(cfg, audio)(out, genre, beta=0.0)

    blur0, blur1 = terms(blurred, 0.0), terms(blurred, 1.0)
    assert float(blur0["freq_grad_l1"]) > 0.05
    assert float(blur1["recon"] - blur0["recon"]) == pytest.approx(float(blur0["freq_grad_l1"]))
    level = terms(target + 0.1, 1.0)                            # same shape, louder
    assert float(level["freq_grad_l1"]) == pytest.approx(0.0, abs=1e-6)
    assert float(level["mse"]) == pytest.approx(0.01, rel=1e-4)


def test_onset_term_penalises_lost_and_smeared_attacks_only():
    """A reconstruction whose notes start late or whose attacks are smeared over frames pays the
    onset term; one that only differs in level does not, and the term joins ``recon`` at its weight."""
    audio = AudioConfig.preset("demo")
    target = torch.full((2, 1, audio.n_mels, 64), -0.6)
    for start in (4, 20, 36, 52):                               # four notes, 12 frames each
        target[:, :, 30:60, start:start + 12] = 0.3
    smeared = torch.nn.functional.avg_pool2d(target, (1, 7), stride=1, padding=(0, 3), count_include_pad=False)
    late = torch.roll(target, 3, dims=-1)                        # every attack 3 frames late
    genre = torch.tensor([0, 1])

    def terms(recon, weight):
        cfg = override(trainer.TrainConfig(), onset_weight=weight)
        out = {"recon": recon, "target": target, "mu": torch.zeros(2, 4, 2), "logvar": torch.zeros(2, 4, 2)}
        return trainer.EfficientLoss(cfg, audio)(out, genre, beta=0.0)

    exact, level = terms(target, 1.0), terms(target + 0.1, 1.0)
    assert float(exact["onset_l1"]) == 0.0 and float(level["onset_l1"]) == pytest.approx(0.0, abs=1e-6)
    smear, shift = terms(smeared, 1.0), terms(late, 1.0)
    onsets = float(onset_stream(target).mean())     # the target's onset envelope, per frame
    assert float(smear["onset_l1"]) > 0.5 * onsets
    assert float(shift["onset_l1"]) == pytest.approx(2 * onsets, rel=1e-3)   # each onset missed, and played late
    assert float(smear["recon"] - terms(smeared, 0.0)["recon"]) == pytest.approx(float(smear["onset_l1"]))
    assert "onset_l1" not in terms(smeared, 0.0)


def test_beta_schedules_and_free_bits():
    cfg = override(trainer.TrainConfig(), beta_max=0.5, beta_warmup_steps=10, beta_cycle_steps=8)
    warm = trainer.BetaSchedule(cfg)
    assert warm(0) == 0 and warm(5) == pytest.approx(0.25) and warm(100) == 0.5
    cyc = trainer.BetaSchedule(override(cfg, beta_schedule="cyclical"))
    assert [cyc(s) for s in (0, 2, 4, 6, 8)] == pytest.approx([0, 0.25, 0.5, 0.5, 0])
    with pytest.raises(ValueError, match="sometimes"):
        trainer.BetaSchedule(override(cfg, beta_schedule="sometimes"))(1)
    zeros = torch.zeros(2, 4, 3)
    terms = trainer.kl_terms(zeros, zeros, override(cfg, free_bits=0.1))
    assert float(terms["kl_raw"]) == 0 and float(terms["kl_low"]) == pytest.approx(0.1)


def test_checkpoint_rebuilds_the_model_and_rejects_foreign_files(tiny_checkpoint, tmp_path):
    model, state = trainer.load_model(tiny_checkpoint)
    raw = torch.load(tiny_checkpoint, weights_only=True)            # loads with weights_only
    assert raw["family"] == "mel" and raw["genre_means"].shape == (10, model.cfg.latent_channels)
    for key in ("audio", "model", "train", "weights", "optimizer", "scheduler", "rng", "epoch",
                "step", "beta", "genres", "best_val"):
        assert key in raw
    x = torch.rand(2, 1, model.audio.n_mels, model.audio.frames) * 2 - 1
    again, _ = trainer.load_model(tiny_checkpoint)
    assert torch.equal(model.encode(x)[1], again.encode(x)[1])
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        trainer.load_model(tmp_path / "nowhere.pt")
    torch.save({"weights": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a genre-transfer checkpoint"):
        trainer.load_model(tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="text.pt"):
        trainer.load_model(tmp_path / "text.pt")
    with pytest.raises(ValueError, match="not a 'wave' model"):
        trainer.load_model(tiny_checkpoint, family="wave")
    other = dict(state["model"], latent_dim=state["model"]["latent_dim"] * 2)
    with pytest.raises(ValueError, match="latent_dim"):
        trainer.load_model(tiny_checkpoint, expect={"model": other})


def test_resuming_with_another_config_names_the_difference(tiny_checkpoint, synthetic_root):
    out = tiny_checkpoint.parent
    result = subprocess.run(_cli("--data", synthetic_root, "--preset", "tiny", "--out", out, "--epochs", "3",
                                 "--set", "model.latent_dim=12"), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    trained = trainer.load_model(tiny_checkpoint)[0].cfg.latent_dim
    assert trained != 12 and f"model.latent_dim: checkpoint has {trained}, expected 12" in result.stderr


def test_unknown_options_are_errors(tmp_path):
    result = subprocess.run(_cli("--data", tmp_path, "--epoch", "3", "--bogus"), capture_output=True, text=True)
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr
    with pytest.raises(InputError, match="epoch_count"):
        trainer.main(["--data", str(tmp_path), "--preset", "tiny", "--set", "train.epoch_count=3"])


def _weights(path):
    return torch.load(path, weights_only=True)["weights"]


def test_sigkill_mid_epoch_then_rerun_matches_an_uninterrupted_run(synthetic_root, tmp_path):
    args = ("--data", synthetic_root, "--preset", "tiny", "--epochs", "4", "--set", "train.batch_size=2")
    full = tmp_path / "full"
    subprocess.run(_cli(*args, "--out", full), check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:     # wait for the first epoch's checkpoint
        if (killed / "latest.pt").exists():
            time.sleep(0.3)                                    # now inside epoch 2
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = torch.load(killed / "latest.pt", weights_only=True)
    epoch_at_kill = at_kill["epoch"]
    assert 1 <= epoch_at_kill < 4
    assert at_kill["step"] >= at_kill["train"]["gan_start"] >= 0      # killed inside the adversarial phase

    rerun = subprocess.run(_cli(*args, "--out", killed), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming from {killed / 'latest.pt'} at epoch {epoch_at_kill}" in rerun.stdout
    for key in ("weights", "critics"):                          # the VAE, the discriminator and classifier
        a, b = (torch.load(p / "latest.pt", weights_only=True)[key] for p in (full, killed))
        assert a.keys() == b.keys() and len(a) > 0
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(killed.glob("*.tmp"))                       # atomic writes leave nothing behind
    kept = [[p.name for p in trainer.epoch_snapshots(run)] for run in (full, killed)]
    assert kept[0] == kept[1] == ["epoch3.pt", "epoch4.pt"]     # the last train.snapshots adversarial epochs
    average = [torch.load(run / "average.pt", weights_only=True) for run in (full, killed)]
    assert average[0]["averaged_epochs"] == average[1]["averaged_epochs"] == [3, 4]
    snaps = [torch.load(full / name, weights_only=True)["weights"] for name in kept[0]]
    moved = 0
    for k, w in average[0]["weights"].items():                  # each weight the mean of the kept epochs'
        assert torch.equal(w, average[1]["weights"][k])
        if w.is_floating_point():
            assert torch.allclose(w, (snaps[0][k] + snaps[1][k]) / 2, atol=1e-6)
            moved += int(not torch.equal(snaps[0][k], snaps[1][k]))
    assert moved > 0                                            # the epochs differ, so the mean is news


def test_two_process_ddp_on_gloo(synthetic_root, tmp_path):
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", "29533", str(ROOT / "trainer.py")]
    result = subprocess.run(torchrun + ["--data", str(synthetic_root), "--preset", "tiny", "--epochs", "1",
                                        "--set", "train.gan_start=1", "--out", str(out)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    model, state = trainer.load_model(out / "best.pt")
    assert state["epoch"] == 1 and state["family"] == "mel"
    assert state["step"] > 1 and state["critics"]                  # adversarial steps ran under DDP
    assert "best checkpoint" in result.stdout
