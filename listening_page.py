"""The listening page: ``audio_results/index.html``, one static page to hear every transfer.

For each model (a section) the page shows a header (name, family, preset, checkpoint and
the overall numbers of its ``metrics.json``: judge accuracy, transfer success and content
per method and strength, reconstruction error, active latent units), then one block per
transferred clip: source and target genre, and an audio player with its spectrogram, its
duration and its own numbers for the source, its reconstruction and each method's output.

The page is plain HTML with an inline style sheet: no script, no external resource, and
every link relative to the folder it sits in, so the folder can be zipped and shared.
Every file a page names must exist inside that folder; anything else is an error that
names the file. Durations come from the WAV headers (soundfile) and are written both as
visible text and as ``data-duration`` (seconds) on each ``<audio>`` element.

``transfer.py`` writes ``<folder>/manifest.csv`` (source file, genres, method, strength,
output file); :func:`section_from_folder` turns that, and ``metrics.json`` beside it, into
a section. A row with strength 0 is the reconstruction (no edit of the latent); source
files outside the page folder are copied into ``<folder>/sources/``; spectrograms are
drawn into ``<folder>/spectrograms/`` with :func:`audio_io.plot_mel`.

Public API
----------
Clip(label, audio, image=None, metrics={})      one player: a sound file, its picture, its numbers
TransferEntry(title, source_genre, target_genre, source, reconstruction=None, outputs=[])
ModelSection(name, info={}, metrics=None, entries=[])   one model: header and its transfers
write_listening_page(out_dir, sections, title, filename)   -> Path of the page (atomic write)
section_from_folder(folder, out_dir, name, info, judge, content, spectrograms, cfg)
                                                -> ModelSection from manifest.csv + metrics.json
write_report(out_dir, info, judge, content, spectrograms, cfg)
                                                -> Path: a page for every manifest.csv under out_dir
render_spectrogram(audio_path, png_path, cfg)   one log-mel picture of a sound file
audio_duration(path)                            seconds, from the file header
"""
from __future__ import annotations

import csv
import hashlib
import html
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

from audio_io import read_audio_file, save_wav
from SlicingDataLoading import atomic_write

__all__ = ["Clip", "TransferEntry", "ModelSection", "write_listening_page", "section_from_folder",
           "write_report", "render_spectrogram", "audio_duration", "read_manifest", "record_outputs"]

PAGE_NAME = "index.html"
MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = ("source_file", "source_genre", "target_genre", "method", "strength", "output_file")
METRICS_NAME = "metrics.json"
SOURCES_DIR = "sources"
SPECTROGRAMS_DIR = "spectrograms"
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}
IMAGE_SIGNATURES = {".png": (b"\x89PNG\r\n\x1a\n",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",),
                    ".gif": (b"GIF87a", b"GIF89a")}
# WAV encodings every browser decodes; anything else is converted to 16-bit PCM when copied.
PLAYABLE_WAV = {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"}
METRIC_LABELS = {
    "target_prob": "judge p(target genre)",
    "source_prob": "judge p(source genre)",
    "judge_genre": "judge's genre",
    "content_similarity": "content similarity to source (chroma)",
    "onset_f1_truth": "onset F1 against the ground truth",
    "onset_f1_source": "onset F1 against the source",
    "onset_sharpness": "onset sharpness",
}
# A manifest row with this method is the ground truth of its transfer (synthetic set): the
# source's content rendered in the target genre at the source's timing.
TRUTH_METHOD = "ground truth"


# --------------------------------------------------------------------------- the data
@dataclass
class Clip:
    """One player on the page.

    Parameters
    ----------
    label : what it is, e.g. "source", "reconstruction", "shift (strength 1)"
    audio : sound file (WAV, FLAC, OGG or MP3), absolute or relative to the page folder;
        it must lie inside that folder
    image : its spectrogram picture (PNG, JPEG or GIF), same rules; None for none
    metrics : numbers (or short strings) shown under the player, in this order; keys of
        ``METRIC_LABELS`` get a readable label, others are shown as they are
    """

    label: str
    audio: str | os.PathLike
    image: str | os.PathLike | None = None
    metrics: Mapping[str, object] = field(default_factory=dict)


@dataclass
class TransferEntry:
    """One transferred clip: its source, the reconstruction and each method's output.

    Parameters
    ----------
    title : heading, usually the source file's name
    source_genre, target_genre : genre names
    source : the original clip
    reconstruction : the model's plain reconstruction (no edit of the latent), or None
    outputs : one clip per method (and strength)
    truth : the ground truth of the transfer (synthetic set: the source's content rendered in
        the target genre at the source's timing), or None
    """

    title: str
    source_genre: str
    target_genre: str
    source: Clip
    reconstruction: Clip | None = None
    outputs: list[Clip] = field(default_factory=list)
    truth: Clip | None = None

    def clips(self) -> list[tuple[str, Clip]]:
        """(role, clip) in page order: source, reconstruction, outputs, ground truth."""
        roles = [("source", self.source)]
        if self.reconstruction is not None:
            roles.append(("reconstruction", self.reconstruction))
        roles += [("output", c) for c in self.outputs]
        return roles + ([("truth", self.truth)] if self.truth is not None else [])


@dataclass
class ModelSection:
    """One model on the page.

    Parameters
    ----------
    name : heading, e.g. "mel VAE"
    info : model details shown as a list (family, preset, checkpoint, epoch, ...); scalar
        values only, others are left out
    metrics : the model's metrics.json dict (:func:`evaluation.build_metrics`), or None
    entries : its transfers
    """

    name: str
    info: Mapping[str, object] = field(default_factory=dict)
    metrics: Mapping | None = None
    entries: list[TransferEntry] = field(default_factory=list)


# --------------------------------------------------------------------------- files
def _audio_facts(path) -> dict:
    """Duration (s), sample rate and channels of a sound file, from its header."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types
        raise ValueError(f"cannot read {path} as audio: {exc}") from exc
    if info.samplerate <= 0 or info.frames <= 0:
        raise ValueError(f"{path} holds no audio (frames={info.frames}, rate={info.samplerate})")
    return {"duration": info.frames / info.samplerate, "sample_rate": int(info.samplerate),
            "channels": int(info.channels)}


def audio_duration(path) -> float:
    """Duration in seconds of a sound file, from its header (frames / sample rate).

    Raises
    ------
    FileNotFoundError : no such file
    ValueError : soundfile cannot read it, or it holds no samples (the message names the file)
    """
    return _audio_facts(path)["duration"]


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None for other formats."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != IMAGE_SIGNATURES[".png"][0] or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _check_image(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SIGNATURES:
        raise ValueError(f"image {path}: unsupported type {suffix or '(none)'}; "
                         f"use one of {', '.join(sorted(IMAGE_SIGNATURES))}")
    with open(path, "rb") as f:
        head = f.read(8)
    if not any(head.startswith(sig) for sig in IMAGE_SIGNATURES[suffix]):
        raise ValueError(f"image {path} is not a valid {suffix[1:].upper()} file")


def _inside(out_dir: Path, path, what: str) -> Path:
    """``path`` (absolute, or relative to ``out_dir``) as a path relative to ``out_dir``.

    Raises FileNotFoundError naming the file when it does not exist, ValueError when it
    lies outside ``out_dir`` (after resolving symbolic links).
    """
    raw = Path(path)
    full = raw if raw.is_absolute() else out_dir / raw
    if not full.is_file():
        raise FileNotFoundError(f"{what}: file not found: {full}")
    resolved = full.resolve()
    if not resolved.is_relative_to(out_dir):
        raise ValueError(f"{what}: {full} lies outside the page folder {out_dir}; copy it "
                         f"there first (the page may only link files inside its folder)")
    return resolved.relative_to(out_dir)


def _url(rel: Path) -> str:
    """A relative path as a URL path (percent-encoded, '/' separated), never absolute."""
    return quote(rel.as_posix(), safe="/")


# --------------------------------------------------------------------------- HTML
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 1rem 1.5rem 3rem; color: #1d232a; background: #fbfbfa; line-height: 1.4; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 0.25rem; }
h2 { font-size: 1.35rem; margin-top: 2.5rem; border-bottom: 2px solid #2b6cb0; padding-bottom: 0.2rem; }
h3 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
h4 { font-size: 1rem; margin: 0 0 0.6rem; }
.note { color: #5a6470; font-size: 0.9rem; }
dl.info { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; margin: 0.5rem 0; }
dl.info dt { font-weight: 600; }
dl.info dd { margin: 0; word-break: break-all; }
table.metrics { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
table.metrics th, table.metrics td { border: 1px solid #cfd6de; padding: 0.2rem 0.6rem; text-align: right; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
table.metrics thead th { background: #e8eef5; }
table.metrics tr.baseline td { color: #5a6470; font-style: italic; }
article.transfer { background: #fff; border: 1px solid #d9dee4; border-radius: 8px; padding: 0.9rem;
                   margin: 1rem 0; }
.genres { font-weight: 400; color: #2b6cb0; }
.clips { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 0.9rem; }
figure.clip { margin: 0; padding: 0.6rem; border: 1px solid #e3e7ec; border-radius: 6px; background: #fcfdfe; }
figure.clip[data-role="source"] { border-color: #9fb8d6; }
figure.clip figcaption { font-weight: 600; margin-bottom: 0.35rem; }
figure.clip audio { width: 100%; }
figure.clip img { width: 100%; height: auto; display: block; margin-top: 0.35rem; }
.duration { font-size: 0.85rem; color: #5a6470; margin: 0.2rem 0; overflow-wrap: anywhere; }
dl.clip-metrics { display: grid; grid-template-columns: 1fr max-content; gap: 0 0.6rem; font-size: 0.85rem;
                  margin: 0.4rem 0 0; }
dl.clip-metrics dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
nav ul { padding-left: 1.2rem; }
"""


def _e(value) -> str:
    """Text escaped for HTML content and double-quoted attributes."""
    return html.escape(str(value), quote=True)


def _fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and spec != "d":
        return str(value)
    if spec == "d" and isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, ".3f")
    if isinstance(value, (int, float)):
        return format(value, spec)
    try:                                           # numpy scalars
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def _slug(text: str, used: set) -> str:
    base = "".join(ch if ch.isalnum() else "-" for ch in str(text).lower()).strip("-") or "item"
    slug, n = base, 2
    while slug in used:
        slug, n = f"{base}-{n}", n + 1
    used.add(slug)
    return slug


def _info_html(info: Mapping) -> list[str]:
    rows = [(k, v) for k, v in info.items() if v is not None and not isinstance(v, (list, tuple, dict))]
    if not rows:
        return []
    out = ['<dl class="info">']
    for key, value in rows:
        out.append(f"<dt>{_e(str(key).replace('_', ' '))}</dt><dd>{_e(_fmt(value))}</dd>")
    out.append("</dl>")
    return out


def _metrics_html(metrics: Mapping | None) -> list[str]:
    """Overall numbers of a metrics.json: judge, transfer table, reconstruction, latent."""
    if not metrics:
        return ['<p class="note">No metrics.json for this model.</p>']
    out = ["<h3>Overall metrics</h3>"]
    judge = metrics.get("judge") or {}
    if judge:
        out.append(f'<p>Judge (independent genre classifier): held-out accuracy '
                   f'<strong>{_e(_fmt(judge.get("heldout_accuracy")))}</strong> '
                   f'(n_train {_e(_fmt(judge.get("n_train")))}, n_test {_e(_fmt(judge.get("n_test")))})</p>')
    columns = [("success", "transfer success"), ("target_prob", "p(target)"),
               ("content_chroma_corr", "content (chroma)"), ("content_retrieval", "content retrieval"),
               ("content_retrieval_chance", "retrieval chance"), ("onset_f1", "onset F1 vs truth"),
               ("onset_sharpness", "onset sharpness"), ("truth_logmel_l1_db", "log-mel L1 to truth (dB)"),
               ("n", "n")]
    rows = [("baseline", name.replace("_", " "), None, e) for name, e in (metrics.get("baselines") or {}).items()]
    rows += [("transfer", method, e.get("strength"), e)
             for method, entries in (metrics.get("transfer") or {}).items() for e in entries]
    if rows:
        out.append('<table class="metrics"><thead><tr><th scope="col">method</th><th scope="col">strength</th>'
                   + "".join(f'<th scope="col">{_e(label)}</th>' for _, label in columns) + "</tr></thead><tbody>")
        for kind, name, strength, e in rows:
            cells = "".join(f"<td>{_e(_fmt(e.get(key), 'd' if key == 'n' else '.3f'))}</td>" for key, _ in columns)
            shown = "-" if strength is None else _fmt(strength, ".2f")
            out.append(f'<tr class="{kind}"><td>{_e(name)}</td><td>{_e(shown)}</td>{cells}</tr>')
        out.append("</tbody></table>")
        out.append('<p class="note">Baselines: identity (output = input) should score content ~1 and '
                   "success ~0; random target (a clip of the target genre) success ~judge accuracy and "
                   "content ~chance. Real transfer sits between. On the synthetic set, time is measured "
                   "against the ground truth (the same content rendered in the target genre at the source's "
                   "timing): onset F1 within 50 ms, onset sharpness (95th percentile over median of the onset "
                   "envelope), log-mel L1; the second draw (the target genre drawn again at the same timing) "
                   "shows what a perfect transfer still differs by.</p>")
    facts = []
    rec = metrics.get("reconstruction")
    if rec:
        onsets = (f", onset F1 against the source {_e(_fmt(rec['onset_f1']))}, onset sharpness "
                  f"{_e(_fmt(rec.get('onset_sharpness'), '.1f'))} (sources "
                  f"{_e(_fmt(rec.get('source_onset_sharpness'), '.1f'))})") if "onset_f1" in rec else ""
        facts.append(f"<li>Reconstruction: log-mel L1 {_e(_fmt(rec.get('logmel_l1_db'), '.2f'))} dB, "
                     f"spectral convergence {_e(_fmt(rec.get('spectral_convergence')))}{onsets}</li>")
    lat = metrics.get("latent")
    if lat:
        facts.append(f"<li>Latent: active units {_e(_fmt(lat.get('active_units'), 'd'))} / "
                     f"{_e(_fmt(lat.get('latent_dim'), 'd'))}, kNN genre accuracy "
                     f"{_e(_fmt(lat.get('knn_genre_accuracy')))}, silhouette {_e(_fmt(lat.get('silhouette')))}, "
                     f"KL {_e(_fmt(lat.get('kl_total'), '.2f'))}</li>")
    if facts:
        out += ["<ul>", *facts, "</ul>"]
    return out


def _clip_html(out_dir: Path, role: str, clip: Clip, where: str) -> list[str]:
    audio_rel = _inside(out_dir, clip.audio, f"{where}, {clip.label}: audio")
    facts = _audio_facts(out_dir / audio_rel)
    mime = AUDIO_TYPES.get(audio_rel.suffix.lower())
    if mime is None:
        raise ValueError(f"{where}, {clip.label}: audio {out_dir / audio_rel} has type "
                         f"{audio_rel.suffix or '(none)'}; browsers play {', '.join(AUDIO_TYPES)}")
    url, seconds = _url(audio_rel), facts["duration"]
    chans = {1: "mono", 2: "stereo"}.get(facts["channels"], f"{facts['channels']} channels")
    out = [f'<figure class="clip" data-role="{_e(role)}">', f"<figcaption>{_e(clip.label)}</figcaption>",
           f'<audio controls preload="metadata" src="{_e(url)}" data-duration="{seconds:.6f}" '
           f'data-sample-rate="{facts["sample_rate"]}" data-channels="{facts["channels"]}">'
           f'<a href="{_e(url)}">{_e(audio_rel.name)}</a></audio>',
           f'<p class="duration">duration <span class="seconds">{seconds:.2f}</span> s, '
           f'{facts["sample_rate"]} Hz, {_e(chans)} &middot; '
           f'<a href="{_e(url)}" download>{_e(audio_rel.name)}</a></p>']
    if clip.image is not None:
        image_rel = _inside(out_dir, clip.image, f"{where}, {clip.label}: image")
        _check_image(out_dir / image_rel)
        size = _png_size(out_dir / image_rel)
        dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
        out.append(f'<img src="{_e(_url(image_rel))}" alt="{_e("spectrogram: " + clip.label)}"{dims}>')
    if clip.metrics:
        out.append('<dl class="clip-metrics">')
        for key, value in clip.metrics.items():
            out.append(f"<dt>{_e(METRIC_LABELS.get(key, key))}</dt><dd>{_e(_fmt(value))}</dd>")
        out.append("</dl>")
    out.append("</figure>")
    return out


def _section_html(out_dir: Path, section: ModelSection, section_id: str, used: set) -> list[str]:
    out = [f'<section class="model" id="{_e(section_id)}">', f"<h2>{_e(section.name)}</h2>"]
    out += _info_html(section.info)
    out += _metrics_html(section.metrics)
    out.append(f"<h3>Transfers ({len(section.entries)})</h3>")
    if not section.entries:
        out.append('<p class="note">No transfers were written for this model.</p>')
    for entry in section.entries:
        entry_id = _slug(f"{section_id}-{entry.title}-{entry.target_genre}", used)
        where = f"{section.name} / {entry.title}"
        out += [f'<article class="transfer" id="{_e(entry_id)}" data-source-genre="{_e(entry.source_genre)}" '
                f'data-target-genre="{_e(entry.target_genre)}">',
                f'<h4>{_e(entry.title)}: <span class="genres">{_e(entry.source_genre)} &rarr; '
                f'{_e(entry.target_genre)}</span></h4>', '<div class="clips">']
        for role, clip in entry.clips():
            out += _clip_html(out_dir, role, clip, where)
        out += ["</div>", "</article>"]
    out.append("</section>")
    return out


def write_listening_page(out_dir, sections: Sequence[ModelSection] | ModelSection,
                         title: str = "Genre transfer: listening page", filename: str = PAGE_NAME) -> Path:
    """Write the static listening page ``out_dir/filename``.

    Parameters
    ----------
    out_dir : the folder the page goes into; every file the page names must lie inside it
        (paths may be absolute or relative to it; they are written as relative URLs)
    sections : one :class:`ModelSection` per model (a single section is accepted too)
    title : the page's title and top heading
    filename : page name inside ``out_dir``

    Returns
    -------
    Path of the page. It is written atomically, and only after every referenced file has
    been checked, so an error leaves a previous page as it was.

    Raises
    ------
    FileNotFoundError : a sound or image file does not exist (the message names it and its
        model, clip and role)
    ValueError : a file lies outside ``out_dir``, is not readable audio, or has a type
        browsers do not show
    """
    out_dir = Path(out_dir).resolve()
    if not out_dir.is_dir():
        raise FileNotFoundError(f"page folder not found: {out_dir}")
    if isinstance(sections, ModelSection):
        sections = [sections]
    used: set = set()
    ids = [_slug(f"model-{s.name}", used) for s in sections]
    body = []
    for section, section_id in zip(sections, ids):
        body += _section_html(out_dir, section, section_id, used)
    n_clips = sum(len(e.clips()) for s in sections for e in s.entries)
    head = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
            "<header>", f"<h1>{_e(title)}</h1>",
            f'<p class="note">{len(sections)} model(s), '
            f'{sum(len(s.entries) for s in sections)} transfer(s), {n_clips} clip(s). '
            "Spectrograms are log-mel in dB; numbers under a player come from the judge "
            "(an independent genre classifier) and from chroma (content) correlation with the source.</p>"]
    if len(sections) > 1:
        head += ["<nav>", "<ul>"] + [f'<li><a href="#{_e(i)}">{_e(s.name)}</a></li>'
                                     for s, i in zip(sections, ids)] + ["</ul>", "</nav>"]
    head.append("</header>")
    page = "\n".join(head + ["<main>"] + body + ["</main>", "</body>", "</html>"]) + "\n"
    return atomic_write(out_dir / filename, lambda f: f.write(page), mode="w", encoding="utf-8")


# --------------------------------------------------------------------------- from transfer's output
def render_spectrogram(audio_path, png_path, cfg=None, title: str = "") -> Path:
    """Draw the log-mel of a sound file (channels averaged) into a PNG with audio_io.plot_mel.

    Parameters
    ----------
    audio_path : sound file
    png_path : the picture to write (folders are created)
    cfg : prepare_data.AudioConfig for the mel (default ``AudioConfig()``); its sample rate
        is replaced by the file's, so the time axis and the mel bands are right at any rate
    title : axes title

    Returns
    -------
    Path written.
    """
    import numpy as np
    import soundfile as sf
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from audio_io import plot_mel
    from prepare_data import AudioConfig, mel_db, override

    audio, sr = sf.read(str(audio_path), dtype="float32", always_2d=True)      # (T, C)
    cfg = cfg or AudioConfig()
    fmax = cfg.fmax if cfg.fmax is not None and cfg.fmax <= sr / 2 else None
    cfg = override(cfg, sample_rate=int(sr), fmax=fmax)
    mono = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=1)))
    fig = Figure(figsize=(4.8, 2.6), layout="constrained")
    FigureCanvasAgg(fig)
    plot_mel(fig.subplots(), mel_db(mono, cfg).numpy(), cfg, title, kind="db")
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=80)
    return png_path


def read_manifest(path) -> list[dict]:
    """The rows of a manifest.csv, one per output file (the last row written for a file wins).

    Raises ValueError naming the file when a column of ``MANIFEST_FIELDS`` is missing.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and not set(MANIFEST_FIELDS) <= set(rows[0]):
        raise ValueError(f"{path}: columns {sorted(rows[0])} lack {sorted(set(MANIFEST_FIELDS) - set(rows[0]))}")
    latest = {}
    for row in rows:
        latest.pop(row["output_file"], None)
        latest[row["output_file"]] = row
    return list(latest.values())


def record_outputs(folder, rows: Sequence[Mapping]) -> Path:
    """List transfer outputs in ``folder/manifest.csv``: each row (``MANIFEST_FIELDS``)
    replaces an earlier row of the same output file; the file is rewritten atomically.

    Returns
    -------
    Path of the manifest
    """
    path = Path(folder) / MANIFEST_NAME
    names = {r["output_file"] for r in rows}
    kept = [r for r in read_manifest(path) if r["output_file"] not in names] if path.is_file() else []

    def write(f):
        w = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows([*kept, *rows])
    return atomic_write(path, write, mode="w", newline="", encoding="utf-8")


def _strength(row: dict, manifest: Path) -> float:
    try:
        return float(row["strength"])
    except ValueError:
        raise ValueError(f"{manifest}: strength {row['strength']!r} of {row['output_file']} "
                         "is not a number") from None


def _locate_source(raw: str, folder: Path, manifest: Path) -> Path:
    """The source file of a manifest row: as written (absolute or from the working folder),
    else relative to the manifest's folder."""
    for candidate in (Path(raw), folder / raw):
        if candidate.is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"{manifest}: source file not found: {raw}")


def _source_in(out_dir: Path, folder: Path, source: Path, claimed: dict) -> Path:
    """The source as a file inside ``out_dir``: itself, or a browser-playable WAV copy in
    ``folder/sources/`` (byte copy of a plain PCM WAV, else decoded and re-written).

    ``claimed`` maps copy names to the sources they hold in this call, so two sources with
    one name get two copies. The copy is made afresh on every call (it is cheap, and a
    copy kept by date could hold another file of that name).
    """
    import soundfile as sf

    if source.is_relative_to(out_dir) and source.suffix.lower() in AUDIO_TYPES:
        return source
    dest = folder / SOURCES_DIR / f"{source.stem}.wav"
    if claimed.setdefault(dest, source) != source:
        dest = dest.with_name(f"{source.stem}_{hashlib.sha1(str(source).encode()).hexdigest()[:8]}.wav")
        claimed[dest] = source
    try:
        plain_wav = source.suffix.lower() == ".wav" and sf.info(str(source)).subtype in PLAYABLE_WAV
    except Exception:  # noqa: BLE001 - decoded below with transfer's reader, which says why
        plain_wav = False
    dest.parent.mkdir(parents=True, exist_ok=True)
    if plain_wav:
        shutil.copyfile(source, dest)
    else:
        audio, sr = read_audio_file(source)
        save_wav(dest, audio, sr)
    return dest


def _spectrogram_for(audio: Path, folder: Path, cfg, title: str) -> Path:
    """A spectrogram PNG of ``audio`` in ``folder/spectrograms/`` (drawn afresh every time)."""
    rel = audio.relative_to(folder) if audio.is_relative_to(folder) else Path(audio.name)
    png = folder / SPECTROGRAMS_DIR / rel.with_suffix(".png").as_posix().replace("/", "__")
    return render_spectrogram(audio, png, cfg, title)


def _load_judge(judge):
    if judge is None or hasattr(judge, "predict_proba"):
        return judge
    from judge import GenreJudge
    return GenreJudge.from_file(judge, progress=False)


def _score(entry: TransferEntry, judge, content: bool) -> None:
    """Per-clip numbers: judge probabilities (with a judge), chroma similarity to the source,
    and each clip's onset sharpness with its onset F1 against the source (reconstruction) or
    the ground truth (outputs, when the entry has one)."""
    import numpy as np
    import soundfile as sf

    def load(clip):
        audio, sr = sf.read(str(clip.audio), dtype="float32", always_2d=True)
        return audio.mean(axis=1), int(sr)

    src_audio, src_sr = load(entry.source)
    truth = load(entry.truth) if entry.truth is not None else None
    genres = None
    if judge is not None:
        from SlicingDataLoading import GENRES
        genres = GENRES
    for role, clip in entry.clips():
        audio, sr = (src_audio, src_sr) if role == "source" else load(clip)
        scores = {}
        if judge is not None and entry.target_genre in genres and entry.source_genre in genres:
            try:
                p = np.asarray(judge.predict_proba([audio], sr))[0]
                scores.update(target_prob=float(p[genres.index(entry.target_genre)]),
                              source_prob=float(p[genres.index(entry.source_genre)]),
                              judge_genre=genres[int(np.argmax(p))])
            except ValueError:                          # too short for the judge: shown as n/a
                scores.update(target_prob=None, source_prob=None)
        if content and role != "source":
            from audio_metrics import content_similarity
            other = audio
            if sr != src_sr:
                import librosa
                other = librosa.resample(audio, orig_sr=sr, target_sr=src_sr)
            try:
                scores["content_similarity"] = float(content_similarity(src_audio, other, src_sr))
            except ValueError:                          # under a second: shown as n/a
                scores["content_similarity"] = None
        scores.update(_onset_scores(role, audio, sr, (src_audio, src_sr), truth))
        clip.metrics = {**scores, **clip.metrics}


def _onset_scores(role: str, audio, sr: int, source: tuple, truth: tuple | None) -> dict:
    """A clip's onset sharpness, and its onset F1 against the source (a reconstruction) or
    the ground truth (an output, when there is one)."""
    import librosa
    from audio_metrics import onset_envelope, onset_sharpness, time_metrics

    scores = {"onset_sharpness": onset_sharpness(onset_envelope(audio, sr))}
    reference, key = {"reconstruction": (source, "onset_f1_source"), "output": (truth, "onset_f1_truth")}.get(
        role, (None, None))
    if reference is not None:
        ref_audio, ref_sr = reference
        other = audio if sr == ref_sr else librosa.resample(audio, orig_sr=sr, target_sr=ref_sr)
        scores[key] = time_metrics(ref_audio, other, ref_sr)["onset_f1"]
    return scores


def _group_rows(folder: Path, manifest: Path) -> dict[tuple, dict]:
    """Manifest rows grouped by (source file, source genre, target genre), in the order first
    seen: {"recon": the strength-0 output or None, "truth": the ground truth (method
    ``TRUTH_METHOD``) or None, "outputs": [(method rank, strength, method, output path)]}.
    Every output must exist."""
    groups: dict[tuple, dict] = {}
    method_order: dict[str, int] = {}
    for row in read_manifest(manifest):
        output = folder / row["output_file"]
        if not output.is_file():
            raise FileNotFoundError(f"{manifest}: output file not found: {output}")
        key = (row["source_file"], row["source_genre"], row["target_genre"])
        group = groups.setdefault(key, {"recon": None, "truth": None, "outputs": []})
        strength = _strength(row, manifest)
        if row["method"] == TRUTH_METHOD:
            group["truth"] = output
        elif strength == 0.0:
            group["recon"] = output
        else:
            method_order.setdefault(row["method"], len(method_order))
            group["outputs"].append((method_order[row["method"]], strength, row["method"], output))
    return groups


def section_from_folder(folder, out_dir=None, *, name: str | None = None, info: Mapping | None = None,
                        judge=None, content: bool = True, spectrograms: bool = True, cfg=None) -> ModelSection:
    """A page section from what ``transfer.py`` wrote into ``folder``.

    Reads ``folder/manifest.csv`` (one row per output; the last row of a re-written output
    wins) and ``folder/metrics.json`` when present. Rows are grouped by (source file,
    source genre, target genre), in the order first seen; a row with strength 0 is that
    group's reconstruction; the others are its outputs, by method (as first seen) and
    strength.

    Parameters
    ----------
    folder : a transfer output folder (holds manifest.csv)
    out_dir : the page's folder (default ``folder``); must contain ``folder``. Source clips
        outside it are copied to ``folder/sources/`` as WAV
    name : heading (default: metrics.json's model name, else the folder's name)
    info : model details (family, preset, checkpoint, ...) used where metrics.json's
        ``model`` entry has none
    judge : evaluation.GenreJudge, or the path of a saved one, for per-clip judge
        probabilities; None for none
    content : add each output's chroma similarity to its source (evaluation.content_similarity)
    spectrograms : draw a spectrogram for every clip into ``folder/spectrograms/``;
        otherwise outputs use transfer's before/after figure ``<output stem>.png`` when it
        exists
    cfg : prepare_data.AudioConfig for the spectrograms (default ``AudioConfig()``)

    Returns
    -------
    ModelSection with absolute paths inside ``out_dir``.

    Raises
    ------
    FileNotFoundError : no manifest, or a source or output file it names is missing
    ValueError : ``folder`` is not inside ``out_dir``, or the manifest is malformed
    """
    folder = Path(folder).resolve()
    out_dir = folder if out_dir is None else Path(out_dir).resolve()
    if not folder.is_relative_to(out_dir):
        raise ValueError(f"transfer folder {folder} is not inside the page folder {out_dir}")
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {folder} (transfer.py writes it)")
    metrics = None
    if (folder / METRICS_NAME).is_file():
        metrics = json.loads((folder / METRICS_NAME).read_text())
    details = dict((metrics or {}).get("model") or {})
    for key, value in (info or {}).items():
        details.setdefault(key, value)
    model_name = details.pop("name", None)
    title = name or model_name or folder.name
    judge = _load_judge(judge)

    groups = _group_rows(folder, manifest)

    def clip(label: str, audio: Path) -> Clip:
        image = None
        if spectrograms:
            image = _spectrogram_for(audio, folder, cfg, label)
        elif audio.with_suffix(".png").is_file():
            image = audio.with_suffix(".png")
        return Clip(label, audio, image)

    entries, claimed = [], {}
    for (source_file, source_genre, target_genre), group in groups.items():
        source = _source_in(out_dir, folder, _locate_source(source_file, folder, manifest), claimed)
        entry = TransferEntry(
            title=Path(source_file).name, source_genre=source_genre, target_genre=target_genre,
            source=clip(f"source ({source_genre})", source),
            reconstruction=clip("reconstruction", group["recon"]) if group["recon"] else None,
            outputs=[clip(f"{method} to {target_genre}, strength {strength:g}", out)
                     for _, strength, method, out in sorted(group["outputs"], key=lambda t: t[:2])],
            truth=clip(f"ground truth: the same content in {target_genre}", group["truth"]) if group["truth"] else None)
        if judge is not None or content:
            _score(entry, judge, content)
        entries.append(entry)
    return ModelSection(title, details, metrics, entries)


def write_report(out_dir="audio_results", info: Mapping | None = None, judge=None, content: bool = True,
                 spectrograms: bool = True, cfg=None, title: str = "Genre transfer: listening page") -> Path:
    """Write ``out_dir/index.html`` for every transfer folder in ``out_dir``.

    A transfer folder is ``out_dir`` itself or a direct subfolder (``audio_results/<family>``
    as the demo writes) that holds a manifest.csv; each becomes one section
    (:func:`section_from_folder`), in name order, ``out_dir`` first.

    Parameters
    ----------
    out_dir : the results folder
    info, judge, content, spectrograms, cfg : as :func:`section_from_folder`, for every section

    Returns
    -------
    Path of the page.

    Raises
    ------
    FileNotFoundError : no manifest.csv in ``out_dir`` or its subfolders, or a file it names
        is missing
    """
    out_dir = Path(out_dir).resolve()
    folders = [d for d in [out_dir, *sorted(p for p in out_dir.iterdir() if p.is_dir())]
               if (d / MANIFEST_NAME).is_file()] if out_dir.is_dir() else []
    if not folders:
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {out_dir} or its subfolders: nothing to list "
                                "(transfer.py writes one beside its outputs)")
    judge = _load_judge(judge)
    sections = [section_from_folder(d, out_dir, info=info, judge=judge, content=content,
                                    spectrograms=spectrograms, cfg=cfg) for d in folders]
    return write_listening_page(out_dir, sections, title)
