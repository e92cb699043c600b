"""GTZAN data layer: discovery, splits, decoded-audio cache, slicing, Dataset.

Layout (Kaggle): ``<data>/genres_original/<genre>/<genre>.000NN.wav`` and
``<data>/images_original/<genre>/*.png``; a synthetic GTZAN adds
``<data>/synthetic_manifest.csv`` (columns ``file,genre,content_id``). Either ``<data>`` or
its ``genres_original`` folder may be passed.

Pipeline: :func:`discover_files` -> :func:`split_files` (by file, never by segment) ->
:class:`GTZANSegments` (each file decoded once at the target rate into an
:class:`AudioCache` of memory-mapped ``.npy`` files, then sliced into segments that are
views into those maps). A bad file never stops a build: it is skipped with one
:class:`BadAudioWarning` naming it and the reason, and counted in a :class:`BuildReport`.

Public API
----------
GENRES, AUDIO_EXTENSIONS, SPLITS
BadAudioError(path, reason, detail)    ValueError naming the file and the reason
FileRecord                             one audio file: path, genre, label, content_id
BuildReport                            skipped (file, reason) pairs, counts, summary()
read_file(path)                        any file as it is -> (float32 [T, C], native rate)
decode_audio(path, sr, min_seconds)    any file -> mono float32 [T] at ``sr``
check_header(path)                     cheap validity check (no decoding)
AudioCache(cache_dir)                  decode once, ``.load(path, sr)`` -> memmap [T]
discover_files(data_path, report)      [FileRecord] of every audio file in a genre folder
split_files(files, mode, ...)          {"train", "valid", "test"} -> [FileRecord]
require_files(splits, data, report)    an InputError naming the folder when a split is empty
segment_starts(n, sr, duration, ...)   start samples of the segments of one clip
GTZANSegments(files, sr, ...)          torch Dataset of (segment [T], genre index)
clip_reader(records, sr, cache)        FileRecord -> whole clip [T] at ``sr``, through the cache
pick_clips(records, genre, n)          n clips of one genre, spread over its records
DataLoad(data_path)                    the seed's entry point: fetch_dataset, get_genre_names
atomic_write(path, write)              write a file all at once (every writer in the project uses it)
output_folder(path)                    an output folder, created and checked writable before any work
"""
from __future__ import annotations

import collections
import csv
import errno
import hashlib
import json
import logging
import os
import struct
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from cli import InputError, OutputError

GENRES = ("blues", "classical", "country", "disco", "hiphop",
          "jazz", "metal", "pop", "reggae", "rock")
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")
SPLITS = ("train", "valid", "test")
MANIFEST = "synthetic_manifest.csv"
GTZAN_SR = 22050             # GTZAN's clips are 22050 Hz mono
SILENCE_PEAK = 1e-4          # a clip whose peak is below this is "silent"
_CACHE_VERSION = 1           # bump when the decoded format changes
# libsndfile formats whose header length is an estimate rather than a count: an MP3's comes
# from its Xing/LAME frame or from file size / bit rate (encoder delay and padding, trailing
# tags and a varying bit rate move it), an Ogg stream's from its last granule position
# (Vorbis / Opus pre-skip and end trimming).
ESTIMATED_LENGTH_FORMATS = ("MP3", "OGG")
# How far such a file may decode short of its estimate and still count as whole. Delay plus
# padding is a few codec frames (under 0.1 s); a size-based estimate that also counts tags
# and bit-rate drift is off by a fraction of a percent. 1 s or 1 % of the estimate, whichever
# is more, covers both; a file cut in transfer loses more and is refused as truncated.
ESTIMATE_SLACK_SECONDS = 1.0
ESTIMATE_SLACK_FRACTION = 0.01

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors, records
class BadAudioWarning(UserWarning):
    """Warned once per skipped file (or unknown genre folder), naming it and the reason."""


class BadAudioError(InputError):
    """A file that cannot serve as training audio.

    ``reason`` is one of: missing, unreadable, empty, truncated, silent, non-finite,
    too short, unknown genre. ``str(err)`` is ``"<path>: <reason> (<detail>)"``.
    """

    def __init__(self, path, reason: str, detail: str = ""):
        self.path, self.reason, self.detail = str(path), reason, detail
        super().__init__(f"{self.path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class FileRecord:
    """One audio file. ``name`` is GTZAN's id, e.g. ``"blues.00029"``."""
    path: Path
    genre: str
    content_id: str | None = None

    @property
    def label(self) -> int:
        return GENRES.index(self.genre)

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass
class BuildReport:
    """What a build skipped. ``total`` is the number of files it looked at."""
    total: int = 0
    skipped: list = field(default_factory=list)        # [(file, reason, detail)]

    def add(self, path, reason: str, detail: str = "", warn: bool = True) -> None:
        """Record a skipped file and warn once, naming it and the reason."""
        self.skipped.append((str(path), reason, detail))
        if warn:
            _warn(BadAudioError(path, reason, detail))

    @property
    def counts(self) -> dict:
        """{reason: number of files skipped for it}."""
        return dict(collections.Counter(reason for _, reason, _ in self.skipped))

    @property
    def reasons(self) -> dict:
        """{file: reason} of every skipped file."""
        return {path: reason for path, reason, _ in self.skipped}

    def summary(self) -> str:
        """One line: ``"skipped 3 of 1000 files: 1 silent, 1 too short, 1 unreadable"``."""
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
        return f"skipped {len(self.skipped)} of {self.total} files" + (f": {parts}" if parts else "")

    def log(self) -> None:
        (log.warning if self.skipped else log.info)(self.summary())


def _warn(err: BadAudioError) -> None:
    # warn_explicit with a fresh registry: the "default" filter would otherwise show a given
    # message once per process, and a bad file must be reported again on every build.
    warnings.warn_explicit(str(err), BadAudioWarning, __file__, 0, module=__name__, registry={})


# --------------------------------------------------------------------------- decoding
# Bytes per sample of the PCM encodings the AU header names (ulaw, 8/16/24/32-bit, float,
# double, alaw); another encoding (compressed) has no frame size to check against.
_AU_SAMPLE_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}
# Bytes per sample of AIFC compression types (plain AIFF is "NONE").
_AIFC_SAMPLE_BYTES = {b"NONE": None, b"sowt": None, b"twos": None, b"raw ": None, b"in24": 3, b"in32": 4,
                      b"fl32": 4, b"FL32": 4, b"fl64": 8, b"FL64": 8, b"ulaw": 1, b"ULAW": 1, b"alaw": 1,
                      b"ALAW": 1}


def _cut_description(declared: int, held_bytes: int, frame_bytes: int) -> str | None:
    """The truncation message when ``held_bytes`` of sample data hold fewer than ``declared`` frames."""
    held = max(held_bytes, 0) // frame_bytes
    return f"header declares {declared} frames, file holds {held}" if held < declared else None


def _riff_truncation(f, size_of_file: int) -> str | None:
    """RIFF/WAVE (after the 12-byte header): the data chunk's size against the bytes left."""
    block_align = 0
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            fmt = f.read(size)
            block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
            f.seek(size % 2, 1)
        elif cid == b"data":
            if size in (0, 0xFFFFFFFF) or block_align == 0:           # streamed / unknown length
                return None
            return _cut_description(size // block_align, size_of_file - f.tell(), block_align)
        else:
            f.seek(size + size % 2, 1)


def _aiff_truncation(f, size_of_file: int, aifc: bool) -> str | None:
    """FORM/AIFF or AIFC (after the 12-byte header): COMM's frame count against SSND's bytes."""
    frames = frame_bytes = None
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        cid, size = chunk[:4], struct.unpack(">I", chunk[4:])[0]
        if cid == b"COMM":
            comm = f.read(size)
            if len(comm) < 8:
                return None
            channels, frames, bits = struct.unpack(">HIH", comm[:8])
            kind = comm[18:22] if aifc and len(comm) >= 22 else b"NONE"
            if kind not in _AIFC_SAMPLE_BYTES:                         # compressed: no fixed frame size
                return None
            frame_bytes = channels * (_AIFC_SAMPLE_BYTES[kind] or (bits + 7) // 8)
            f.seek(size % 2, 1)
        elif cid == b"SSND":
            if not frames or not frame_bytes:
                return None
            offset = struct.unpack(">I", f.read(8)[:4])[0]            # offset, block size
            return _cut_description(frames, size_of_file - f.tell() - offset, frame_bytes)
        else:
            f.seek(size + size % 2, 1)


def _au_truncation(head: bytes, size_of_file: int, order: str) -> str | None:
    """Sun/NeXT AU: the header's data size against the bytes after the header."""
    offset, size, encoding, _, channels = struct.unpack(order + "5I", head[4:24])
    if size == 0xFFFFFFFF or encoding not in _AU_SAMPLE_BYTES or channels == 0:   # unknown length
        return None
    frame_bytes = channels * _AU_SAMPLE_BYTES[encoding]
    return _cut_description(size // frame_bytes, size_of_file - offset, frame_bytes)


def _pcm_truncation(path: Path) -> str | None:
    """For a PCM container whose header states its exact length (WAV, AIFF/AIFC, AU), a
    description if the header claims more frames than the file holds, else None.

    libsndfile silently shortens such files to the frames present, so its frame count cannot
    tell; the header's own count can. Other formats (FLAC, MP3, Ogg) are checked after decoding
    (:func:`read_file`)."""
    try:
        size_of_file = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(24)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                f.seek(12)
                return _riff_truncation(f, size_of_file)
            if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                f.seek(12)
                return _aiff_truncation(f, size_of_file, head[8:12] == b"AIFC")
            if len(head) == 24 and head[:4] in (b".snd", b"dns."):
                return _au_truncation(head, size_of_file, ">" if head[:4] == b".snd" else "<")
            return None
    except (OSError, struct.error):
        return None


def _check_present(path: Path) -> None:
    """BadAudioError unless ``path`` is an existing, non-empty file."""
    if not path.is_file():
        raise BadAudioError(path, "missing")
    if path.stat().st_size == 0:
        raise BadAudioError(path, "empty", "0 bytes")


def check_header(path) -> None:
    """Cheap validity check without decoding: exists, non-empty, readable header, not a
    truncated WAV, AIFF or AU. Raises :class:`BadAudioError` (reason missing, empty, unreadable or
    truncated). Formats libsndfile cannot open are left to :func:`decode_audio`."""
    path = Path(path)
    _check_present(path)
    try:
        info = sf.info(str(path))
    except Exception as e:                              # noqa: BLE001 - any failure is the verdict
        if path.suffix.lower() in (".wav", ".flac", ".ogg"):
            raise BadAudioError(path, "unreadable", _sndfile_reason(e, path)) from None
        return
    if info.frames == 0:
        raise BadAudioError(path, "empty", "0 frames")
    if (why := _pcm_truncation(path)) is not None:
        raise BadAudioError(path, "truncated", why)


def _sndfile_reason(exc: Exception, path: Path) -> str:
    """libsndfile's complaint without the "Error opening '<path>': " prefix it repeats."""
    text = " ".join(str(exc).split()).replace(f"Error opening {str(path)!r}: ", "")
    return "not a recognised audio format" if "Format not recognised" in text else text


def read_file(path) -> tuple[np.ndarray, int]:
    """Decode a file as it is: (float32 [T, C], native rate). BadAudioError (missing,
    empty, unreadable, truncated) otherwise.

    Truncated: a PCM container (WAV, AIFF, AU) whose header claims more frames than the
    file holds, a file whose decoder fails part way, or one that decodes fewer frames than
    its header states (FLAC: any; MP3, Ogg, whose header length is an estimate: more than
    ``ESTIMATE_SLACK_SECONDS`` or ``ESTIMATE_SLACK_FRACTION`` of it, whichever is more).
    """
    path = Path(path)
    _check_present(path)
    try:
        info = sf.info(str(path))
    except Exception as e:                              # noqa: BLE001
        try:                                            # formats libsndfile cannot open (.au variants, ...)
            import librosa
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, rate = librosa.load(str(path), sr=None, mono=False)
        except Exception:                               # noqa: BLE001
            raise BadAudioError(path, "unreadable", _sndfile_reason(e, path)) from None
        return np.atleast_2d(np.asarray(y, np.float32)).T, int(rate)
    if (why := _pcm_truncation(path)) is not None:
        raise BadAudioError(path, "truncated", why)
    try:
        y, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:                              # noqa: BLE001 - header fine, data not
        raise BadAudioError(path, "truncated", f"read failed: {str(e).strip()}") from None
    if len(y) < info.frames - _length_slack(info):
        estimate = "estimates" if info.format in ESTIMATED_LENGTH_FORMATS else "declares"
        raise BadAudioError(path, "truncated", f"header {estimate} {info.frames} frames, read {len(y)}")
    return y, int(rate)


def _length_slack(info) -> int:
    """Frames a file's decoded length may fall short of its header's: 0 where the header
    counts them (WAV, AIFF, AU, FLAC, ...), the estimate's slack where it estimates them."""
    if info.format not in ESTIMATED_LENGTH_FORMATS:
        return 0
    return int(max(ESTIMATE_SLACK_SECONDS * info.samplerate, ESTIMATE_SLACK_FRACTION * info.frames))


def decode_audio(path, sr: int, min_seconds: float = 0.0) -> np.ndarray:
    """Decode any audio file to mono float32 at ``sr``.

    soundfile first (WAV, FLAC, OGG, MP3, AU), librosa as fallback; channels are averaged,
    other rates resampled (soxr_hq).

    Parameters
    ----------
    path : str or Path
    sr : int, target sample rate
    min_seconds : float, shorter clips raise ``BadAudioError(reason="too short")``

    Returns
    -------
    np.ndarray, float32 [T], T = round(native length * sr / native rate)

    Raises
    ------
    BadAudioError
        reason missing, unreadable, empty, truncated, non-finite, silent or too short.
    """
    path = Path(path)
    y, rate = read_file(path)
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]           # [T, C] -> [T]
    if y.size == 0:
        raise BadAudioError(path, "empty", "0 samples")
    if not np.isfinite(y).all():
        raise BadAudioError(path, "non-finite", f"{int((~np.isfinite(y)).sum())} NaN/inf samples")
    peak = float(np.abs(y).max())
    if peak < SILENCE_PEAK:
        raise BadAudioError(path, "silent", f"peak {peak:.2g}")
    if y.size / rate < min_seconds:
        raise BadAudioError(path, "too short", f"{y.size / rate:.3g} s < {min_seconds:g} s")
    if rate != sr:
        import librosa
        y = librosa.resample(y, orig_sr=rate, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


# --------------------------------------------------------------------------- files
# errno values that mean "this path cannot be written" (rather than a bug in the writer).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST,
                 errno.ENOTDIR, errno.EISDIR, errno.EFBIG}


def _write_problem(path: Path, exc: OSError) -> str:
    """One line: what stops ``path`` from being written, and what was expected instead."""
    blocker = next((p for p in (path, *path.parents) if p.exists()), None)     # nearest existing path
    folder = next((p for p in (path, *path.parents) if p.is_dir()), path.parent)
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and blocker is not None and not blocker.is_dir():
        where = "it" if blocker == path else str(blocker)
        return f"cannot write {path}: {where} is a file, expected a folder"
    if exc.errno == errno.EISDIR:
        return f"cannot write {path}: it is a folder, expected a file name"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"cannot write {path}: no space left on the device (expected free space on it)"
    if exc.errno == errno.EROFS:
        return f"cannot write {path}: {folder} is on a read-only file system (expected a writable folder)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot write {path}: permission denied in {folder} (expected a folder you can write to)"
    return f"cannot write {path}: {exc.strerror or exc}"


def output_folder(path) -> Path:
    """``path`` as a folder to write into, checked before any work is done: created when
    missing, then probed with an empty temporary file.

    Raises
    ------
    cli.OutputError naming the path and what was expected: a file in its place or on its way,
    no write permission, a read-only file system.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(_write_problem(path, exc)) from exc
    return path


def atomic_write(path, write, mode: str = "wb", **open_kwargs) -> Path:
    """Write ``path`` all at once: ``write(f)`` fills a temporary file in the same folder,
    which then replaces ``path`` (``os.replace``); on any failure ``path`` is left as it was.

    Parameters
    ----------
    path : the file (missing folders are created)
    write : callable taking the open temporary file
    mode, open_kwargs : how the temporary file is opened ("wb", or "w" with e.g. newline="")

    Returns
    -------
    Path written (readable by everyone, like a file opened normally under a 022 umask)

    Raises
    ------
    cli.OutputError naming ``path`` when it cannot be written (a file where a folder should be,
    no permission, a read-only file system, a full disk); other errors as they come.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode, **open_kwargs) as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            raise OutputError(_write_problem(path, exc)) from exc
        raise
    return path


# --------------------------------------------------------------------------- cache
class AudioCache:
    """Decoded audio on disk, one raw float32 ``.npy`` per (file, sample rate).

    The key hashes the absolute path, file size, mtime_ns and sample rate, so an edited
    file or another rate misses. A bad file's verdict is cached as a small JSON and raised
    again without decoding. Writes are atomic (temp file + ``os.replace``).
    ``stats`` counts ``decoded`` (files decoded) and ``hits`` (answered from disk).
    """

    def __init__(self, cache_dir):
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stats = {"decoded": 0, "hits": 0}

    def _stem(self, path: Path, sr: int) -> Path:
        st = path.stat()
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{int(sr)}|v{_CACHE_VERSION}"
        return self.dir / f"{path.name}.{int(sr)}.{hashlib.sha1(key.encode()).hexdigest()[:16]}"

    def ensure(self, path, sr: int) -> Path:
        """Decode ``path`` at ``sr`` unless cached; return the ``.npy`` path.
        Raises :class:`BadAudioError` (also for a cached bad verdict)."""
        path = Path(path)
        if not path.is_file():
            raise BadAudioError(path, "missing")
        stem = self._stem(path, sr)
        npy, bad = stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".bad.json")
        if npy.is_file():
            self.stats["hits"] += 1
            return npy
        if bad.is_file():
            self.stats["hits"] += 1
            verdict = json.loads(bad.read_text())
            raise BadAudioError(path, verdict["reason"], verdict["detail"])
        self.stats["decoded"] += 1
        try:
            audio = decode_audio(path, sr)
        except BadAudioError as err:
            text = json.dumps({"file": str(path), "reason": err.reason, "detail": err.detail})
            atomic_write(bad, lambda f: f.write(text), mode="w")
            raise
        atomic_write(npy, lambda f: np.save(f, audio))
        return npy

    def load(self, path, sr: int) -> np.ndarray:
        """Mono float32 [T] at ``sr``, memory-mapped read-only from the cache."""
        return np.load(self.ensure(path, sr), mmap_mode="r")


# --------------------------------------------------------------------------- discovery
def _roots(data_path) -> tuple[Path, Path]:
    """(data root, audio root) for a ``Data`` folder or its ``genres_original``."""
    p = Path(data_path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"GTZAN folder not found: {p}")
    if (p / "genres_original").is_dir():
        return p, p / "genres_original"
    return (p.parent if p.name == "genres_original" else p), p


def _file_id(name: str) -> str:
    """"genres_original/blues/blues.00000.wav" or "blues.00000" -> "blues.00000"."""
    p = Path(name)
    return p.stem if p.suffix.lower() in AUDIO_EXTENSIONS else p.name


def read_manifest(data_path) -> dict | None:
    """{file id (e.g. "blues.00000"): content id} from synthetic_manifest.csv, or None."""
    data_root, audio_root = _roots(data_path)
    for folder in (data_root, audio_root):
        if (f := folder / MANIFEST).is_file():
            with open(f, newline="") as fh:
                return {_file_id(row["file"]): str(row["content_id"]) for row in csv.DictReader(fh)}
    return None


def discover_files(data_path, report: BuildReport | None = None) -> list[FileRecord]:
    """Every audio file (``AUDIO_EXTENSIONS``) in a genre folder, sorted.

    A folder whose name is not in ``GENRES`` is skipped with one warning; its audio files
    are counted in ``report`` with reason "unknown genre". Hidden files are ignored.
    When a synthetic manifest exists, each record carries its content id.

    Returns
    -------
    list[FileRecord]
    """
    _, audio_root = _roots(data_path)
    manifest = read_manifest(data_path) or {}
    records, n_unknown = [], 0
    for folder in sorted(d for d in audio_root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                       and f.suffix.lower() in AUDIO_EXTENSIONS)
        genre = folder.name.lower()
        if genre not in GENRES:
            if files:
                _warn(BadAudioError(folder, "unknown genre", f"{len(files)} files skipped"))
                n_unknown += len(files)
                for f in files if report is not None else ():
                    report.add(f, "unknown genre", warn=False)
            continue
        records += [FileRecord(f, genre, manifest.get(f.stem)) for f in files]
    if report is not None:
        report.total += len(records) + n_unknown
    return records


# --------------------------------------------------------------------------- splits
def _filtered_lists() -> dict:
    from torchaudio.datasets.gtzan import filtered_test, filtered_train, filtered_valid
    return {"train": filtered_train, "valid": filtered_valid, "test": filtered_test}


def _usable(files, report: BuildReport) -> list[FileRecord]:
    good = []
    for rec in files:
        try:
            check_header(rec.path)
            good.append(rec)
        except BadAudioError as err:
            report.add(rec.path, err.reason, err.detail)
    return good


def _allocate(n: int, fractions) -> list[int]:
    """Split n items by (train, valid, test) fractions: valid and test rounded, train the rest."""
    n_valid, n_test = (int(np.floor(n * f + 0.5)) for f in fractions[1:])     # half rounds up
    if n >= 3:     # every split with a non-zero fraction gets at least one item
        n_valid = max(n_valid, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    return [n - n_valid - n_test, n_valid, n_test]


def split_files(files, mode: str = "auto", seed: int = 0, fractions=(0.7, 0.15, 0.15),
                report: BuildReport | None = None, check: bool = True) -> dict:
    """Split file records by FILE, so no clip's segments are in two splits.

    Parameters
    ----------
    files : list[FileRecord]
    mode : "filtered" (torchaudio's artist-filtered GTZAN lists, 443/197/290; the 70 files
        in no list are left out, a listed file that is missing or bad is reported), "random"
        (stratified by genre, seeded), "content" (grouped by content id, stratified by
        genre: no content id in two splits), or "auto": content if the records carry
        content ids, else filtered if most of GTZAN's names are present, else random.
    seed, fractions : for "random" and "content"; fractions of (train, valid, test).
    report : BuildReport, collects missing or bad files (each warned once).
    check : run :func:`check_header` on every file and leave bad ones out.

    Returns
    -------
    dict {"train", "valid", "test"} -> list[FileRecord]
    """
    files, report = list(files), report if report is not None else BuildReport()
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be >= 0 and sum to 1: {fractions}")
    if mode not in ("auto", "filtered", "random", "content"):
        raise ValueError(f"unknown split mode {mode!r}; choose auto, filtered, random or content")
    by_name = {r.name: r for r in files}
    lists = _filtered_lists()
    if mode == "auto":
        listed = [n for names in lists.values() for n in names]
        mode = ("content" if any(r.content_id is not None for r in files) else
                "filtered" if sum(n in by_name for n in listed) > len(listed) / 2 else "random")
    if mode == "filtered":
        out = {}
        for split, names in lists.items():
            for n in names:
                if n not in by_name:
                    report.add(f"{n}.wav", "missing", "listed in the filtered split")
            chosen = [by_name[n] for n in names if n in by_name]
            out[split] = _usable(chosen, report) if check else chosen
        return out
    if check:
        files = _usable(files, report)
    rng = np.random.default_rng(seed)
    out = {s: [] for s in SPLITS}
    if mode == "random":
        for genre in GENRES:
            group = sorted((r for r in files if r.genre == genre), key=lambda r: str(r.path))
            order = rng.permutation(len(group))
            bounds = np.cumsum(_allocate(len(group), fractions))
            for s, part in zip(SPLITS, np.split(order, bounds[:-1])):
                out[s] += [group[i] for i in part]
    else:                                                          # content
        groups = collections.defaultdict(list)
        for r in files:
            groups[r.content_id if r.content_id is not None else f"file:{r.name}"].append(r)
        ids = sorted(groups)
        ids = [ids[i] for i in rng.permutation(len(ids))]
        # Every synthetic content is rendered in every genre, so splitting the content ids
        # by the fractions also stratifies by genre; each split gets at least one content.
        counts = _allocate(len(ids), fractions)
        bounds = np.cumsum(counts)[:-1]
        for s, part in zip(SPLITS, np.split(np.arange(len(ids)), bounds)):
            for i in part:
                out[s] += groups[ids[i]]
    return {s: sorted(v, key=lambda r: (r.label, r.name)) for s, v in out.items()}


# --------------------------------------------------------------------------- slicing
def segment_starts(n_samples: int, sr: int, duration: float = 5.0, n_segments: int = 5,
                   start: float = 2.5, end: float = 27.5) -> np.ndarray:
    """Start samples of ``n_segments`` segments of ``duration`` s, evenly spaced so the
    first starts at ``start`` s and the last ends at ``end`` s (contiguous 5 x 5 s between
    2.5 s and 27.5 s by default). A clip shorter than ``end`` spreads them over what it has.

    Returns
    -------
    np.ndarray, int64 [n_segments]

    Raises
    ------
    ValueError if the clip is shorter than one segment.
    """
    if duration <= 0 or n_segments < 1 or start < 0 or end <= start:
        raise ValueError(f"bad slicing: duration={duration}, n_segments={n_segments}, "
                         f"start={start}, end={end}")
    seg = int(round(duration * sr))
    if n_samples < seg:
        raise ValueError(f"{n_samples / sr:.3g} s is shorter than one {duration:g} s segment")
    last = min(int(round(end * sr)), n_samples) - seg          # last possible start
    first = min(int(round(start * sr)), last)
    return np.linspace(first, last, n_segments).round().astype(np.int64)


class GTZANSegments(torch.utils.data.Dataset):
    """Fixed-length segments of GTZAN clips, decoded once through an :class:`AudioCache`.

    Parameters
    ----------
    files : list[FileRecord]
    sr, duration, n_segments, start, end : slicing, see :func:`segment_starts`
    cache : AudioCache, or ``cache_dir`` to make one (default: ``.cache`` beside the
        first file's genre folder)
    report : BuildReport to add skipped files to (default: a new one, logged)
    progress : show a tqdm bar while decoding

    Attributes
    ----------
    genres : list[str], index -> genre name
    files : list[FileRecord], the good files
    content_ids : list[str | None], per good file
    segment_index : np.ndarray int64 [N, 2], (file index, start sample) per segment
    labels : np.ndarray int64 [N]
    segment_samples : int, T
    report : BuildReport

    ``dataset[i]`` -> (float32 tensor [T], genre index).
    """

    _MAX_OPEN = 64   # each memmap holds a file descriptor: keep a few open, reopen the rest

    def __init__(self, files, sr: int = GTZAN_SR, duration: float = 5.0, n_segments: int = 5,
                 start: float = 2.5, end: float = 27.5, cache: AudioCache | None = None,
                 cache_dir=None, report: BuildReport | None = None, progress: bool = True):
        files = list(files)
        if cache is None:
            root = _roots(Path(files[0].path).resolve().parent.parent)[0] if files else Path(".")
            cache = AudioCache(cache_dir or root / ".cache")
        own_report = report is None
        self.report = BuildReport(total=len(files)) if own_report else report
        self.cache, self.sr, self.genres = cache, int(sr), list(GENRES)
        self.segment_samples = int(round(duration * sr))
        self.files, self._npy, index = [], [], []
        for rec in tqdm(files, desc=f"decoding audio @ {sr} Hz", unit="file", disable=not progress):
            try:
                npy = cache.ensure(rec.path, sr)
                n = np.load(npy, mmap_mode="r").shape[0]
                starts = segment_starts(n, sr, duration, n_segments, start, end)
            except BadAudioError as err:
                self.report.add(rec.path, err.reason, err.detail)
                continue
            except ValueError as err:
                self.report.add(rec.path, "too short", str(err))
                continue
            index += [(len(self.files), s) for s in starts]
            self.files.append(rec)
            self._npy.append(npy)
        self.content_ids = [r.content_id for r in self.files]
        self.segment_index = np.asarray(index, dtype=np.int64).reshape(-1, 2)
        self.labels = np.asarray([self.files[f].label for f, _ in self.segment_index], np.int64)
        self._open = collections.OrderedDict()
        if own_report:
            self.report.log()

    def __len__(self) -> int:
        return len(self.segment_index)

    def _audio(self, file_idx: int) -> np.ndarray:
        if file_idx in self._open:
            self._open.move_to_end(file_idx)
        else:
            self._open[file_idx] = np.load(self._npy[file_idx], mmap_mode="r")
            if len(self._open) > self._MAX_OPEN:
                self._open.popitem(last=False)
        return self._open[file_idx]

    def segment(self, i: int) -> np.ndarray:
        """Segment ``i`` as a read-only view into the memory-mapped file, float32 [T]."""
        f, s = self.segment_index[i]
        return self._audio(int(f))[s:s + self.segment_samples]

    def content_id(self, i: int) -> str | None:
        """Content id of segment ``i``'s file (synthetic set), else None."""
        return self.content_ids[int(self.segment_index[i, 0])]

    def __getitem__(self, i: int):
        return torch.from_numpy(np.array(self.segment(i))), int(self.labels[i])

    def __getstate__(self):      # open maps are per process (DataLoader workers reopen)
        return {**self.__dict__, "_open": collections.OrderedDict()}


def require_files(splits: dict, data_path, report: BuildReport, needed=SPLITS) -> dict:
    """``splits`` unchanged when each split in ``needed`` holds a file; otherwise an InputError
    naming the folder, what was found and skipped, and the layout that was expected."""
    empty = [name for name in needed if not splits.get(name)]
    if empty:
        found = ", ".join(f"{name} {len(splits.get(name, []))}" for name in SPLITS)
        raise InputError(f"no usable audio for the {'/'.join(empty)} split in {data_path} (files: {found}; "
                         f"{report.summary()}); expected GTZAN's Kaggle layout "
                         f"<data>/genres_original/<genre>/<genre>.000NN.wav with enough good files per genre")
    return splits


# --------------------------------------------------------------------------- whole clips
def clip_reader(records, sr: int, cache: AudioCache | None = None, max_seconds: float | None = None):
    """A function FileRecord -> mono float32 clip [T] at ``sr`` (its first ``max_seconds``),
    read through ``cache`` (default: the cache of the records' data folder)."""
    if cache is None:
        cache = AudioCache(_roots(records[0].path.parent.parent)[0] / ".cache")
    limit = int(max_seconds * sr) if max_seconds else None
    return lambda rec: np.array(cache.load(rec.path, sr)[:limit], dtype=np.float32)


def pick_clips(records, genre: str, n: int = 5) -> list:
    """``n`` clips of ``genre``, spread evenly over the (sorted) records of that genre.

    Parameters
    ----------
    records : FileRecord list, e.g. ``DataLoad(data).splits()["test"]``
    genre : a name from GENRES
    n : number of clips (>= 1)

    Returns
    -------
    list of ``n`` distinct FileRecords, in the records' order

    Raises
    ------
    ValueError : unknown genre, n < 1, or fewer than ``n`` clips of the genre
    """
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; choose one of: {', '.join(GENRES)}")
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    pool = [r for r in records if r.genre == genre]
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} clip(s) of {genre!r} among the {len(records)} records given, "
                         f"{n} asked for (use another split, a larger data set or a smaller n)")
    idx = np.linspace(0, len(pool) - 1, int(n)).round().astype(int)     # step >= 1: distinct
    return [pool[i] for i in idx]


# --------------------------------------------------------------------------- entry point
class DataLoad:
    """The seed's entry point on a GTZAN folder (``Data`` or ``Data/genres_original``).

    Parameters
    ----------
    data_path : str or Path
    cache_dir : decoded-audio cache (default ``<data>/.cache``)
    split_mode, seed, fractions : see :func:`split_files`
    progress : tqdm bar while decoding
    """

    def __init__(self, data_path, cache_dir=None, split_mode: str = "auto", seed: int = 0,
                 fractions=(0.7, 0.15, 0.15), progress: bool = True):
        self.data_root, self.audio_root = _roots(data_path)
        self.cache = AudioCache(cache_dir or self.data_root / ".cache")
        self.split_mode, self.seed, self.fractions = split_mode, seed, tuple(fractions)
        self.progress = progress
        self.report = BuildReport()

    def get_genre_names(self) -> list[str]:
        """Genre names in label order."""
        return list(GENRES)

    def get_image_paths(self) -> dict:
        """{genre: sorted list of PNG paths} from ``images_original``."""
        folder = self.data_root / "images_original"
        if not folder.is_dir():
            raise FileNotFoundError(f"no images_original folder in {self.data_root}")
        return {g: sorted((folder / g).glob("*.png")) for g in GENRES if (folder / g).is_dir()}

    def splits(self, report: BuildReport | None = None) -> dict:
        """{"train", "valid", "test"} -> [FileRecord] (see :func:`split_files`)."""
        return split_files(discover_files(self.audio_root, report), self.split_mode, self.seed,
                           self.fractions, report)

    def dataset(self, split: str | None = None, sr: int = GTZAN_SR, duration: float = 5.0,
                n_segments: int = 5, start: float = 2.5, end: float = 27.5) -> GTZANSegments:
        """GTZANSegments of every good file (``split=None``) or of one split; the skipped
        files are in ``self.report`` and its summary is logged."""
        self.report = report = BuildReport()
        if split is None:
            files = discover_files(self.audio_root, report)
        elif split in SPLITS:
            files = self.splits(report)[split]
        else:
            raise ValueError(f"unknown split {split!r}; choose None or one of {SPLITS}")
        ds = GTZANSegments(files, sr, duration, n_segments, start, end, cache=self.cache,
                           report=report, progress=self.progress)
        report.log()
        return ds

    def fetch_dataset(self, sr: int = GTZAN_SR, duration: float = 5.0, n_segments: int = 5,
                      start: float = 2.5, end: float = 27.5, split: str | None = None):
        """All segments of all good files (or of one split) in memory.

        Returns
        -------
        audio : np.ndarray, float32 [N, T], T = round(duration * sr)
        labels : np.ndarray, int64 [N], indices into :meth:`get_genre_names`
        """
        ds = self.dataset(split, sr, duration, n_segments, start, end)
        audio = np.empty((len(ds), ds.segment_samples), np.float32)
        for f in range(len(ds.files)):               # one file mapped at a time
            rows = np.flatnonzero(ds.segment_index[:, 0] == f)
            mm = np.load(ds._npy[f], mmap_mode="r")
            for r in rows:
                s = ds.segment_index[r, 1]
                audio[r] = mm[s:s + ds.segment_samples]
            del mm
        return audio, ds.labels.copy()
