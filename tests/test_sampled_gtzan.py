"""Tests for the sampled kind of the synthetic GTZAN (sampled_gtzan, synthetic_gtzan.generate(kind="sampled")).

Everything is written under tmp_path; clips are 1-3 s long. The tests that render skip,
giving the reason, where FluidSynth, pyfluidsynth, music21 or a SoundFont is missing; the
SoundFont checks and the fallback run everywhere.
"""
import csv
import importlib.util
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import sampled_gtzan as sp  # noqa: E402
from cli import run  # noqa: E402
import synthetic_gtzan as sg  # noqa: E402
import synthetic_music as sm  # noqa: E402
from SlicingDataLoading import GENRES, DataLoad  # noqa: E402

AVAILABLE, WHY = sp.sampled_available()
needs_fluidsynth = pytest.mark.skipif(not AVAILABLE, reason=f"sampled kind unavailable: {WHY}")
SR, DUR, PER_GENRE = 22050, 3.0, 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A 3-per-genre x 3 s sampled GTZAN written with two worker processes."""
    root = tmp_path_factory.mktemp("sampled")
    sg.generate(root, n_per_genre=PER_GENRE, duration=DUR, sr=SR, seed=0, workers=2, kind="sampled")
    return root


# ----------------------------------------------------------------------------- layout, manifest, params
@needs_fluidsynth
def test_layout_manifest_and_params(dataset):
    wavs = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*.wav"))
    assert wavs == sorted(f"genres_original/{g}/{g}.{k:05d}.wav" for g in GENRES for k in range(PER_GENRE))
    assert sorted(p.name for p in dataset.iterdir()) == ["genres_original", "sampled_contents.json",
                                                          "synthetic_manifest.csv", "synthetic_params.json"]
    with open(dataset / "synthetic_manifest.csv", newline="") as f:
        assert next(csv.reader(f)) == ["file", "genre", "content_id", "source"]
    pieces = json.loads((dataset / "sampled_contents.json").read_text())
    assert sorted(pieces) == [str(c) for c in range(PER_GENRE)]
    for row in sg.read_manifest(dataset):
        piece = pieces[str(row["content_id"])]
        assert row["source"] == piece["source"] and (sp._corpus_dir() / piece["source"]).is_file()
        assert len(piece["harmony"]) == piece["length_beats"] and piece["length_beats"] % 4 == 0
        assert max(on for on, _, _ in piece["melody"]) < piece["length_beats"]
    state = json.loads((dataset / "synthetic_params.json").read_text())
    params = state["params"]
    assert state["complete"] and params["kind"] == "sampled" and sg.dataset_kind(dataset) == "sampled"
    assert params["soundfont"] == str(sp.default_soundfont().resolve())
    assert params["soundfont_sha256"] == sp.soundfont_sha256(params["soundfont"])
    assert {"music21", "fluidsynth", "pyfluidsynth"} <= set(state)


@needs_fluidsynth
def test_audio_is_loud_limited_and_in_the_shared_ranges(dataset):
    lo, hi = 10 ** (np.array(sm.RMS_DB) / 20)
    for path in (dataset / "genres_original").rglob("*.wav"):
        rate, data = wavfile.read(path)
        assert rate == SR and data.dtype == np.int16 and data.shape == (round(SR * DUR),)
        x = data / 32767.0
        assert np.abs(x).max() <= sm.PEAK + 1e-4, path.name
        assert 0.8 * lo < np.sqrt(np.mean(x ** 2)) <= 1.01 * hi, path.name


# ----------------------------------------------------------------------------- determinism
@needs_fluidsynth
def test_same_seed_same_bytes(dataset, tmp_path):
    """One process or two, the same bytes; another seed, other bytes."""
    kwargs = dict(n_per_genre=PER_GENRE, duration=DUR, sr=SR, genres=("metal", "jazz"), kind="sampled")
    sg.generate(tmp_path / "again", workers=1, seed=0, **kwargs)
    sg.generate(tmp_path / "other", workers=1, seed=1, **kwargs)
    for row in sg.read_manifest(tmp_path / "again"):
        again = (tmp_path / "again" / row["file"]).read_bytes()
        assert again == (dataset / row["file"]).read_bytes(), row["file"]
        assert again != (tmp_path / "other" / row["file"]).read_bytes(), row["file"]
    _, data = wavfile.read(dataset / "genres_original/rock/rock.00001.wav")
    piece = sp.dataset_piece(dataset, 1)
    audio = sp.render_clip(1, "rock", sr=SR, duration=DUR, piece=piece)
    np.testing.assert_array_equal(data, np.round(audio * 32767).astype(np.int16))


# ----------------------------------------------------------------------------- content
@needs_fluidsynth
def test_contents_are_distinct_pieces_and_splits_share_none(dataset):
    pieces = sp.corpus_pieces(12)
    assert len({p["source"] for p in pieces}) == len({p["fingerprint"] for p in pieces}) == 12
    assert {p["source"].split("/")[0] for p in pieces} == {"bach", "ryansMammoth"}
    splits = DataLoad(dataset).splits()
    source = {Path(row["file"]).stem: row["source"] for row in sg.read_manifest(dataset)}   # by file id
    by_split = {s: {source[r.name] for r in recs} for s, recs in splits.items()}
    ids = {s: {r.content_id for r in recs} for s, recs in splits.items()}
    assert all(by_split.values()) and all(ids.values())
    for a in splits:
        for b in splits:
            if a < b:
                assert not by_split[a] & by_split[b] and not ids[a] & ids[b], (a, b)


@needs_fluidsynth
def test_content_transposition_keeps_the_melody_near_a4():
    piece = sp.corpus_pieces(2)[1]
    content = sp.make_content(piece, 1)
    steps = np.diff(content.melody[:, 2])
    np.testing.assert_array_equal(steps, np.diff([p for *_, p in piece["melody"]]))   # the same tune
    assert 60 <= np.median(content.melody[:, 2]) <= 80
    assert content.beats_per_chord == 2 and len(content.chords) * 2 == piece["length_beats"]


def test_fit_chord_names_triads_and_the_dominant_seventh():
    weights = np.zeros(12)
    weights[[7, 11, 2]] = 1.0                     # G B D in C major: V
    assert sp.fit_chord(weights, 7, 0, False) == (7, "maj")
    weights[5] = 0.6                              # + F: V7
    assert sp.fit_chord(weights, 7, 0, False) == (7, "7")
    weights = np.zeros(12)
    weights[[9, 0, 4]] = 1.0                      # A C E in C major: vi
    assert sp.fit_chord(weights, 9, 0, False) == (9, "min")


# ----------------------------------------------------------------------------- timing
@needs_fluidsynth
def test_timed_rendering_onsets_fall_on_the_source_clips_grid(dataset):
    """Onsets of the same content in the target genre at the source clip's tempo and swing
    lie on that clip's (swung) sixteenth-note grid, within 50 ms; a grid 10 % faster or
    slower fits them far worse."""
    import librosa

    def on_grid(onsets, tempo, swing, unit):
        grid = sm.BeatGrid(tempo, swing, unit).seconds(np.arange(0, 4 * DUR * tempo / 60, .25))
        return np.mean(np.abs(onsets[:, None] - grid[None]).min(1) <= 0.05)

    fits, controls = [], []
    for content_id in range(PER_GENRE):
        tempo, swing = sg.clip_timing(content_id, "reggae")      # the slowest genre: a sparse grid
        for target in ("rock", "disco", "pop"):
            x = sg.timed_rendering(dataset, content_id, "reggae", target, SR)
            assert x.shape == (round(SR * DUR),)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                onsets = librosa.onset.onset_detect(y=x, sr=SR, hop_length=256, units="time", backtrack=True)
            onsets = onsets[onsets > 0.1]                        # the first frames have no onset history
            assert len(onsets) >= 4
            unit = sm.STYLES[target].swing_unit
            fits.append(on_grid(onsets, tempo, swing, unit))
            controls += [on_grid(onsets, tempo * f, swing, unit) for f in (1.1, 1 / 1.1)]
    assert min(fits) >= 0.75 and np.mean(fits) >= 0.9, fits
    assert np.mean(fits) - np.mean(controls) >= 0.2, (fits, controls)


@needs_fluidsynth
def test_timed_rendering_at_the_clips_own_timing_is_the_clip(dataset):
    x = sg.timed_rendering(dataset, 2, "country", "country", SR)
    _, data = wavfile.read(dataset / "genres_original/country/country.00002.wav")
    np.testing.assert_array_equal(np.round(x * 32767).astype(np.int16), data)
    tempo, swing = sg.clip_timing(2, "country")            # a second draw: the same timing, another seed
    again = sg.timed_rendering(dataset, 2, "country", "country", SR, draw=1)
    assert np.abs(again - x).mean() > 0.01
    np.testing.assert_array_equal(again, sp.render_clip(2, "country", sr=SR, duration=DUR, seed=1, tempo=tempo,
                                                        swing=swing, piece=sp.dataset_piece(dataset, 2)))


# ----------------------------------------------------------------------------- skip-if-done, SoundFont
@needs_fluidsynth
def test_skip_if_done_keys_on_kind_and_soundfont(tmp_path):
    kwargs = dict(n_per_genre=1, duration=1.0, genres=("blues",), workers=1)
    sg.generate(tmp_path, kind="sampled", **kwargs)
    wav = tmp_path / "genres_original/blues/blues.00000.wav"
    wav.write_bytes(b"marker")                     # the same parameters: nothing is rewritten
    sg.generate(tmp_path, kind="sampled", **kwargs)
    assert wav.read_bytes() == b"marker"
    with pytest.raises(FileExistsError):           # another kind
        sg.generate(tmp_path, **kwargs)
    other = tmp_path / "TimGM6mb-copy.sf2"       # another SoundFont (or the same at another path)
    shutil.copy(Path(importlib.util.find_spec("pretty_midi").origin).parent / "TimGM6mb.sf2", other)
    with pytest.raises(FileExistsError):
        sg.generate(tmp_path, kind="sampled", soundfont=other, **kwargs)
    sg.generate(tmp_path, kind="sampled", soundfont=other, overwrite=True, **kwargs)
    params = json.loads((tmp_path / "synthetic_params.json").read_text())["params"]
    assert params["soundfont"] == str(other.resolve()) and wavfile.read(wav)[1].shape == (22050,)
    sg.generate(tmp_path, overwrite=True, **kwargs)          # back to the oscillator kind
    assert not (tmp_path / "sampled_contents.json").exists() and sg.dataset_kind(tmp_path) == "oscillator"
    assert "source" not in sg.read_manifest(tmp_path)[0]


def _cli(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "synthetic_gtzan.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("content, word", [(None, "no such file"), (b"not a SoundFont at all", "not a SoundFont")])
def test_cli_bad_soundfont_is_one_line(tmp_path, content, word):
    font = tmp_path / "font.sf2"
    if content is not None:
        font.write_bytes(content)
    done = _cli("--kind", "sampled", "--soundfont", font, "--out", tmp_path / "out", "--per-genre", "1",
                "--duration", "0.5", cwd=tmp_path)
    assert done.returncode in (1, 2), done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and str(font) in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_a_riff_file_of_another_kind_is_not_a_soundfont(tmp_path, capsys):
    font = tmp_path / "wave.sf2"
    font.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    with pytest.raises(SystemExit) as done:
        run(sg.main, ["--kind", "sampled", "--soundfont", str(font), "--out", str(tmp_path / "out")],
            prog="synthetic_gtzan.py")
    assert done.value.code == 1
    assert capsys.readouterr().err == (f"synthetic_gtzan.py: error: soundfont {str(font)!r}: not a SoundFont "
                                       f"(no RIFF 'sfbk' header; expected an .sf2 or .sf3 file)\n")


def test_check_soundfont_accepts_sf2_headers(tmp_path):
    font = tmp_path / "tiny.sf3"
    font.write_bytes(b"RIFF\x00\x00\x00\x00sfbkLIST")
    assert sp.check_soundfont(font) == font.resolve()


# ----------------------------------------------------------------------------- fallback
def test_unavailable_fluidsynth_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)     # import fluidsynth fails, as without pyfluidsynth
    ok, why = sp.sampled_available()
    assert not ok and "pyfluidsynth" in why


def test_cli_falls_back_to_the_oscillator_kind_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sp, "sampled_available", lambda soundfont=None: (False, "no FluidSynth here"))
    sg.main(["--kind", "sampled", "--out", str(tmp_path), "--per-genre", "1", "--duration", "0.25",
             "--workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "sampled" in line] == [
        "sampled kind unavailable (no FluidSynth here): writing the oscillator kind"]
    assert sg.dataset_kind(tmp_path) == "oscillator" and len(sg.read_manifest(tmp_path)) == len(GENRES)
    with pytest.raises(ValueError, match="cannot be rendered here: no FluidSynth here"):
        sg.generate(tmp_path / "b", n_per_genre=1, duration=0.25, kind="sampled")
