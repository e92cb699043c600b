"""Data loading for the template pipelines: one GTZAN folder, one file-level split.

Both templates read the same thing: fixed-length waveform segments and their genre
index, from the file-level split of :mod:`SlicingDataLoading` (decoded once into the
on-disk cache). The image template turns segments into log-mels on the device, in its
model's ``prepare``, so the data layer is the same for waveforms and images.

    audio, _, _ = trainer.configs("template-mel", "demo")
    train, valid, info = load_segments("Data/synthetic", audio)

Public API
----------
ensure_data(path, per_genre, ...)   the folder; the synthetic GTZAN is written when missing
load_segments(path, audio, ...)     (train, valid, info): datasets of (segment [T], genre)
"""
from __future__ import annotations

from pathlib import Path

import trainer
from prepare_data import AudioConfig, prepare_enhanced_dataset


def ensure_data(path, per_genre: int = 30, duration: float = 10.0) -> Path:
    """``path`` as a Path; a folder named ``synthetic`` is generated when it is missing.

    Delegates to :func:`trainer.ensure_data` (the same data the demo and trainer use).
    """
    return trainer.ensure_data(str(path), per_genre, duration)


def load_segments(path, audio: AudioConfig, split: str = "auto", seed: int = 0):
    """Training and validation segments of a GTZAN folder.

    Parameters
    ----------
    path : GTZAN folder (Kaggle layout, real or synthetic)
    audio : sample rate and slicing (segment length, segments per clip)
    split, seed : see :func:`SlicingDataLoading.split_files`

    Returns
    -------
    (train, valid, info): two ``GTZANSegments`` (items: float32 segment [T], genre index)
    and a dict with ``genres``, the file names of each split and a ``summary``.
    """
    return prepare_enhanced_dataset(path, audio, split=split, seed=seed, datasets_only=True)
