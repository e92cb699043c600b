"""Every command line meets bad input with one line on stderr that names the culprit, a
non-zero exit status and no traceback; a folder of inputs loses no good file.

The entry points run as a user runs them (``python transfer.py ...``), in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli import InputError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository (a module with ``-m``)."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd or ROOT, env=ENV, capture_output=True,
                          text=True, timeout=600)


def assert_one_line(result, *names, status=1):
    """Exit status ``status``, exactly one line on stderr, no traceback, every name in it."""
    err = result.stderr
    assert result.returncode == status, (result.returncode, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    for name in names:
        assert str(name) in err, (name, err)
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory, synthetic_root):
    """Good and bad inputs and checkpoints, side by side."""
    d = tmp_path_factory.mktemp("bad_inputs")
    good, sr = sf.read(sorted((synthetic_root / "genres_original" / "rock").glob("*.wav"))[0], dtype="float32")
    sf.write(d / "good.wav", good[: 2 * sr], sr)
    (d / "garbage.wav").write_text("this is not audio\n" * 20)
    (d / "empty.wav").write_bytes(b"")
    nan = good[: 2 * sr].copy()
    nan[100:200] = np.nan
    sf.write(d / "nan.wav", nan, sr, subtype="FLOAT")
    (d / "notes.pt").write_text("a text file, not a checkpoint\n")
    return d


# --------------------------------------------------------------------------- transfer.py: the table
@pytest.mark.parametrize("checkpoint,expect", [
    ("nowhere.pt", "checkpoint not found"),
    ("notes.pt", "not a PyTorch checkpoint"),
    ("cut.pt", "truncated"),
])
def test_transfer_with_a_bad_checkpoint(files, tiny_checkpoint, checkpoint, expect):
    if checkpoint == "cut.pt":                                  # a copy that did not finish
        data = tiny_checkpoint.read_bytes()
        (files / "cut.pt").write_bytes(data[: len(data) // 2])
    r = cli("transfer.py", "--checkpoint", files / checkpoint, "--input", files / "good.wav",
            "--target", "jazz", "--source", "rock", "--out", files / "out")
    assert_one_line(r, checkpoint, expect)


@pytest.mark.parametrize("name,expect", [
    ("garbage.wav", "not a recognised audio format"),
    ("empty.wav", "empty"),
    ("missing.wav", "input not found"),
    ("nan.wav", "NaN"),
])
def test_transfer_with_a_bad_input(files, tiny_checkpoint, name, expect):
    r = cli("transfer.py", "--checkpoint", tiny_checkpoint, "--input", files / name, "--target", "jazz",
            "--source", "rock", "--out", files / "out")
    assert_one_line(r, name, expect)


def _mount_tmpfs(folder: Path, options: str) -> None:
    """Mount a small tmpfs on ``folder`` (root with CAP_SYS_ADMIN only), else skip the test."""
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({' '.join(r.stderr.split()) or r.returncode})")


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write into, and the words the error should use. An ordinary user
    gets a chmod 555 folder; root ignores permissions, so root gets a read-only tmpfs mounted
    on it (skipped where root may not mount)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        yield folder, "permission denied"
        folder.chmod(0o755)
        return
    folder.chmod(0o755)
    _mount_tmpfs(folder, "ro,size=1m")
    try:
        yield folder, "read-only file system"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def full_folder(tmp_path):
    """A folder on a 64 kB tmpfs (root only, skipped elsewhere): room for a file's name, not for a WAV."""
    folder = tmp_path / "full"
    folder.mkdir()
    _mount_tmpfs(folder, "size=64k")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _transfer_to(files, tiny_checkpoint, out):
    return cli("transfer.py", "--checkpoint", tiny_checkpoint, "--input", files / "good.wav", "--target", "jazz",
               "--source", "rock", "--out", out)


def test_transfer_out_is_an_existing_file(files, tiny_checkpoint, tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder\n")
    assert_one_line(_transfer_to(files, tiny_checkpoint, taken), taken, "is a file, expected a folder")
    assert_one_line(_transfer_to(files, tiny_checkpoint, taken / "sub"), taken / "sub", taken,
                    "is a file, expected a folder")
    assert taken.read_text() == "not a folder\n"


def test_transfer_out_is_a_read_only_folder(files, tiny_checkpoint, read_only_folder):
    folder, expect = read_only_folder
    assert_one_line(_transfer_to(files, tiny_checkpoint, folder), folder, expect, "expected a")
    assert not list(folder.iterdir())


def test_transfer_out_on_a_full_disk(files, tiny_checkpoint, full_folder):
    r = _transfer_to(files, tiny_checkpoint, full_folder)
    wav = full_folder / "good__rock_to_jazz__conditional_1.wav"
    assert_one_line(r, wav, "no space left on the device")
    assert not list(full_folder.iterdir())                       # the partial file was removed


def test_transfer_with_a_strength_that_is_not_finite(files, tiny_checkpoint):
    r = cli("transfer.py", "--checkpoint", tiny_checkpoint, "--input", files / "good.wav", "--target", "jazz",
            "--source", "rock", "--strength", "nan")
    assert_one_line(r, "--strength", "finite", status=2)
    r = cli("transfer.py", "--checkpoint", tiny_checkpoint, "--input", files / "good.wav", "--target", "jazz",
            "--source", "rock", "--strength", "-1")
    assert_one_line(r, "strength -1", "shift")


def test_a_folder_of_inputs_transfers_every_good_file_and_names_the_bad_ones(files, tiny_checkpoint, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in ("good.wav", "empty.wav", "garbage.wav"):
        (folder / name).write_bytes((files / name).read_bytes())
    out = tmp_path / "out"
    r = cli("transfer.py", "--checkpoint", tiny_checkpoint, "--input", folder, "--target", "jazz",
            "--source", "rock", "--out", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "2 of 3 inputs failed, 1 written" in last and "empty.wav" in last and "garbage.wav" in last, last
    written = list(out.glob("good__rock_to_jazz__conditional_1.wav"))
    assert len(written) == 1 and sf.info(written[0]).frames == sf.info(files / "good.wav").frames
    assert "good.wav" in (out / "manifest.csv").read_text()


def test_debug_shows_the_traceback(files, tiny_checkpoint):
    r = cli("transfer.py", "--checkpoint", files / "notes.pt", "--input", files / "good.wav", "--target", "jazz",
            "--source", "rock", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "CheckpointError" in r.stderr


# --------------------------------------------------------------------------- trainer.py
def test_trainer_on_an_empty_folder(tmp_path):
    (tmp_path / "empty_data").mkdir()
    r = cli("trainer.py", "--data", tmp_path / "empty_data", "--preset", "tiny", "--out", tmp_path / "run")
    assert_one_line(r, "empty_data", "no usable audio", "genres_original")


def test_trainer_on_a_missing_folder(tmp_path):
    r = cli("trainer.py", "--data", tmp_path / "nowhere", "--preset", "tiny", "--out", tmp_path / "run")
    assert_one_line(r, "nowhere", "data folder not found", "Kaggle layout")


def test_trainer_with_an_unknown_preset_or_key(tmp_path):
    r = cli("trainer.py", "--data", tmp_path, "--preset", "huge", "--out", tmp_path / "run")
    assert_one_line(r, "'huge'", "demo")
    r = cli("trainer.py", "--data", tmp_path, "--preset", "tiny", "--set", "model.latent_dims=3")
    assert_one_line(r, "latent_dims")


# --------------------------------------------------------------------------- the other entry points
def test_demo_on_a_missing_folder(tmp_path):
    r = cli("demo.py", "--data", tmp_path / "nowhere", "--out", tmp_path / "res", "--logs", tmp_path / "logs")
    assert_one_line(r, "nowhere", "data folder not found")


def test_benchmark_with_an_unknown_section():
    r = cli("benchmark.py", "--only", "speed")
    assert_one_line(r, "--only", "speed", status=2)


def test_latent_tool_with_a_foreign_checkpoint(files):
    r = cli("-m", "LatentSpaceInterpretation.latent_space", "--checkpoint", files / "notes.pt")
    assert_one_line(r, "notes.pt", "not a PyTorch checkpoint")


def test_experiment_runners_on_a_missing_folder(tmp_path):
    r = cli("-m", "TemplateCode.train", "--kind", "image", "--data", tmp_path / "nowhere", "--size", "tiny",
            "--out", tmp_path / "run")
    assert_one_line(r, "nowhere", "data folder not found")
    r = cli("-m", "AudioExperiment.compare", "--budget", "smoke", "--data", tmp_path / "nowhere",
            "--out", tmp_path / "cmp")
    assert_one_line(r, "nowhere", "not found")


def test_synthetic_writer_with_a_bad_count(tmp_path):
    r = cli("synthetic_gtzan.py", "--out", tmp_path / "syn", "--per-genre", "0")
    assert_one_line(r, "n_per_genre", "0")


# --------------------------------------------------------------------------- the Python API
def test_transfer_array_takes_soundfile_frames_by_channels(files, tiny_checkpoint):
    from transfer import GenreTransfer
    tr = GenreTransfer.from_checkpoint(tiny_checkpoint)
    audio, sr = sf.read(files / "good.wav", dtype="float32", always_2d=True)        # [T, 1]
    stereo = np.concatenate([audio, 0.5 * audio], axis=1)[: sr]                    # [T, 2], 1 s
    out, genre = tr.transfer_array(stereo, sr, "jazz", "rock")
    assert out.shape == stereo.shape and genre == "rock" and np.isfinite(out).all()
    assert np.sqrt(np.mean(out ** 2)) > 1e-3
    channels_first, _ = tr.transfer_array(stereo.T, sr, "jazz", "rock")
    assert np.allclose(channels_first.T, out)                     # the same transfer, either way round
    with pytest.raises(InputError, match=r"shape \(12, 40\)"):
        tr.transfer_array(np.zeros((12, 40), np.float32), sr, "jazz", "rock")
    with pytest.raises(InputError, match="NaN"):
        tr.transfer_array(np.full(sr, np.nan, np.float32), sr, "jazz", "rock")
