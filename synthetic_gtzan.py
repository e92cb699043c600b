"""Synthetic GTZAN: the embedded default dataset (demo, tests, benchmarks), written in GTZAN's layout.

Writes GTZAN's Kaggle layout, ``<root>/genres_original/<genre>/<genre>.000NN.wav``
(mono 16-bit PCM), and ``<root>/synthetic_manifest.csv`` with columns
``file,genre,content_id`` (plus ``source``, the corpus piece, on the sampled kind).
Genre and content are independent factors (:mod:`synthetic_music`), so a genre transfer
has a ground truth. Two kinds: the oscillator kind (:func:`synthetic_music.render_clip`:
wavetable, FM, Karplus-Strong; fast, no system library; the tests) and the sampled kind
(:mod:`sampled_gtzan`: excerpts of real pieces from music21's corpus played by General MIDI
SoundFont instruments through FluidSynth, with the same genre styles and mix chain).

Clip k of every genre renders content ``content_offset + k``, so the manifest gives the
target of a transfer of content c to genre B, and :func:`timed_rendering` renders that
target at the source clip's timing (the aligned truth of a transfer).

Public API
----------
generate(root, ..., kind="oscillator", soundfont=None)
                                      the folder + manifest, in parallel; returns the manifest path
timed_rendering(root, content_id, source_genre, target_genre, sr, draw=0)
                                      the content in another genre at a clip's timing (either kind)
timed_renderings(root, clips, sr)     many of them, in parallel
dataset_kind(root)                    "oscillator" or "sampled"
read_manifest(root)                   list of {"file", "genre", "content_id"[, "source"]}
render_clip, make_content, clip_timing  from :mod:`synthetic_music` (the oscillator kind's clip)
python synthetic_gtzan.py --out Data/synthetic --per-genre 10 --duration 30 --seed 0 [--kind sampled]
"""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from tqdm import tqdm

import sampled_gtzan
from cli import ArgumentParser, InputError, run
from SlicingDataLoading import GENRES, GTZAN_SR
from synthetic_music import _check_clip_args, _check_int, clip_timing, make_content, render_clip  # noqa: F401 (public API)

VERSION = 1                      # bump when the synthesis changes: it keys the skip-if-done check
MANIFEST = "synthetic_manifest.csv"
PARAMS = "synthetic_params.json"
CONTENTS = sampled_gtzan.CONTENTS   # the sampled kind's excerpts


KINDS = ("oscillator", "sampled")


def _write_clip(job: tuple) -> str:
    path, content_id, genre, sr, duration, seed, sampled = job
    if sampled is None:
        audio = render_clip(content_id, genre, sr=sr, duration=duration, seed=seed)
    else:
        piece, soundfont = sampled
        audio = sampled_gtzan.render_clip(content_id, genre, sr=sr, duration=duration, seed=seed, piece=piece,
                                          soundfont=soundfont)
    wavfile.write(path, sr, np.round(audio * 32767).astype(np.int16))
    return path


def generate(root, *, n_per_genre: int = 10, duration: float = 30.0, sr: int = GTZAN_SR, seed: int = 0,
             workers: int | None = None, overwrite: bool = False, genres=GENRES,
             content_offset: int = 0, kind: str = "oscillator", soundfont=None) -> Path:
    """Write a synthetic GTZAN under ``root``; return the manifest path.

    Clip k of every genre renders content ``content_offset + k`` at
    ``root/genres_original/<genre>/<genre>.<k:05d>.wav`` (16-bit PCM, mono, ``sr`` Hz,
    ``round(sr * duration)`` samples), on ``workers`` processes (default min(2, cores)).
    A folder already holding a complete dataset written with the same parameters is left
    as it is; an interrupted run of the same parameters is redone; ``overwrite=True``
    replaces a different synthetic dataset (only the files its manifest lists are removed).

    ``kind``: "oscillator" (this module's instruments) or "sampled" (excerpts of real pieces
    played on a SoundFont's General MIDI instruments, :mod:`sampled_gtzan`; the manifest
    gains a ``source`` column, the corpus piece, and ``root/sampled_contents.json`` holds the
    excerpts). ``soundfont``: the sampled kind's SF2/SF3 (default
    :func:`sampled_gtzan.default_soundfont`); its path and sha256 are recorded in
    ``synthetic_params.json`` and key the skip-if-done check, as the kind does.

    Raises
    ------
    ValueError : a bad argument (the message names it and its value); cli.InputError (a
        ValueError) for a missing or non-SoundFont ``soundfont`` or a sampled kind that
        cannot be rendered here (see :func:`sampled_gtzan.sampled_available`).
    FileExistsError : ``root`` holds another dataset and ``overwrite`` is False.
    """
    genres = tuple(genres) if isinstance(genres, (list, tuple)) else (genres,)
    for g in genres:
        if g not in GENRES:
            raise ValueError(f"unknown genre {g!r}; expected names from {GENRES}")
    if not genres or len(set(genres)) != len(genres):
        raise ValueError(f"genres must be distinct and not empty, got {genres!r}")
    n_per_genre = _check_int("n_per_genre", n_per_genre, 1)
    content_offset = _check_int("content_offset", content_offset, 0)
    _check_clip_args(content_offset, genres[0], sr, duration, seed, 0)
    workers = _check_int("workers", min(2, os.cpu_count() or 1) if workers is None else workers, 1)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    root = Path(root)
    params = dict(version=VERSION, n_per_genre=n_per_genre, duration=float(duration), sr=int(sr),
                  seed=int(seed), genres=list(genres), content_offset=content_offset)
    rows = [dict(file=f"genres_original/{g}/{g}.{k:05d}.wav", genre=g, content_id=content_offset + k)
            for g in genres for k in range(n_per_genre)]
    pieces = None
    if kind == "sampled":
        font = sampled_gtzan.check_soundfont(soundfont) if soundfont is not None else None
        ok, why = sampled_gtzan.sampled_available(font)
        if not ok:
            raise InputError(f"the sampled kind cannot be rendered here: {why}")
        font = font or sampled_gtzan.check_soundfont(sampled_gtzan.default_soundfont())
        params.update(kind=kind, render_version=sampled_gtzan.RENDER_VERSION, soundfont=str(font),
                      soundfont_sha256=sampled_gtzan.soundfont_sha256(font))
    manifest, params_file = root / MANIFEST, root / PARAMS
    if _done_or_cleared(root, params, rows, overwrite):
        return manifest
    params_file.write_text(json.dumps(dict(params=params, complete=False), indent=1))
    for g in genres:
        (root / "genres_original" / g).mkdir(parents=True, exist_ok=True)

    if kind == "sampled":   # the excerpts, extracted once (content ids 0..offset+n-1 in corpus order)
        pieces = sampled_gtzan.corpus_pieces(content_offset + n_per_genre)
        pieces = {content_offset + k: pieces[content_offset + k] for k in range(n_per_genre)}
        (root / CONTENTS).write_text(json.dumps({str(c): p for c, p in pieces.items()}, indent=0))
        for r in rows:
            r["source"] = pieces[r["content_id"]]["source"]
    jobs = [(str(root / r["file"]), r["content_id"], r["genre"], int(sr), float(duration), int(seed),
             None if pieces is None else (pieces[r["content_id"]], params["soundfont"])) for r in rows]
    for _ in tqdm(_in_processes(_write_clip, jobs, workers), total=len(jobs), desc=f"synthetic GTZAN ({kind})",
                  unit="clip"):
        pass
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    info = {}
    if kind == "sampled":
        info = sampled_gtzan.renderer_info()
    params_file.write_text(json.dumps(dict(params=params, complete=True, **info), indent=1))
    return manifest


def _done_or_cleared(root: Path, params: dict, rows: list, overwrite: bool) -> bool:
    """True when ``root`` holds the complete dataset of ``params`` (and no ``overwrite``);
    otherwise clear what a previous synthetic dataset there wrote (its clips, manifest and
    excerpts, nothing else) and return False. FileExistsError for another dataset there
    without ``overwrite``."""
    manifest, params_file = root / MANIFEST, root / PARAMS
    try:
        state = json.loads(params_file.read_text())
    except (OSError, ValueError):
        state = None
    if state is not None and state.get("params") == params:  # ours: complete, or interrupted
        if state.get("complete") and not overwrite and all((root / r["file"]).exists() for r in rows):
            return True
    elif not overwrite and (state is not None or any((root / r["file"]).exists() for r in rows)):
        raise FileExistsError(f"{root} holds another dataset (or a synthetic one with other parameters "
                              f"than {params}); pass overwrite=True to replace it")
    if state is not None and manifest.exists():  # remove the previous synthetic clips, nothing else
        for row in read_manifest(root):
            (root / row["file"]).unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)
    if state is not None:
        (root / CONTENTS).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    return False


def _in_processes(fn, jobs: list, workers: int):
    """``fn`` of each job, in order, on ``workers`` fresh processes (spawned, not forked: a caller
    that has run torch holds thread pools that a forked FluidSynth deadlocks on), or here for one."""
    if workers <= 1 or len(jobs) < 4:
        yield from map(fn, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(fn, jobs)


def dataset_kind(root) -> str:
    """"oscillator" or "sampled": the kind of the synthetic dataset at ``root``."""
    return json.loads((Path(root) / PARAMS).read_text())["params"].get("kind", "oscillator")


def timed_rendering(root, content_id: int, source_genre: str, target_genre: str, sr: int,
                    draw: int = 0) -> np.ndarray:
    """The clip of ``content_id`` that the synthetic dataset at ``root`` would hold in
    ``target_genre``, played at the tempo and swing of its ``source_genre`` clip: what a
    transfer that keeps the song's timing and changes everything else would sound like.
    At ``sr`` and the dataset's clip length; either kind (the one recorded at ``root``).
    ``draw`` > 0 draws the genre's other parameters (instruments, patterns, mix) from another
    seed: a second rendering of the same content and timing, which shows what even a perfect
    transfer still differs by."""
    params = json.loads((Path(root) / PARAMS).read_text())["params"]
    tempo, swing = clip_timing(int(content_id), source_genre, seed=params["seed"])
    kw = dict(sr=sr, duration=params["duration"], seed=params["seed"] + int(draw), tempo=tempo, swing=swing)
    if params.get("kind", "oscillator") == "sampled":
        return sampled_gtzan.render_clip(int(content_id), target_genre, **kw,
                                         piece=sampled_gtzan.dataset_piece(root, int(content_id)),
                                         soundfont=sampled_gtzan.dataset_soundfont(params))
    return render_clip(int(content_id), target_genre, **kw)


def _timed_job(job: tuple) -> np.ndarray:
    return timed_rendering(*job)


def timed_renderings(root, clips, sr: int, workers: int | None = None, desc: str = "aligned truths") -> list:
    """:func:`timed_rendering` of each (content_id, source_genre, target_genre, draw) in ``clips``,
    in order, on ``workers`` processes (default min(2, cores)), with a progress bar."""
    jobs = [(str(root), int(c), src, tgt, int(sr), int(draw)) for c, src, tgt, draw in clips]
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    return list(tqdm(_in_processes(_timed_job, jobs, workers), total=len(jobs), desc=desc, leave=False))


def read_manifest(root) -> list[dict]:
    """Rows of ``root/synthetic_manifest.csv``: {"file" (relative to root), "genre", "content_id" (int)},
    and "source" (the corpus piece) on the sampled kind."""
    with open(Path(root) / MANIFEST, newline="") as f:
        return [dict(file=r["file"], genre=r["genre"], content_id=int(r["content_id"]),
                     **({"source": r["source"]} if r.get("source") else {}))
                for r in csv.DictReader(f)]


def main(argv=None) -> None:
    parser = ArgumentParser(description="Write a synthetic GTZAN (Kaggle layout + manifest).")
    parser.add_argument("--out", default="Data/synthetic", help="output folder")
    parser.add_argument("--per-genre", type=int, default=10, help="clips per genre")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per clip")
    parser.add_argument("--sr", type=int, default=GTZAN_SR, help="sample rate (Hz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default min(2, cores))")
    parser.add_argument("--content-offset", type=int, default=0, help="content id of clip 0")
    parser.add_argument("--overwrite", action="store_true", help="rewrite an existing dataset")
    parser.add_argument("--kind", choices=KINDS, default="oscillator",
                        help="oscillator: synthesised instruments; sampled: excerpts of real pieces (music21's "
                             "corpus) on SoundFont instruments through FluidSynth (falls back to oscillator, "
                             "saying why, where FluidSynth is missing)")
    parser.add_argument("--soundfont", default=None,
                        help="SF2/SF3 for the sampled kind (default: FluidR3 GM where installed, else "
                             "pretty_midi's TimGM6mb)")
    args = parser.parse_args(argv)
    kind = args.kind
    if kind == "sampled":
        font = sampled_gtzan.check_soundfont(args.soundfont) if args.soundfont is not None else None
        ok, why = sampled_gtzan.sampled_available(font)
        if not ok:
            print(f"sampled kind unavailable ({why}): writing the oscillator kind", file=sys.stderr)
            kind = "oscillator"
    start = time.perf_counter()
    try:
        manifest = generate(args.out, n_per_genre=args.per_genre, duration=args.duration, sr=args.sr,
                            seed=args.seed, workers=args.workers, overwrite=args.overwrite,
                            content_offset=args.content_offset, kind=kind, soundfont=args.soundfont)
    except (ValueError, FileExistsError) as exc:        # a bad argument, or another dataset in --out
        raise InputError(str(exc)) from exc
    print(f"wrote {manifest.parent} ({len(read_manifest(manifest.parent))} {kind} clips, manifest {manifest}) "
          f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    run(main)
