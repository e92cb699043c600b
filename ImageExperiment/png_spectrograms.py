"""Spectrogram pictures: the Kaggle GTZAN ``images_original`` PNGs, read as log-mel images.

Kaggle's GTZAN ships one picture per clip, ``<data>/images_original/<genre>/<genre>NNNNN.png``
(``blues.00042.wav`` -> ``blues00042.png``): a 432 x 288 RGBA matplotlib figure (6 x 4
inches at 72 dpi) whose plot area holds the mel spectrogram of the whole clip in colour,
framed by a plain margin. Reading one (:func:`load_png`):

1. crop the plot: the bounding box of the pixels that differ from the margin colour
   (the corner pixel), so the crop follows the picture, not a typed box;
2. colour -> level: each pixel becomes the position in [0, 1] of the nearest colour of
   the colormap it was drawn with (``cmap``), then [-1, 1]; row 0 becomes the lowest band;
3. scale: the rows are resampled to ``n_mels``.

:class:`PNGSegments` then cuts each picture into the same segments the waveform loader
cuts the audio into (``AudioConfig.segment_seconds``, ``n_segments``, ``start/end_seconds``,
by the picture's pixels per second), resamples each window to the segment's natural frame
count and pads it with silence to ``AudioConfig.frames``, exactly as the log-mel front end
does. A model trained on pictures therefore reads computed log-mels of the same scale, and
genre transfer (which computes log-mels from audio) serves it unchanged.

The synthetic GTZAN has no pictures: :func:`render_images_original` draws them from its
audio in the same style (:func:`render_png`): the project's log-mel in dB, colour scale
fixed to the AudioConfig's [db_min, db_max], nearest-neighbour pixels, the axes switched
off inside matplotlib's default plot box. Kaggle's pictures were drawn with a colour scale
relative to each clip's maximum and with their own colormap: pass that colormap as
``cmap``; their levels are then relative to each picture, not absolute dB.

Public API
----------
png_name(record) / png_path(root, record)   where a clip's picture lives
render_png(audio, cfg, path, cmap)           one picture, 432 x 288 RGBA
render_images_original(root, cfg, cmap)      pictures for every clip of a GTZAN folder (skips existing)
plot_box(image)                              (top, bottom, left, right) of the plot area
load_png(path, n_mels, cmap)                 picture -> float32 [n_mels, W] in [-1, 1]
PNGSegments(records, audio, root, cmap)      torch Dataset of (picture window [1, M, F], genre)
png_datasets(root, audio, split, seed, cmap) (train, valid, info) like prepare_enhanced_dataset
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prepare_data import AudioConfig, fit_frames, load_audio, mel_db

FIGSIZE = (6.0, 4.0)                      # inches: 432 x 288 pixels at DPI
DPI = 72
PLOT_BOX = (0.125, 0.11, 0.775, 0.77)     # matplotlib's default subplot: left, bottom, width, height
DEFAULT_CMAP = "magma"
KAGGLE_CLIP_SECONDS = 30.0                # length of a GTZAN clip, when its audio is not at hand


def png_name(record) -> str:
    """Kaggle's picture name of a clip: ``blues.00042`` -> ``blues00042.png``."""
    return record.name.replace(".", "") + ".png"


def png_path(root, record) -> Path:
    """``<root>/images_original/<genre>/<genre>NNNNN.png`` of a FileRecord."""
    return Path(root) / "images_original" / record.genre / png_name(record)


# --------------------------------------------------------------------------- rendering
def render_png(audio, cfg: AudioConfig, path, cmap: str = DEFAULT_CMAP) -> Path:
    """Draw the log-mel of mono ``audio`` [T] (at ``cfg.sample_rate``) as a GTZAN-style picture.

    Returns the path of the 432 x 288 RGBA PNG.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mel = mel_db(torch.as_tensor(np.asarray(audio, dtype=np.float32)), cfg).numpy()   # (M, F) dB
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(PLOT_BOX)
    ax.imshow(mel, origin="lower", aspect="auto", cmap=cmap, vmin=cfg.db_min, vmax=cfg.db_max,
              interpolation="nearest")
    ax.set_axis_off()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def render_images_original(root, cfg: AudioConfig | None = None, cmap: str = DEFAULT_CMAP,
                           overwrite: bool = False) -> list[Path]:
    """Pictures for every clip under ``<root>/genres_original`` that has none (all with
    ``overwrite``); unreadable clips are skipped with a warning. Returns the paths written."""
    from SlicingDataLoading import BadAudioError, discover_files

    cfg = cfg or AudioConfig()
    written = []
    for rec in discover_files(root):
        target = png_path(root, rec)
        if target.exists() and not overwrite:
            continue
        try:
            audio = load_audio(rec.path, cfg)
        except BadAudioError as err:
            warnings.warn(f"no picture for {rec.path}: {err}", stacklevel=2)
            continue
        written.append(render_png(audio, cfg, target, cmap))
    return written


# --------------------------------------------------------------------------- reading
def plot_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixel bounds of the plot in an [H, W, C] picture: the
    bounding box of the pixels that differ from the corner (margin) colour."""
    differs = np.abs(image - image[0, 0]).max(axis=-1) > 1e-3                 # (H, W)
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if len(rows) < 2 or len(cols) < 2:
        raise ValueError(f"no plot found in a {image.shape[1]} x {image.shape[0]} picture: every "
                         f"pixel has the margin colour")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _colormap_levels(rgb: np.ndarray, cmap: str) -> np.ndarray:
    """[h, w, 3] colours -> [h, w] positions in [0, 1] of the nearest colour of ``cmap``."""
    import matplotlib
    lut = torch.as_tensor(matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3], dtype=torch.float32)
    pixels = torch.as_tensor(rgb.reshape(-1, 3), dtype=torch.float32)
    nearest = torch.cat([torch.cdist(chunk, lut).argmin(dim=1) for chunk in pixels.split(16384)])
    return (nearest.float() / 255.0).reshape(rgb.shape[:2]).numpy()


def load_png(path, n_mels: int, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """A spectrogram picture as a normalised log-mel: float32 [n_mels, W] in [-1, 1],
    row 0 the lowest band, W the plot's width in pixels."""
    import matplotlib.image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectrogram picture not found: {path}")
    image = matplotlib.image.imread(str(path))[..., :3].astype(np.float32)    # (H, W, 3) in [0, 1]
    top, bottom, left, right = plot_box(image)
    levels = _colormap_levels(image[top:bottom, left:right], cmap)[::-1].copy()  # (h, w), low band first
    rows = F.interpolate(torch.from_numpy(levels)[None, None], size=(n_mels, levels.shape[1]),
                         mode="bilinear", align_corners=False)[0, 0]
    return (2.0 * rows - 1.0).clamp(-1.0, 1.0).numpy()


class PNGSegments(torch.utils.data.Dataset):
    """Windows of spectrogram pictures, cut and scaled like the log-mel of the audio segments.

    Parameters
    ----------
    records : list[FileRecord] (the clips of one split)
    audio : AudioConfig: n_mels, segment length and placement, frames
    root : GTZAN folder holding ``images_original``
    cmap : colormap the pictures were drawn with

    ``dataset[i]`` -> (float32 tensor [1, n_mels, audio.frames] in [-1, 1], genre index).
    A clip's length comes from its audio file (30 s when the file is missing); a clip
    without a picture, or whose picture cannot be read, is skipped with a warning.
    """

    def __init__(self, records, audio: AudioConfig, root, cmap: str = DEFAULT_CMAP):
        import soundfile as sf

        from SlicingDataLoading import segment_starts

        windows, labels, self.files = [], [], []
        for rec in records:
            try:
                picture = load_png(png_path(root, rec), audio.n_mels, cmap)            # (M, W)
            except (OSError, ValueError) as err:
                warnings.warn(f"skipping {rec.name}: {err}", stacklevel=2)
                continue
            try:
                seconds = sf.info(str(rec.path)).duration
            except (OSError, RuntimeError):
                seconds = KAGGLE_CLIP_SECONDS
            per_second = picture.shape[1] / seconds                                    # pixels per second
            width = max(1, int(round(audio.segment_seconds * per_second)))
            starts = segment_starts(picture.shape[1], per_second, audio.segment_seconds, audio.n_segments,
                                    audio.start_seconds, audio.end_seconds)
            for s in starts:
                window = torch.from_numpy(picture[:, s:s + width].copy())[None, None]  # (1, 1, M, w)
                window = F.interpolate(window, size=(audio.n_mels, audio.natural_frames), mode="bilinear",
                                       align_corners=False)[0]
                windows.append(fit_frames(window, audio.frames))                        # (1, M, F)
                labels.append(rec.label)
            self.files.append(rec)
        if not windows:
            raise ValueError(f"no readable spectrogram pictures for the {len(records)} clips given "
                             f"under {Path(root) / 'images_original'}")
        self.windows = torch.stack(windows)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int):
        return self.windows[i], int(self.labels[i])


def png_datasets(root, audio: AudioConfig, split: str = "auto", seed: int = 0, cmap: str = DEFAULT_CMAP,
                 render_missing: bool = True):
    """Training and validation pictures on the same file-level split as the audio loaders.

    Parameters
    ----------
    root : GTZAN folder
    audio : AudioConfig of the model (see :class:`PNGSegments`)
    split, seed : see :func:`SlicingDataLoading.split_files`
    cmap : colormap of the pictures
    render_missing : on a synthetic GTZAN (``synthetic_manifest.csv`` present) draw the
        pictures that are missing with :func:`render_images_original`

    Returns
    -------
    (train, valid, info), as ``prepare_enhanced_dataset(..., datasets_only=True)``.

    Raises FileNotFoundError when a real GTZAN folder has no ``images_original``.
    """
    from SlicingDataLoading import GENRES, MANIFEST, DataLoad

    loader = DataLoad(root, split_mode=split, seed=seed)
    root = loader.data_root
    if render_missing and (root / MANIFEST).exists():
        render_images_original(root, audio, cmap)
    if not (root / "images_original").is_dir():
        raise FileNotFoundError(f"no images_original folder in {root}: Kaggle's GTZAN ships one; for "
                                f"another folder draw them with ImageExperiment.png_spectrograms."
                                f"render_images_original")
    files = loader.splits()
    sets = {name: PNGSegments(files[name], audio, root, cmap) for name in ("train", "valid")}
    info = {"genres": list(GENRES), "splits": {n: [r.name for r in s.files] for n, s in sets.items()},
            "summary": {"data_path": str(root), "split": split, "seed": seed, "input": "png",
                        "files": {n: len(s.files) for n, s in sets.items()},
                        "segments": {n: len(s) for n, s in sets.items()}}}
    return sets["train"], sets["valid"], info
