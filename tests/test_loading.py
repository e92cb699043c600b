"""Tests for SlicingDataLoading: bad files, conversion, cache, splits, slicing, Dataset.

Everything is written under tmp_path: tiny WAVs (8 kHz noise, a few seconds at most).
"""
import csv
import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import SlicingDataLoading as sdl  # noqa: E402
from SlicingDataLoading import (GENRES, AudioCache, BadAudioError, BadAudioWarning,  # noqa: E402
                                DataLoad, GTZANSegments, decode_audio, discover_files,
                                segment_starts, split_files)

SR = 8000
RNG = np.random.default_rng(0)


def noise(seconds, sr=SR, channels=1, amp=0.3):
    n = int(round(seconds * sr))
    x = (RNG.standard_normal((n, channels)) * amp).clip(-1, 1).astype(np.float32)
    return x[:, 0] if channels == 1 else x


def write(path, x, sr=SR, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def clip_path(root, genre, i, ext=".wav"):
    return root / "genres_original" / genre / f"{genre}.{i:05d}{ext}"


def bad_reasons(record):
    """{file name: message} of the BadAudioWarnings raised."""
    return [str(w.message) for w in record if issubclass(w.category, BadAudioWarning)]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
def bad_data(tmp_path):
    """Data folder with 3 good clips and one of every bad kind."""
    root = tmp_path / "Data"
    good = [write(clip_path(root, g, i), noise(3.0)) for g, i in
            [("blues", 0), ("blues", 1), ("classical", 0)]]
    bad = {}
    p = clip_path(root, "jazz", 54)                         # text named .wav
    p.parent.mkdir(parents=True)
    p.write_text("this is not audio\n")
    bad[p.name] = "unreadable"
    p = clip_path(root, "pop", 1)                           # 0 bytes
    p.parent.mkdir(parents=True)
    p.write_bytes(b"")
    bad[p.name] = "empty"
    p = write(clip_path(root, "rock", 2), noise(3.0))       # header kept, data cut
    p.write_bytes(p.read_bytes()[: 44 + 2 * SR])
    bad[p.name] = "truncated"
    p = write(clip_path(root, "metal", 3), np.zeros(3 * SR, np.float32))
    bad[p.name] = "silent"
    x = noise(3.0)
    x[1234] = np.nan
    p = write(clip_path(root, "disco", 4), x, subtype="FLOAT")
    bad[p.name] = "non-finite"
    p = write(clip_path(root, "reggae", 5), noise(0.5))     # shorter than a 1 s segment
    bad[p.name] = "too short"
    p = write(clip_path(root, "polka", 0), noise(3.0))      # unknown genre folder
    bad[p.name] = "unknown genre"
    return root, good, bad


SLICE = dict(sr=SR, duration=1.0, n_segments=2, start=0.5, end=2.5)


def gtzan_names(root, seconds=0.2):
    """GTZAN's 1,000 file names as tiny noise WAVs."""
    x = noise(seconds)
    for g in GENRES:
        for i in range(100):
            write(clip_path(root, g, i), x)
    return root


# --------------------------------------------------------------------------- bad files
def test_every_bad_kind_is_skipped_and_reported(bad_data, caplog):
    root, good, bad = bad_data
    loader = DataLoad(root, progress=False)
    with warnings.catch_warnings(record=True) as rec, caplog.at_level(logging.INFO, "SlicingDataLoading"):
        warnings.simplefilter("always")
        audio, labels = loader.fetch_dataset(**SLICE)
    # the good files load
    assert audio.shape == (3 * 2, SR) and audio.dtype == np.float32
    assert labels.tolist() == [0, 0, 0, 0, 1, 1]
    # each bad file is reported once by name with its reason
    messages = bad_reasons(rec)
    for name, reason in bad.items():
        hits = [m for m in messages if (name in m or (reason == "unknown genre" and "polka" in m))]
        assert len(hits) == 1, (name, messages)
        assert reason in hits[0]
    reasons = {Path(f).name: r for f, r in loader.report.reasons.items()}
    assert reasons == bad
    assert loader.report.counts == {r: 1 for r in bad.values()}
    assert loader.report.total == 3 + len(bad)
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert summary == [loader.report.summary()]
    assert summary[0].startswith(f"skipped {len(bad)} of {3 + len(bad)} files: ")
    assert "1 too short" in summary[0] and "1 unreadable" in summary[0]


@pytest.mark.parametrize("kind,reason", [("text", "unreadable"), ("zero", "empty"),
                                         ("cut", "truncated"), ("silent", "silent"),
                                         ("nan", "non-finite")])
def test_decode_audio_raises_named_reason(tmp_path, kind, reason):
    p = tmp_path / "x.wav"
    if kind == "text":
        p.write_text("hello")
    elif kind == "zero":
        p.write_bytes(b"")
    elif kind == "cut":
        write(p, noise(1.0))
        p.write_bytes(p.read_bytes()[:1000])
    elif kind == "silent":
        write(p, np.full(SR, 1e-6, np.float32), subtype="FLOAT")
    else:
        x = noise(1.0)
        x[5] = np.inf
        write(p, x, subtype="FLOAT")
    with pytest.raises(BadAudioError) as e:
        decode_audio(p, SR)
    assert e.value.reason == reason and str(p) in str(e.value) and reason in str(e.value)
    assert isinstance(e.value, ValueError)


def test_decode_audio_min_length(tmp_path):
    p = write(tmp_path / "short.wav", noise(0.3))
    assert decode_audio(p, SR).shape == (int(0.3 * SR),)
    with pytest.raises(BadAudioError, match="too short"):
        decode_audio(p, SR, min_seconds=0.5)


def test_truncated_when_soundfile_reads_fewer_frames(tmp_path, monkeypatch):
    p = write(tmp_path / "a.flac", noise(1.0), subtype="PCM_16")
    real_read = sf.read
    monkeypatch.setattr(sdl.sf, "read", lambda *a, **k: (real_read(*a, **k)[0][:100], SR))
    with pytest.raises(BadAudioError, match="truncated"):
        decode_audio(p, SR)

    def failing_read(*args, **kwargs):
        raise RuntimeError("unexpected end of data")

    monkeypatch.setattr(sdl.sf, "read", failing_read)
    with pytest.raises(BadAudioError, match="truncated"):
        decode_audio(p, SR)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("AIFF", "PCM_16"), ("AIFF", "FLOAT"),
                                         ("AU", "PCM_16"), ("AU", "ULAW"), ("FLAC", "PCM_16")])
def test_a_pcm_file_cut_mid_data_is_truncated(tmp_path, fmt, subtype):
    """A container whose header counts its frames is refused when its data is cut (libsndfile
    alone would hand back the frames that are left)."""
    p = tmp_path / f"cut.{fmt.lower()}"
    sf.write(str(p), noise(2.0, channels=2), SR, format=fmt, subtype=subtype)
    assert len(sdl.read_file(p)[0]) == 2 * SR                          # whole: read as it is
    p.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3 + 3])    # cut mid-frame, mid-data
    with pytest.raises(BadAudioError) as e:
        sdl.read_file(p)
    message = str(e.value)
    assert e.value.reason == "truncated" and str(p) in message and "\n" not in message
    if fmt != "FLAC":                                                  # FLAC: its decoder loses sync
        assert f"header declares {2 * SR} frames, file holds" in message
        with pytest.raises(BadAudioError, match="truncated"):
            sdl.check_header(p)


def test_an_mp3_a_few_frames_short_of_its_header_reads(tmp_path):
    """An MP3's header length is an estimate: a file that decodes a quarter second short of it
    is whole; one cut to half its length is not."""
    from mp3_frames import cut_mp3
    whole = tmp_path / "whole.mp3"
    sf.write(str(whole), noise(4.0, sr=22050, channels=2), 22050, format="MP3")
    declared, decoded = cut_mp3(whole, tmp_path / "short.mp3", 10)     # 10 frames of 576 samples
    assert declared - decoded > 0.2 * 22050                            # well past rounding: a real shortfall
    y, rate = sdl.read_file(tmp_path / "short.mp3")
    assert rate == 22050 and y.shape == (decoded, 2)
    assert abs(len(decode_audio(tmp_path / "short.mp3", SR)) - decoded * SR / 22050) <= 1
    declared, decoded = cut_mp3(whole, tmp_path / "half.mp3", 80)
    assert declared - decoded > 1.5 * 22050
    with pytest.raises(BadAudioError, match=rf"half.mp3: truncated \(header estimates {declared} frames, "
                                            rf"read {decoded}\)"):
        sdl.read_file(tmp_path / "half.mp3")


# --------------------------------------------------------------------------- conversion
def test_stereo_and_44k_are_converted(tmp_path):
    t = np.arange(2 * 44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, 0.5 * left], axis=1).astype(np.float32)
    p = write(tmp_path / "s.wav", stereo, sr=44100, subtype="FLOAT")
    y = decode_audio(p, SR)
    assert y.dtype == np.float32 and y.shape == (2 * SR,)
    ref = 0.75 * 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR)
    assert np.abs(y[100:-100] - ref[100:-100]).max() < 1e-2          # mono = channel mean
    y22 = decode_audio(write(tmp_path / "m.wav", noise(1.0)), 22050)  # upsampling too
    assert y22.shape == (22050,)


def test_au_file_decodes(tmp_path):
    p = write(tmp_path / "blues.00000.au", noise(1.0))
    assert decode_audio(p, SR).shape == (SR,)


# --------------------------------------------------------------------------- cache
def test_cache_decodes_once_and_rekeys(bad_data, tmp_path):
    root, good, bad = bad_data
    with pytest.warns(BadAudioWarning, match="polka: unknown genre"):
        files = discover_files(root)
    cache = AudioCache(tmp_path / "cache")
    n = len(files)                                     # 3 good + 6 bad in known genres
    with pytest.warns(BadAudioWarning):
        ds = GTZANSegments(files, cache=cache, progress=False, **SLICE)
    assert cache.stats == {"decoded": n, "hits": 0} and len(ds.files) == 3
    assert not list((tmp_path / "cache").glob(".tmp-*"))
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 4          # good + the too short one
    assert len(list((tmp_path / "cache").glob("*.bad.json"))) == 5       # cached verdicts
    assert isinstance(ds.segment(0), np.memmap)        # a view into the memory map

    cache.stats.update(decoded=0, hits=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("default")                 # bad files are reported again
        ds2 = GTZANSegments(files, cache=cache, progress=False, **SLICE)
    assert cache.stats == {"decoded": 0, "hits": n}
    assert len(bad_reasons(rec)) == len(bad) - 1        # all but the unknown genre
    assert {Path(f).name: r for f, r in ds2.report.reasons.items()} == \
        {k: v for k, v in bad.items() if v != "unknown genre"}
    assert torch.equal(ds2[3][0], ds[3][0])

    st = good[1].stat()                                  # touch one file
    os.utime(good[1], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    cache.stats.update(decoded=0, hits=0)
    with pytest.warns(BadAudioWarning):
        GTZANSegments(files, cache=cache, progress=False, **SLICE)
    assert cache.stats == {"decoded": 1, "hits": n - 1}

    cache.stats.update(decoded=0, hits=0)                # another sample rate: all again
    with pytest.warns(BadAudioWarning):
        ds4 = GTZANSegments(files, cache=cache, progress=False, **{**SLICE, "sr": 4000})
    assert cache.stats == {"decoded": n, "hits": 0}
    assert ds4[0][0].shape == (4000,)


def test_default_cache_dir_and_second_fetch(bad_data):
    root, good, _ = bad_data
    with pytest.warns(BadAudioWarning):
        DataLoad(root / "genres_original", progress=False).fetch_dataset(**SLICE)
    assert (root / ".cache").is_dir()
    loader = DataLoad(root, progress=False)
    with pytest.warns(BadAudioWarning):
        a, _ = loader.fetch_dataset(**SLICE)
    assert loader.cache.stats["decoded"] == 0 and a.shape == (6, SR)


# --------------------------------------------------------------------------- splits
def test_filtered_split_matches_torchaudio(tmp_path):
    from torchaudio.datasets.gtzan import filtered_test, filtered_train, filtered_valid
    root = gtzan_names(tmp_path / "Data")
    files = discover_files(root)
    assert len(files) == 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error", BadAudioWarning)
        splits = split_files(files)                      # auto -> filtered
    names = {s: [r.name for r in v] for s, v in splits.items()}
    assert sorted(names["train"]) == sorted(filtered_train) and len(names["train"]) == 443
    assert sorted(names["valid"]) == sorted(filtered_valid) and len(names["valid"]) == 197
    assert sorted(names["test"]) == sorted(filtered_test) and len(names["test"]) == 290
    assert splits == DataLoad(root / "genres_original", progress=False).splits()

    clip_path(root, "jazz", 54).write_bytes(b"not a wav at all" * 10)      # as in Kaggle
    with pytest.warns(BadAudioWarning) as rec:
        splits = split_files(discover_files(root))
    assert len(bad_reasons(rec)) == 1
    assert "jazz.00054" in bad_reasons(rec)[0] and "unreadable" in bad_reasons(rec)[0]
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [442, 197, 290]
    assert "jazz.00054" not in [r.name for r in splits["train"]]

    clip_path(root, "blues", 29).unlink()                                  # a missing file
    report = sdl.BuildReport()
    with pytest.warns(BadAudioWarning) as rec:
        splits = split_files(discover_files(root), "filtered", report=report)
    msgs = bad_reasons(rec)
    assert len(msgs) == 2 and any("blues.00029" in m and "missing" in m for m in msgs)
    assert len(splits["train"]) == 441
    assert report.counts == {"unreadable": 1, "missing": 1}


def small_set(root, per_genre=20, genres=GENRES[:3]):
    for g in genres:
        for i in range(per_genre):
            write(clip_path(root, g, i), noise(0.1))
    return root


def test_random_split_stratified_seeded_disjoint(tmp_path):
    files = discover_files(small_set(tmp_path / "Data"))
    a = split_files(files, "auto", seed=1)               # too few GTZAN names -> random
    for g in GENRES[:3]:
        assert [sum(r.genre == g for r in a[s]) for s in ("train", "valid", "test")] == [14, 3, 3]
    paths = [r.path for s in a.values() for r in s]
    assert len(paths) == len(set(paths)) == len(files)
    assert a == split_files(files, "random", seed=1)
    assert a != split_files(files, "random", seed=2)
    b = split_files(files, "random", seed=1, fractions=(0.5, 0.25, 0.25))
    assert [len(b[s]) for s in ("train", "valid", "test")] == [30, 15, 15]
    with pytest.raises(ValueError, match="split mode"):
        split_files(files, "artist")
    with pytest.raises(ValueError, match="fractions"):
        split_files(files, "random", fractions=(0.8, 0.3, 0.1))


def write_synthetic(root, n_content=8, genres=GENRES):
    rows = []
    for g in genres:
        for c in range(n_content):
            p = write(clip_path(root, g, c), noise(1.2))
            rows.append({"file": str(p.relative_to(root)), "genre": g, "content_id": f"c{c:03d}"})
    with open(root / "synthetic_manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "genre", "content_id"])
        w.writeheader()
        w.writerows(rows)
    return root


def test_content_split_keeps_content_ids_apart(tmp_path):
    root = write_synthetic(tmp_path / "Data", n_content=10, genres=GENRES[:4])
    files = discover_files(root)
    assert all(r.content_id == f"c{int(r.name[-3:]):03d}" for r in files)
    splits = split_files(files, seed=3)                  # auto -> content
    ids = {s: {r.content_id for r in v} for s, v in splits.items()}
    assert not (ids["train"] & ids["valid"]) and not (ids["train"] & ids["test"]) \
        and not (ids["valid"] & ids["test"])
    assert sum(len(v) for v in splits.values()) == len(files)
    assert [len(ids[s]) for s in ("train", "valid", "test")] == [6, 2, 2]   # 10 contents, half rounds up
    for s, v in splits.items():                          # every genre in every split
        assert {r.genre for r in v} == set(GENRES[:4])
    ds = DataLoad(root, seed=3, progress=False).dataset("valid", sr=SR, duration=1.0, n_segments=1,
                                                start=0.0, end=1.2)
    assert set(ds.content_ids) == ids["valid"] and ds.content_id(0) == ds.files[0].content_id


# --------------------------------------------------------------------------- slicing, Dataset
def test_segment_starts():
    sr = 100
    assert segment_starts(30 * sr, sr).tolist() == [250, 750, 1250, 1750, 2250]      # seed's 5 x 5 s
    assert segment_starts(30 * sr, sr, 2.97, 2, 0.0, 30.0).tolist() == [0, 3000 - 297]
    assert segment_starts(30 * sr, sr, 1.0, 1, 3.0, 10.0).tolist() == [300]
    assert segment_starts(12 * sr, sr).tolist() == [250, 362, 475, 588, 700]          # spread over 12 s
    assert segment_starts(6 * sr, sr).tolist() == [100] * 5                            # only one fits
    assert segment_starts(5 * sr, sr).tolist() == [0] * 5
    with pytest.raises(ValueError, match="shorter than one"):
        segment_starts(5 * sr - 1, sr)
    with pytest.raises(ValueError):
        segment_starts(30 * sr, sr, n_segments=0)


def test_fetch_dataset_and_segments_positions(tmp_path):
    root = tmp_path / "Data"
    ramps = {}
    for g, i in [("blues", 0), ("rock", 7), ("rock", 8)]:
        x = (np.arange(4 * SR, dtype=np.float32) / (4 * SR)) * (0.5 if g == "rock" else 1.0)
        ramps[(g, i)] = x
        write(clip_path(root, g, i), x, subtype="FLOAT")
    write(clip_path(root, "pop", 3), noise(2.5))        # shorter than end: spread over 2.5 s
    kw = dict(sr=SR, duration=0.5, n_segments=3, start=0.5, end=3.5)
    loader = DataLoad(root, progress=False)
    audio, labels = loader.fetch_dataset(**kw)
    assert audio.dtype == np.float32 and labels.dtype == np.int64
    assert audio.shape == (4 * 3, SR // 2) and labels.shape == (12,)
    assert loader.get_genre_names() == list(GENRES)
    genre_of = [loader.get_genre_names()[k] for k in labels]
    assert genre_of == ["blues"] * 3 + ["pop"] * 3 + ["rock"] * 6

    ds = loader.dataset(None, **kw)
    assert len(ds) == 12 and ds.genres == list(GENRES) and ds.segment_samples == SR // 2
    assert [r.name for r in ds.files] == ["blues.00000", "pop.00003", "rock.00007", "rock.00008"]
    starts = [0.5, 1.75, 3.0]                             # evenly spaced, last ends at 3.5 s
    assert ds.segment_index[:3].tolist() == [[0, int(s * SR)] for s in starts]
    assert ds.segment_index[3:6, 1].tolist() == [int(0.5 * SR), int(1.25 * SR), int(2.0 * SR)]
    for k, (f, s) in enumerate(ds.segment_index):
        x, y = ds[k]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (SR // 2,)
        assert y == labels[k] == ds.labels[k] and isinstance(y, int)
        np.testing.assert_array_equal(x.numpy(), audio[k])
        rec = ds.files[f]
        if (rec.genre, int(rec.name[-5:])) in ramps:
            np.testing.assert_array_equal(audio[k], ramps[(rec.genre, int(rec.name[-5:]))][s:s + SR // 2])
    assert ds.content_ids == [None] * 4
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5, shuffle=False)))
    assert batch[0].shape == (5, SR // 2) and batch[1].tolist() == labels[:5].tolist()


def test_split_fetch_and_images(tmp_path):
    root = small_set(tmp_path / "Data", per_genre=10, genres=GENRES[:2])
    loader = DataLoad(root, split_mode="random", seed=0, progress=False)
    parts = {s: loader.fetch_dataset(sr=SR, duration=0.05, n_segments=2, start=0.0, end=0.1,
                                     split=s) for s in ("train", "valid", "test")}
    assert [len(parts[s][1]) for s in ("train", "valid", "test")] == [2 * 12, 2 * 4, 2 * 4]
    with pytest.raises(ValueError):
        loader.fetch_dataset(split="training")
    with pytest.raises(FileNotFoundError):
        loader.get_image_paths()
    for g, i in [("blues", 1), ("blues", 0), ("rock", 3)]:
        p = root / "images_original" / g / f"{g}{i:05d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x89PNG")
    imgs = DataLoad(root / "genres_original").get_image_paths()
    assert list(imgs) == ["blues", "rock"]
    assert [p.name for p in imgs["blues"]] == ["blues00000.png", "blues00001.png"]
