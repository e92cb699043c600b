"""Tests for synthetic_gtzan: layout, manifest, determinism, audio sanity, content vs genre.

Everything is written under tmp_path; clips are 1-3 s long.
"""
import csv
import json
import sys
import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest
from scipy.io import wavfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import synthetic_gtzan as sg  # noqa: E402
import synthetic_music as sm  # noqa: E402
from synthetic_gtzan import GENRES, generate, read_manifest, render_clip  # noqa: E402

SR, DUR, PER_GENRE = 22050, 2.0, 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A 2-per-genre x 2 s synthetic GTZAN written with two worker processes."""
    root = tmp_path_factory.mktemp("synthetic")
    manifest = generate(root, n_per_genre=PER_GENRE, duration=DUR, sr=SR, seed=0, workers=2)
    return root, manifest


@pytest.fixture(scope="module")
def clips():
    """One clip of content 0 per genre, {genre: float32 [T]}."""
    return {g: render_clip(0, g, sr=SR, duration=DUR) for g in GENRES}


def chroma(x, sr=SR):
    """Mean CENS chroma, centred and unit-norm. [12]"""
    with warnings.catch_warnings():  # librosa's CQT warns about its low octaves on short clips
        warnings.simplefilter("ignore", UserWarning)
        v = librosa.feature.chroma_cens(y=x, sr=sr).mean(1)
    v = v - v.mean()
    return v / np.linalg.norm(v)


# ----------------------------------------------------------------------------- layout, manifest
def test_layout_and_names(dataset):
    root, manifest = dataset
    assert manifest == root / "synthetic_manifest.csv"
    wavs = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))
    expected = sorted(f"genres_original/{g}/{g}.{k:05d}.wav" for g in GENRES for k in range(PER_GENRE))
    assert wavs == expected
    assert sorted(p.name for p in root.iterdir()) == ["genres_original", "synthetic_manifest.csv",
                                                       "synthetic_params.json"]


def test_wav_format(dataset):
    root, _ = dataset
    for path in (root / "genres_original").rglob("*.wav"):
        rate, data = wavfile.read(path)
        assert rate == SR
        assert data.dtype == np.int16 and data.ndim == 1
        assert data.shape == (round(SR * DUR),)
        assert np.abs(data).max() < 32767 * 0.9       # limiter ceiling, no clipping
        assert np.sqrt(np.mean((data / 32768.0) ** 2)) > 0.03


def test_manifest_content(dataset):
    root, manifest = dataset
    with open(manifest, newline="") as f:
        assert next(csv.reader(f)) == ["file", "genre", "content_id"]
    rows = read_manifest(root)
    assert len(rows) == len(GENRES) * PER_GENRE
    for row in rows:
        assert (root / row["file"]).is_file()
        assert row["file"].split("/")[1] == row["genre"]
        assert int(row["file"].rsplit(".", 2)[1]) == row["content_id"]  # clip k renders content k
    for g in GENRES:  # every content exists in every genre
        assert sorted(r["content_id"] for r in rows if r["genre"] == g) == list(range(PER_GENRE))
    params = json.loads((root / "synthetic_params.json").read_text())
    assert params["complete"] is True
    assert params["params"]["n_per_genre"] == PER_GENRE and params["params"]["sr"] == SR
    assert sg.dataset_kind(root) == "oscillator"


def test_timed_rendering_at_the_clips_own_timing_is_the_clip(dataset):
    root, _ = dataset
    x = sg.timed_rendering(root, 1, "disco", "disco", SR)
    _, data = wavfile.read(root / "genres_original/disco/disco.00001.wav")
    np.testing.assert_array_equal(np.round(x * 32767).astype(np.int16), data)
    tempo, swing = sg.clip_timing(1, "pop")                 # another genre's timing, a second draw
    np.testing.assert_array_equal(sg.timed_rendering(root, 1, "pop", "disco", SR, draw=2),
                                  render_clip(1, "disco", sr=SR, duration=DUR, seed=2, tempo=tempo, swing=swing))


def test_written_clip_equals_render_clip(dataset):
    root, _ = dataset
    _, data = wavfile.read(root / "genres_original/jazz/jazz.00001.wav")
    expected = np.round(render_clip(1, "jazz", sr=SR, duration=DUR) * 32767).astype(np.int16)
    np.testing.assert_array_equal(data, expected)


def test_content_offset(tmp_path):
    generate(tmp_path, n_per_genre=1, duration=0.5, genres=("rock", "pop"), content_offset=7, workers=1)
    assert read_manifest(tmp_path) == [
        dict(file="genres_original/rock/rock.00000.wav", genre="rock", content_id=7),
        dict(file="genres_original/pop/pop.00000.wav", genre="pop", content_id=7)]
    _, data = wavfile.read(tmp_path / "genres_original/pop/pop.00000.wav")
    expected = np.round(render_clip(7, "pop", duration=0.5) * 32767).astype(np.int16)
    np.testing.assert_array_equal(data, expected)


# ----------------------------------------------------------------------------- skip / overwrite
def test_same_parameters_skip_work(tmp_path):
    kwargs = dict(n_per_genre=1, duration=0.5, genres=("blues", "metal"), workers=1)
    generate(tmp_path, **kwargs)
    wav = tmp_path / "genres_original/blues/blues.00000.wav"
    wav.write_bytes(b"marker")  # a second call with the same parameters must not rewrite it
    generate(tmp_path, **kwargs)
    assert wav.read_bytes() == b"marker"
    generate(tmp_path, overwrite=True, **kwargs)
    assert wavfile.read(wav)[1].shape == (round(22050 * 0.5),)


def test_other_parameters_need_overwrite(tmp_path):
    generate(tmp_path, n_per_genre=2, duration=0.5, genres=("disco",), workers=1)
    with pytest.raises(FileExistsError):
        generate(tmp_path, n_per_genre=1, duration=0.5, genres=("disco",), workers=1, seed=3)
    generate(tmp_path, n_per_genre=1, duration=0.5, genres=("disco",), workers=1, seed=3, overwrite=True)
    assert sorted(p.name for p in tmp_path.rglob("*.wav")) == ["disco.00000.wav"]  # old clip 1 removed


def test_interrupted_run_is_redone(tmp_path):
    kwargs = dict(n_per_genre=1, duration=0.5, genres=("reggae",), workers=1)
    generate(tmp_path, **kwargs)
    state = json.loads((tmp_path / "synthetic_params.json").read_text())
    (tmp_path / "synthetic_params.json").write_text(json.dumps({**state, "complete": False}))
    wav = tmp_path / "genres_original/reggae/reggae.00000.wav"
    wav.write_bytes(b"half")
    generate(tmp_path, **kwargs)
    assert wavfile.read(wav)[1].shape == (round(22050 * 0.5),)


def test_refuses_to_write_over_foreign_files(tmp_path):
    foreign = tmp_path / "genres_original/blues/blues.00000.wav"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"a real GTZAN clip")
    with pytest.raises(FileExistsError):
        generate(tmp_path, n_per_genre=1, duration=0.5, genres=("blues",), workers=1)
    assert foreign.read_bytes() == b"a real GTZAN clip"


# ----------------------------------------------------------------------------- determinism
def test_same_seed_identical_different_seed_or_variant_differs():
    a = render_clip(3, "country", duration=1.5, seed=5)
    np.testing.assert_array_equal(a, render_clip(3, "country", duration=1.5, seed=5))
    for other in (render_clip(3, "country", duration=1.5, seed=6),
                  render_clip(3, "country", duration=1.5, seed=5, variant=1),
                  render_clip(4, "country", duration=1.5, seed=5)):
        assert np.abs(a - other).mean() > 0.01


def test_generate_is_byte_identical(tmp_path):
    kwargs = dict(n_per_genre=2, duration=0.5, genres=("hiphop", "classical"), seed=1)
    generate(tmp_path / "a", workers=1, **kwargs)
    generate(tmp_path / "b", workers=2, **kwargs)
    generate(tmp_path / "c", workers=1, **{**kwargs, "seed": 2})
    for row in read_manifest(tmp_path / "a"):
        assert (tmp_path / "a" / row["file"]).read_bytes() == (tmp_path / "b" / row["file"]).read_bytes()
        assert (tmp_path / "a" / row["file"]).read_bytes() != (tmp_path / "c" / row["file"]).read_bytes()


def test_content_does_not_depend_on_genre_or_seed():
    content = sg.make_content(11)
    again = sg.make_content(11)
    assert content.tonic == again.tonic and content.chords == again.chords
    np.testing.assert_array_equal(content.melody, again.melody)
    assert content.melody[:, 0].max() < content.length_beats          # onsets are in beats
    assert set(content.melody[:, 2] % 12) <= set((content.tonic + np.array(sm.SCALES[content.minor])) % 12)


# ----------------------------------------------------------------------------- audio sanity
@pytest.mark.parametrize("sr, duration", [(22050, 2.0), (16000, 1.25), (8000, 0.01)])
def test_shape_dtype_rate(sr, duration):
    x = render_clip(2, "blues", sr=sr, duration=duration)
    assert x.dtype == np.float32 and x.shape == (round(sr * duration),)


def test_finite_loud_enough_not_clipped(clips):
    lo, hi = 10 ** (np.array(sm.RMS_DB) / 20)
    for genre, x in clips.items():
        assert np.isfinite(x).all(), genre
        assert np.abs(x).max() <= sm.PEAK + 1e-6, genre
        assert np.mean(np.abs(x) >= sm.PEAK - 1e-4) < 0.01, genre    # limited, not squared off
        assert 0.8 * lo < np.sqrt(np.mean(x ** 2)) <= 1.001 * hi, genre
        frames = np.sqrt(np.mean(x[:len(x) // 2205 * 2205].reshape(-1, 2205) ** 2, axis=1))
        assert np.mean(frames > 0.01) > 0.9, genre                       # sound throughout


def test_genres_differ_and_tempo_ranges_overlap(clips):
    spectra = {g: np.log(np.abs(np.fft.rfft(x))[:20000].reshape(200, -1).mean(1) + 1e-6)  # 200 bands
               for g, x in clips.items()}
    for a in GENRES:
        for b in GENRES:
            if a < b:
                assert np.abs(spectra[a] - spectra[b]).mean() > 0.2, (a, b)
    tempo_ranges = [sm.STYLES[g].tempo for g in GENRES]
    for lo, hi in tempo_ranges:  # each genre's tempo range overlaps at least three others
        assert sum(lo < h and l < hi for l, h in tempo_ranges) >= 4


def test_same_content_has_similar_chroma_across_genres():
    contents = (1, 2, 4)   # 2 and 4 share a tonic (minor / major): the hard case
    vectors = {(g, c): chroma(render_clip(c, g, duration=3.0)) for g in GENRES for c in contents}
    wins, same, other = [], [], []
    for a in GENRES:
        for c in contents:
            best_other = max(vectors[a, c] @ vectors[a, d] for d in contents if d != c)
            other.append(best_other)
            for b in GENRES:
                if b != a:
                    same.append(vectors[a, c] @ vectors[b, c])
                    wins.append(same[-1] > best_other)
    assert np.mean(wins) >= 0.85
    assert np.mean(same) > 0.6 and np.mean(same) - np.mean(other) > 0.4


# ----------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("midi", [40, 57, 81])  # block recursion (long delay) and IIR path (short)
def test_pluck_pitch(midi):
    f0, sr = sm.midi_hz(midi), 22050
    p = dict(brightness=.6, t60=2.0)
    y = sm.tone_pluck(f0, sr, sr, p, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), 8 * len(y)))
    freqs = np.fft.rfftfreq(8 * len(y), 1 / sr)
    peak = freqs[np.argmax(spectrum * ((freqs > 0.5 * f0) & (freqs < 1.5 * f0)))]
    assert abs(1200 * np.log2(peak / f0)) < 10                           # within 10 cents


def test_limiter_caps_peaks_and_keeps_quiet_parts():
    x = np.concatenate([0.1 * np.sin(np.arange(4000) * 0.05), 3.0 * np.sin(np.arange(4000) * 0.05),
                        0.1 * np.sin(np.arange(4000) * 0.05)])
    y = sm.limit_peaks(x, 8000, ceiling=0.5)
    assert np.abs(y).max() <= 0.5 + 1e-9
    assert np.abs(y[4000:8000]).max() > 0.45
    np.testing.assert_allclose(y[:3900], x[:3900])


def test_tilt_reaches_target_centroid():
    x = np.random.default_rng(0).standard_normal(22050 * 2)
    for target in (1500.0, 2500.0):
        y = sm.tilt_to_centroid(x, 22050, target)
        centroid = librosa.feature.spectral_centroid(y=y, sr=22050).mean()
        assert abs(centroid - target) / target < 0.1


# ----------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kwargs, word", [
    (dict(genres=("rock", "polka")), "polka"), (dict(genres=("rock", "rock")), "distinct"),
    (dict(n_per_genre=0), "n_per_genre"), (dict(duration=0), "duration"), (dict(duration=-1.0), "duration"),
    (dict(sr=100), "sr"), (dict(seed=-1), "seed"), (dict(workers=0), "workers"),
    (dict(content_offset=-2), "content_offset"), (dict(n_per_genre=1.5), "n_per_genre"),
    (dict(kind="midi"), "kind"),
])
def test_generate_rejects_bad_arguments(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        generate(tmp_path, **{"duration": 0.5, **kwargs})
    assert not (tmp_path / "synthetic_manifest.csv").exists()


@pytest.mark.parametrize("args, word", [
    ((0, "polka"), "polka"), ((-1, "rock"), "content_id"), ((0, "rock", 22050, float("nan")), "duration"),
    ((0, "rock", 22050.0), "sr"),
])
def test_render_clip_rejects_bad_arguments(args, word):
    content_id, genre, *rest = args
    kwargs = dict(zip(("sr", "duration"), rest))
    with pytest.raises(ValueError, match=word):
        render_clip(content_id, genre, **kwargs)
    with pytest.raises(ValueError, match="variant"):
        render_clip(0, "rock", variant=-1)


# ----------------------------------------------------------------------------- CLI
def test_cli_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "cli"
    sg.main(["--out", str(out), "--per-genre", "1", "--duration", "0.25", "--workers", "1"])
    printed = capsys.readouterr().out
    assert str(out) in printed and " s" in printed
    assert len(read_manifest(out)) == len(GENRES)


def test_cli_rejects_unknown_option(tmp_path):
    with pytest.raises(SystemExit) as error:
        sg.main(["--out", str(tmp_path), "--per-genres", "1"])
    assert error.value.code == 2
