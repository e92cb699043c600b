"""audio_io: vocoder quality and contracts, figures and WAVs, latent interpolation.

Short synthetic music (harmonic notes with onsets + drums + noise), CPU, files in tmp_path.
No timing asserts: speed is measured by ``benchmark.benchmark_vocoder`` (``make bench``).
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import audio_io
from prepare_data import AudioConfig, enhanced_audio_to_mel, mel_db, norm_to_db

SR = 22050
SECONDS = 2.5
# Round trip (mel -> vocoder -> mel): mean |dB| error over bins above db_min + 10 dB. Measured
# 1.1-1.3 dB on the clips below (seeds 0-3) and 0.55-0.9 dB on 3 s synthetic GTZAN clips.
ROUND_TRIP_DB = 3.0


def music(seed: int, seconds: float = SECONDS, sr: int = SR) -> np.ndarray:
    """Music-like test audio: harmonic notes with attacks, kick / snare / hi-hat, a noise floor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    beat = 60.0 / rng.uniform(90, 140)
    onset = 0.0
    while onset < seconds:
        i0 = int(onset * sr)
        tl = t[i0:] - onset
        env = np.minimum(tl / 0.01, 1.0) * np.exp(-tl * rng.uniform(2, 5))
        for midi in 48 + rng.choice([0, 2, 4, 5, 7, 9, 11, 12, 16], size=rng.integers(1, 4)):
            f0 = 440.0 * 2 ** ((midi - 69) / 12)
            for h in range(1, 10):
                if f0 * h < sr / 2.5:
                    y[i0:] += 0.15 * env * np.sin(2 * np.pi * f0 * h * tl + rng.uniform(0, 6)) / h
        onset += beat * rng.choice([0.5, 1.0])
    for k in range(int(seconds / beat * 2)):
        i0 = int(k * beat / 2 * sr)
        tl = np.arange(n - i0)[: int(0.3 * sr)] / sr
        if k % 4 == 0:                                            # kick
            y[i0:i0 + len(tl)] += 0.6 * np.sin(2 * np.pi * np.cumsum(50 + 90 * np.exp(-tl * 30)) / sr) * np.exp(-tl * 12)
        elif k % 4 == 2:                                          # snare
            y[i0:i0 + len(tl)] += 0.25 * rng.standard_normal(len(tl)) * np.exp(-tl * 25)
        y[i0:i0 + len(tl)] += 0.05 * np.diff(rng.standard_normal(len(tl) + 1)) * np.exp(-tl * 80)  # hi-hat
    y += 0.002 * rng.standard_normal(n)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cfg():
    return AudioConfig(n_frames=None)


@pytest.fixture(scope="module")
def clip():
    return music(0)


@pytest.fixture(scope="module")
def mel(clip, cfg):
    return enhanced_audio_to_mel(torch.from_numpy(clip), cfg, fit=False)[0]      # (1, M, F)


# --------------------------------------------------------------------------- vocoder
def test_round_trip_mel_error_is_bounded(cfg):
    for seed in (0, 1):
        y = music(seed)
        mel = enhanced_audio_to_mel(torch.from_numpy(y), cfg, fit=False)[0, 0]
        audio = audio_io.high_quality_mel_to_audio(mel, cfg, length=len(y))
        db_in, db_out = norm_to_db(mel, cfg), mel_db(audio, cfg)
        loud = db_in > cfg.db_min + 10
        err = (db_in - db_out).abs()[loud].mean().item()
        assert loud.float().mean() > 0.5
        assert err < ROUND_TRIP_DB, f"seed {seed}: mean |dB| error {err:.2f}"


def test_not_worse_than_librosa_on_the_same_mel(clip, cfg):
    """The seed's librosa mel_to_audio (NNLS + 100 Griffin-Lim iterations) vs ours, same mel.
    Measured spectral convergence on this clip: librosa 0.292, ours 0.246."""
    from benchmark import benchmark_vocoder
    result = benchmark_vocoder(clip, cfg, repeats=1)
    assert set(result) >= {"librosa_s", "ours_s", "speedup", "librosa_sc", "ours_sc"}
    assert result["librosa_s"] > 0 and result["ours_s"] > 0
    assert result["ours_sc"] <= result["librosa_sc"], result
    assert result["ours_sc"] < 0.5


def test_nnls_inversion_fits_the_mel(mel, cfg):
    power = audio_io._norm_to_power(mel[0], cfg)                                 # (M, F)
    linear = audio_io.mel_to_linear_power(power, cfg)                            # (K, F)
    assert linear.shape == (cfg.n_fft // 2 + 1, mel.shape[-1]) and bool((linear >= 0).all())
    from prepare_data import mel_filterbank
    fb = mel_filterbank(cfg)
    fit = torch.linalg.norm(fb @ linear - power) / torch.linalg.norm(power)
    start = torch.linalg.norm(fb @ (torch.linalg.pinv(fb) @ power).clamp_min(0) - power) / torch.linalg.norm(power)
    assert fit < 0.01 and fit < 0.2 * start


def test_batched_equals_per_item(cfg):
    mels = torch.stack([enhanced_audio_to_mel(torch.from_numpy(music(s, 1.5)), cfg, fit=False)[0]
                        for s in (3, 4)])                                        # (2, 1, M, F)
    batch = audio_io.high_quality_mel_to_audio(mels, cfg, n_iter=8, nnls_iter=8)
    for i in range(2):
        single = audio_io.high_quality_mel_to_audio(mels[i], cfg, n_iter=8, nnls_iter=8)
        torch.testing.assert_close(batch[i], single, atol=2e-4, rtol=1e-3)
    assert not torch.allclose(batch[0], batch[1])


@pytest.mark.parametrize("shape, out", [((128, 20), (19 * 512,)), ((1, 128, 20), (19 * 512,)),
                                        ((3, 128, 20), (3, 19 * 512)), ((2, 1, 128, 20), (2, 19 * 512))])
def test_shapes(shape, out, cfg):
    mel = torch.rand(shape) * 2 - 1
    audio = audio_io.high_quality_mel_to_audio(mel, cfg, n_iter=4, nnls_iter=4)
    assert tuple(audio.shape) == out and audio.dtype == torch.float32
    assert bool(torch.isfinite(audio).all())
    wave = audio_io.high_quality_mel_to_audio(mel.numpy(), cfg, n_iter=4, nnls_iter=4)   # numpy in
    assert tuple(wave.shape) == out


def test_silence_vocodes_to_silence(cfg):
    audio = audio_io.high_quality_mel_to_audio(-torch.ones(2, 1, 128, 30), cfg, n_iter=8)
    assert float(audio.abs().max()) < 1e-6
    quiet = audio_io.high_quality_mel_to_audio(torch.full((128, 30), -0.98), cfg, n_iter=8)  # -59 dB
    assert float(quiet.abs().max()) < 1e-3


def test_length_is_honoured(mel, cfg):
    natural = (mel.shape[-1] - 1) * cfg.hop_length
    for length in (1000, natural - 7, natural + 300, natural + 5 * cfg.n_fft):
        audio = audio_io.high_quality_mel_to_audio(mel, cfg, n_iter=4, nnls_iter=4, length=length)
        assert audio.shape == (length,)
    long = audio_io.high_quality_mel_to_audio(mel, cfg, n_iter=4, nnls_iter=4, length=natural + 5 * cfg.n_fft)
    assert float(long[-2 * cfg.n_fft:].abs().max()) == 0.0                       # zero padding


def test_output_finite_and_saved_within_unit_range(tmp_path, cfg):
    loud = torch.ones(128, 40)                                                   # db_max everywhere
    audio = audio_io.high_quality_mel_to_audio(loud, cfg, n_iter=8)
    assert bool(torch.isfinite(audio).all()) and float(audio.abs().max()) > 1.0
    path = audio_io.save_wav(tmp_path / "a" / "b" / "loud.wav", audio, cfg.sample_rate)
    data, sr = sf.read(path, dtype="float32")
    assert sr == cfg.sample_rate and len(data) == audio.shape[-1]
    assert sf.info(str(path)).subtype == "PCM_16"
    assert np.isfinite(data).all() and np.abs(data).max() <= 1.0


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(128), r"shape \(128,\)"),
    (torch.zeros(2, 2, 128, 10), r"shape \(2, 2, 128, 10\)"),
    (torch.zeros(1, 64, 10), r"64 mel bands but cfg.n_mels=128"),
    (torch.zeros(128, 1), r"at least 2 frames"),
])
def test_bad_shapes_raise(bad, match, cfg):
    with pytest.raises(ValueError, match=match):
        audio_io.high_quality_mel_to_audio(bad, cfg)


def test_nan_mel_raises(cfg):
    mel = torch.zeros(1, 128, 10)
    mel[0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite.*nan"):
        audio_io.high_quality_mel_to_audio(mel, cfg)


def test_a_long_mel_is_vocoded_in_pieces_as_well_as_whole(cfg):
    """Pieces of 60 frames (4 joints in 6 s) with the previous piece's audio held on the left:
    the spectrogram is as close to the source as the whole clip's, also around the joints; a
    batch equals its items; the progress hook hears every piece."""
    import librosa
    y = np.concatenate([music(5, 3.0), music(6, 3.0)])                          # 6 s, 259 frames
    mel = enhanced_audio_to_mel(torch.from_numpy(y), cfg, fit=False)[0, 0]      # (M, F)
    pieces = audio_io.vocoder_pieces(mel.shape[-1], 60)
    assert len(pieces) == 5 and pieces[0] == (0, 60) and pieces[-1][1] == mel.shape[-1]
    calls = []
    with audio_io.vocoder_progress(calls.append):
        chunked = audio_io.high_quality_mel_to_audio(mel, cfg, length=len(y), chunk_frames=60)
    whole = audio_io.high_quality_mel_to_audio(mel, cfg, length=len(y))
    assert calls == [1] * 5 and chunked.shape == whole.shape == (len(y),)

    def frame_error(audio):                      # relative spectral error of each frame, [F]
        S = np.abs(librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length))
        O = np.abs(librosa.stft(audio.numpy(), n_fft=cfg.n_fft, hop_length=cfg.hop_length))
        return np.linalg.norm(O - S, axis=0) / (np.linalg.norm(S, axis=0) + 1e-9)

    err_whole, err_chunked = frame_error(whole), frame_error(chunked)
    near = np.concatenate([np.arange(a - 3, a + 4) for a, _ in pieces[1:]])    # 3 frames either side of a joint
    assert err_chunked.mean() < 1.05 * err_whole.mean(), (err_chunked.mean(), err_whole.mean())
    assert err_chunked[near].mean() < 1.2 * err_whole[near].mean(), (err_chunked[near].mean(), err_whole[near].mean())
    few = dict(length=len(y), chunk_frames=60, n_iter=8, nnls_iter=8)   # momentum grows rounding with iterations
    batch = audio_io.high_quality_mel_to_audio(torch.stack([mel, mel.flip(-1)]), cfg, **few)
    torch.testing.assert_close(batch[0], audio_io.high_quality_mel_to_audio(mel, cfg, **few), atol=2e-4, rtol=1e-3)
    with pytest.raises(ValueError, match="chunk_frames"):
        audio_io.vocoder_pieces(100, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_matches_cpu(mel, cfg):
    cpu = audio_io.high_quality_mel_to_audio(mel, cfg, n_iter=8, nnls_iter=8)
    gpu = audio_io.high_quality_mel_to_audio(mel.cuda(), cfg, n_iter=8, nnls_iter=8)
    assert gpu.is_cuda                       # float sums run in another order: close, not equal
    assert float(torch.linalg.norm(gpu.cpu() - cpu) / torch.linalg.norm(cpu)) < 1e-2


# --------------------------------------------------------------------------- files and figures
def test_save_wav_is_atomic_and_checks_input(tmp_path):
    path = audio_io.save_wav(tmp_path / "x" / "tone.wav", np.sin(np.arange(1000) / 5.0) * 1.5, 8000)
    assert sorted(p.name for p in path.parent.iterdir()) == ["tone.wav"]          # no temp file left
    data, sr = sf.read(path)
    assert sr == 8000 and data.shape == (1000,) and np.abs(data).max() <= 1.0
    stereo = audio_io.save_wav(tmp_path / "stereo.wav", torch.zeros(2, 500), 8000)
    assert sf.read(stereo)[0].shape == (500, 2)
    with pytest.raises(ValueError, match="NaN"):
        audio_io.save_wav(tmp_path / "nan.wav", np.array([0.0, np.nan]), 8000)
    assert not (tmp_path / "nan.wav").exists()
    from cli import OutputError
    with pytest.raises(OutputError, match=rf"cannot write {tmp_path}/stereo.wav/x.wav: {tmp_path}/stereo.wav "
                                          "is a file, expected a folder"):
        audio_io.save_wav(tmp_path / "stereo.wav" / "x.wav", torch.zeros(2, 500), 8000)   # a folder that is a file


def test_crossfade_concat():
    ones = [np.ones(100, np.float32)] * 3
    joined = audio_io.crossfade_concat(ones, 20)
    assert isinstance(joined, np.ndarray) and joined.shape == (260,)
    np.testing.assert_allclose(joined, 1.0, atol=1e-6)                            # gains sum to 1
    ramp = audio_io.crossfade_concat([torch.zeros(50), torch.ones(50)], 10)
    assert torch.is_tensor(ramp) and ramp.shape == (90,) and bool((ramp.diff() >= 0).all())
    assert audio_io.crossfade_concat(ones, 0).shape == (300,)
    with pytest.raises(ValueError, match="overlap"):
        audio_io.crossfade_concat(ones, 101)


def test_enhanced_visualize_and_play(tmp_path, clip, mel, cfg):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    paths = audio_io.enhanced_visualize_and_play(clip, mel, mel[0] * 0.9, cfg, title="test",
                                                 out_dir=tmp_path / "out", name="c1", play=True)
    assert set(paths) == {"figure", "original", "reconstruction", "transfer"}
    assert paths["figure"].suffix == ".png" and paths["figure"].stat().st_size > 1000
    frames_len = (mel.shape[-1] - 1) * cfg.hop_length
    for role, n in (("original", len(clip)), ("reconstruction", frames_len), ("transfer", frames_len)):
        data, sr = sf.read(paths[role])
        assert sr == cfg.sample_rate and data.shape == (n,) and sf.info(str(paths[role])).subtype == "PCM_16"
    only = audio_io.enhanced_visualize_and_play(torch.from_numpy(clip), cfg=cfg, out_dir=tmp_path, name="c2")
    assert set(only) == {"figure", "original"}
    assert plt.get_fignums() == before                                            # no figure leak
    with pytest.raises(ValueError, match="mel bands"):
        audio_io.enhanced_visualize_and_play(torch.zeros(64, 10) - 1, cfg=cfg, out_dir=tmp_path)


# --------------------------------------------------------------------------- latent paths
def test_slerp_and_lerp():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, generator=g), torch.randn(16, generator=g)
    t = torch.linspace(0, 1, 7)
    path = audio_io.slerp(a, b, t)
    assert path.shape == (7, 16)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    norms = path.norm(dim=1)
    torch.testing.assert_close(norms, (1 - t) * a.norm() + t * b.norm())           # norms go linearly
    cos = torch.nn.functional.cosine_similarity(path[:-1], path[1:], dim=1)        # constant angular steps
    torch.testing.assert_close(cos, cos.mean().expand_as(cos), atol=1e-5, rtol=0)
    same_norm = audio_io.slerp(a, 2 * a.norm() * b / b.norm(), 0.5)
    assert same_norm.shape == (16,)
    near = audio_io.slerp(a, a * (1 + 1e-9), t)                                    # parallel: lerp
    assert bool(torch.isfinite(near).all())
    torch.testing.assert_close(near, audio_io.lerp(a, a * (1 + 1e-9), t))
    line = audio_io.lerp(a, b, t)
    torch.testing.assert_close(line[3], (a + b) / 2)
    with pytest.raises(ValueError, match="shapes differ"):
        audio_io.slerp(a, torch.zeros(3), 0.5)


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolate_latent_space(tmp_path, mode):
    cfg = AudioConfig.preset("demo", n_frames=None)                               # 64 mels
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(8, cfg.n_mels * 12, generator=g) * 0.5

    def decode(z):                                                                # (S, 8) -> (S, 1, M, 12)
        return torch.tanh(z @ weight).reshape(z.shape[0], 1, cfg.n_mels, 12)

    z_a, z_b = torch.randn(8, generator=g), torch.randn(1, 8, generator=g)[0]
    result = audio_io.interpolate_latent_space(decode, z_a, z_b, steps=5, mode=mode, cfg=cfg,
                                               out_dir=tmp_path / "interp", name="ab")
    assert torch.equal(result["latents"][0], z_a) and torch.equal(result["latents"][-1], z_b)
    assert result["latents"].shape == (5, 8) and result["audio"].shape == (5, 11 * cfg.hop_length)
    paths = result["paths"]
    assert paths["figure"].exists() and len(paths["steps"]) == 5
    overlap = round(0.05 * cfg.sample_rate)
    data, sr = sf.read(paths["path"])
    assert sr == cfg.sample_rate and len(data) == 5 * 11 * cfg.hop_length - 4 * overlap
    assert all(sf.read(p)[0].shape == (11 * cfg.hop_length,) for p in paths["steps"])

    waves = audio_io.interpolate_latent_space(lambda z: torch.tanh(z @ torch.ones(8, 3000)), z_a, z_b,
                                              steps=3, mode=mode, cfg=cfg, out_dir=tmp_path, name="w")
    assert waves["audio"].shape == (3, 3000)
    with pytest.raises(ValueError, match="mode"):
        audio_io.interpolate_latent_space(decode, z_a, z_b, mode="cubic", cfg=cfg, out_dir=tmp_path)
