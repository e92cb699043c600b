"""Genre transfer: windows and cross-fades, any rate / channels / length, CLI outputs, errors."""
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import transfer
from prepare_data import mel_db
from transfer import GenreTransfer, overlap_add, window_starts

ROOT = Path(__file__).resolve().parents[1]


def test_windows_cover_the_input_and_crossfade_is_neutral():
    assert window_starts(10, 20, 5) == [0]
    starts = window_starts(103, 20, 10)
    assert starts[0] == 0 and starts[-1] + 20 >= 103
    const = [torch.full((2, 20), 3.0) for _ in starts]
    assert torch.allclose(overlap_add(const, starts, 103, 20), torch.full((2, 103), 3.0))
    ramp = torch.arange(20.0)
    assert torch.allclose(overlap_add([ramp], [0], 20, 20), ramp)


@pytest.fixture(scope="module")
def tr(tiny_checkpoint):
    return GenreTransfer.from_checkpoint(tiny_checkpoint)


def _clip(synthetic_root, genre="blues"):
    path = sorted((Path(synthetic_root) / "genres_original" / genre).glob("*.wav"))[0]
    audio, sr = sf.read(path, dtype="float32")
    return path, audio, sr


@pytest.mark.parametrize("method", ["shift", "conditional"])
def test_any_rate_channels_and_length_keep_their_shape(tr, synthetic_root, method):
    _, audio, sr = _clip(synthetic_root)
    mono = audio[: int(2.3 * sr) + 7]                                     # odd length, < 1 window
    out, src = tr.transfer_array(mono, sr, "reggae", "blues", method)
    assert out.shape == mono.shape and np.isfinite(out).all() and np.abs(out).max() > 1e-3
    import librosa
    stereo = np.stack([audio, audio[::-1].copy()])
    stereo44 = librosa.resample(stereo, orig_sr=sr, target_sr=44100)      # 4 s at 44.1 kHz, 2 channels
    out, _ = tr.transfer_array(stereo44, 44100, "metal", "blues", method)
    assert out.shape == stereo44.shape and np.isfinite(out).all()
    assert not np.allclose(out[0], out[1])                                # channels kept apart


def test_zero_strength_is_the_reconstruction(tr, synthetic_root):
    _, audio, sr = _clip(synthetic_root)
    rec = tr.transfer_mono(audio, "blues", "blues", "conditional", 1.0)
    for method in ("shift", "conditional"):
        out = tr.transfer_mono(audio, "blues", "rock", method, 0.0)
        assert np.allclose(out, rec, atol=1e-5)
    moved = tr.transfer_mono(audio, "blues", "rock", "shift", 3.0)
    assert not np.allclose(moved, rec, atol=1e-3)


def test_errors_name_the_problem(tr, synthetic_root, tmp_path):
    path, audio, sr = _clip(synthetic_root)
    with pytest.raises(ValueError, match="unknown genre 'polka'.*blues, classical, country"):
        tr.transfer_file(path, "polka", tmp_path)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(ValueError, match="bad.wav"):
        tr.transfer_file(bad, "rock", tmp_path, source_genre="blues")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        GenreTransfer.from_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="source genre"):
        GenreTransfer(tr.model, tr.state, judge=None).transfer_array(audio, sr, "rock")
    with pytest.raises(ValueError, match="unknown method"):
        tr.transfer_mono(audio, "blues", "rock", "magic", 1.0)


def test_cli_writes_wav_figure_and_manifest(tiny_checkpoint, synthetic_root, tmp_path):
    path, audio, sr = _clip(synthetic_root, "jazz")
    out = tmp_path / "results"
    for method in ("shift", "conditional"):
        result = subprocess.run([sys.executable, str(ROOT / "transfer.py"), "--checkpoint", str(tiny_checkpoint),
                                 "--input", str(path), "--source", "jazz", "--target", "disco",
                                 "--method", method, "--strength", "0.8", "--out", str(out)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert [r["method"] for r in rows] == ["shift", "conditional"]
    assert rows[0]["source_genre"] == "jazz" and rows[0]["target_genre"] == "disco" and rows[0]["strength"] == "0.8"
    for r in rows:
        wav, wav_sr = sf.read(out / r["output_file"])
        assert wav_sr == sr and len(wav) == len(audio)
        assert (out / r["output_file"]).with_suffix(".png").stat().st_size > 5000
    bad = subprocess.run([sys.executable, str(ROOT / "transfer.py"), "--checkpoint", str(tiny_checkpoint),
                          "--input", str(path), "--target", "polka", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown genre 'polka'" in bad.stderr


def test_decoder_use_is_zero_when_the_decoder_cannot_see_the_latent(tiny_checkpoint, synthetic_root):
    t = GenreTransfer.from_checkpoint(tiny_checkpoint)
    clips = [_clip(synthetic_root, g)[1] for g in ("blues", "metal", "jazz")]
    labels = [0, 6, 5]
    use = t.decoder_use(clips, labels)
    assert use["latent_use"] > 0.01 and use["clip_difference"] > 0.05
    assert use["latent_use"] == pytest.approx(use["latent_swap_change"] / use["clip_difference"])
    dec = t.model.decoder
    with torch.no_grad():                     # cut every path from z into the decoder
        dec.inp.weight.zero_()
        for skip in (dec.skips or []):
            skip.weight.zero_()
    cut = t.decoder_use(clips, labels)
    assert cut["latent_use"] == 0.0
    with pytest.raises(ValueError, match="at least two clips"):
        t.decoder_use(clips[:1], labels[:1])


def test_stereo_channels_go_through_together_and_keep_their_band_levels(tr, synthetic_root):
    """Both channels of a stereo clip are transferred together (their windows in one pass
    through the model, one vocoding of their mid): each output channel keeps its own level
    band by band, so its log-mel is near that channel transferred alone and the channels
    differ where those do; equal channels give the mono transfer."""
    _, a, sr = _clip(synthetic_root, "blues")
    _, b, _ = _clip(synthetic_root, "metal")
    n = min(len(a), len(b))
    stereo = np.stack([a[:n] + 0.25 * b[:n], 0.25 * a[:n] + b[:n]])          # two parts panned apart
    out, _ = tr.transfer_array(stereo, sr, "reggae", "blues")
    alone = np.stack([tr.transfer_mono(ch, "blues", "reggae") for ch in stereo])
    assert out.shape == stereo.shape and np.isfinite(out).all()
    db = [mel_db(torch.from_numpy(x), tr.audio).numpy() for x in (*out, *alone)]   # out L, out R, alone L, R
    apart = np.abs(db[2] - db[3]).mean()                                    # how far the channels are apart, dB
    gaps = [np.abs(db[c] - db[2 + c]).mean() for c in range(2)]
    assert apart > 3.0 and max(gaps) < 0.3 * apart, (apart, gaps)
    assert np.corrcoef((db[0] - db[1]).ravel(), (db[2] - db[3]).ravel())[0, 1] > 0.9
    twin, _ = tr.transfer_array(np.stack([a[:n], a[:n]]), sr, "reggae", "blues")
    mono = tr.transfer_mono(a[:n], "blues", "reggae")
    assert np.abs(twin - mono).max() < 1e-3 * np.abs(mono).max()


def test_a_long_transfer_shows_its_progress(tr, synthetic_root, monkeypatch, capsys):
    _, audio, sr = _clip(synthetic_root)
    monkeypatch.setattr(transfer, "PROGRESS_AFTER_S", 0.0)                   # any transfer counts as long
    tr.transfer_array(audio, sr, "reggae", "blues", desc="a clip")
    err = capsys.readouterr().err
    assert "a clip" in err and "step" in err
    tr.transfer_array(audio, sr, "reggae", "blues", desc=None)               # no name, no bar
    assert capsys.readouterr().err == ""


def test_an_mp3_that_decodes_short_of_its_header_transfers(tr, synthetic_root, tmp_path):
    """An MP3 whose header promises more frames than it decodes to (its last frames cut at a
    frame boundary, a quarter second) is read and transferred to a WAV of its decoded length."""
    from mp3_frames import cut_mp3
    _, audio, sr = _clip(synthetic_root, "jazz")
    sf.write(str(tmp_path / "whole.mp3"), np.stack([audio, audio[::-1]], axis=1), sr, format="MP3")
    declared, decoded = cut_mp3(tmp_path / "whole.mp3", tmp_path / "short.mp3", 10)
    assert declared - decoded > 0.2 * sr
    wav = tr.transfer_file(tmp_path / "short.mp3", "disco", tmp_path / "out", source_genre="jazz", figure=False)
    out, out_sr = sf.read(wav, dtype="float32")
    assert out_sr == sr and out.shape == (decoded, 2) and np.abs(out).max() > 1e-3
