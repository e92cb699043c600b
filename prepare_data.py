"""Audio configuration and the log-mel front-end.

One :class:`AudioConfig` holds every audio parameter. It is saved inside every
checkpoint and every module reads it from there, so no sample rate or frame count is
ever typed twice. The log-mel is computed in torch on the tensor's device and mapped
from a *fixed* dB range to [-1, 1] (never per-clip min/max), so the inverse is exact and
a mel from one clip means the same as a mel from another. Padding is silence (-1).

Public API
----------
AudioConfig                       every audio parameter, presets ``demo`` and ``full``
load_audio(path, cfg)             decode any file to mono float32 at cfg.sample_rate
mel_power(audio, cfg)             [..., T] -> [..., n_mels, frames] power mel
mel_db(audio, cfg)                [..., T] -> [..., n_mels, frames] dB, floored at db_min
enhanced_audio_to_mel(audio, cfg) [B, T] -> [B, 1, n_mels, n_frames] in [-1, 1]
MelFrontEnd(cfg)                  the same as an nn.Module (moves with .to(device))
db_to_norm / norm_to_db           the fixed dB <-> [-1, 1] map and its exact inverse
prepare_enhanced_dataset(...)     train / validation DataLoaders on the file-level split
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio

from cli import InputError
from SlicingDataLoading import GENRES, GTZAN_SR, BuildReport, DataLoad, GTZANSegments, decode_audio, require_files


# --------------------------------------------------------------------------- configs
def _check_type(name: str, value, annotation) -> object:
    """Return ``value`` coerced to ``annotation`` or raise a TypeError naming it."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(name, value, inner[0])
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"config key {name!r}: expected a sequence, got {value!r}")
        return origin(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise TypeError(f"config key {name!r}: expected bool, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"config key {name!r}: expected int, got {value!r}")
        return int(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"config key {name!r}: expected float, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise TypeError(f"config key {name!r}: expected str, got {value!r}")
        return value
    return value


def override(cfg, **changes):
    """Return a copy of dataclass ``cfg`` with ``changes`` applied.

    Unknown keys and wrongly typed values are an error that names them, so a typo in a
    preset or on the command line never passes silently.
    """
    hints = typing.get_type_hints(type(cfg))
    known = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise KeyError(f"unknown {type(cfg).__name__} key(s) {unknown}; known keys: {sorted(known)}")
    checked = {k: _check_type(k, v, hints[k]) for k, v in changes.items()}
    return dataclasses.replace(cfg, **checked)


def config_from_dict(cls, data: dict):
    """Rebuild dataclass ``cls`` from ``data`` (as written by ``dataclasses.asdict``)."""
    return override(cls(), **dict(data))


@dataclass(frozen=True)
class AudioConfig:
    """Every audio parameter in one place.

    The mel front-end, the loader's slicing, the vocoder and the evaluation all read
    these fields; a checkpoint stores ``dataclasses.asdict(cfg)``.
    """

    sample_rate: int = GTZAN_SR
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None          # None: sample_rate / 2
    db_min: float = -60.0              # maps to -1 (silence, and the padding value)
    db_max: float = 40.0               # maps to +1 (a full-scale sine peaks near 41 dB)
    segment_seconds: float = 5.0       # length of one training segment
    n_segments: int = 5                # segments per clip ...
    start_seconds: float = 2.5         # ... evenly spaced between these two times
    end_seconds: float = 27.5
    n_frames: int | None = 512         # mel frames per segment (pad with -1 / crop); None: natural

    PRESETS: typing.ClassVar[dict] = {
        # 1 x 128 x 512 log-mel of a 5 s segment (216 frames, padded with silence), as the seed.
        "full": {},
        # CPU in minutes: 3 s segments (128 frames) -> 1 x 128 x 128. All 128 mel bands are
        # kept: 64 bands cannot tell neighbouring semitones apart below about 1 kHz.
        "demo": {"segment_seconds": 2.97, "n_segments": 3,
                 "start_seconds": 0.0, "end_seconds": 30.0, "n_frames": 128},
    }
    PRESETS["tiny"] = PRESETS["demo"]     # the tests' models read the demo's mels

    def __post_init__(self):
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"AudioConfig: sample_rate, n_fft, hop_length, n_mels must be > 0: {self}")
        if not self.db_min < self.db_max:
            raise ValueError(f"AudioConfig: db_min ({self.db_min}) must be below db_max ({self.db_max})")
        if self.f_max <= self.fmin:
            raise ValueError(f"AudioConfig: fmax ({self.f_max}) must exceed fmin ({self.fmin})")

    @classmethod
    def preset(cls, name: str, **changes) -> "AudioConfig":
        """The named preset (``tiny``, ``demo`` or ``full``) with optional overrides."""
        if name not in cls.PRESETS:
            raise KeyError(f"unknown audio preset {name!r}; choose from {sorted(cls.PRESETS)}")
        return override(override(cls(), **cls.PRESETS[name]), **changes)

    @property
    def f_max(self) -> float:
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def natural_frames(self) -> int:
        """Frames the centred STFT yields for one segment."""
        return self.segment_samples // self.hop_length + 1

    @property
    def frames(self) -> int:
        """Frames of the model input: ``n_frames`` if set, else the natural count."""
        return self.n_frames if self.n_frames is not None else self.natural_frames

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AudioConfig":
        return config_from_dict(cls, data)

    def loader_kwargs(self) -> dict:
        """Slicing arguments for :mod:`SlicingDataLoading`."""
        return dict(sr=self.sample_rate, duration=self.segment_seconds, n_segments=self.n_segments,
                    start=self.start_seconds, end=self.end_seconds)


# --------------------------------------------------------------------------- audio
def load_audio(path, cfg: AudioConfig | None = None, sr: int | None = None) -> np.ndarray:
    """Decode any audio file to mono float32 at ``cfg.sample_rate`` (or ``sr``).

    Returns
    -------
    np.ndarray, float32 [T]

    Raises ``SlicingDataLoading.BadAudioError`` naming the file for unreadable, empty,
    silent or non-finite audio.
    """
    rate = sr if sr is not None else (cfg or AudioConfig()).sample_rate
    return decode_audio(Path(path), rate)


# --------------------------------------------------------------------------- mel
def build_mel_transform(cfg: AudioConfig) -> torchaudio.transforms.MelSpectrogram:
    """torchaudio's MelSpectrogram on ``cfg``, with librosa's defaults (slaney mel scale and
    area normalisation, centred frames) so it agrees with librosa.feature.melspectrogram."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        f_min=cfg.fmin, f_max=cfg.f_max, n_mels=cfg.n_mels, power=2.0,
        norm="slaney", mel_scale="slaney", center=True, pad_mode="constant")


@functools.lru_cache(maxsize=16)
def _mel_transform(cfg: AudioConfig, device: str) -> torchaudio.transforms.MelSpectrogram:
    return build_mel_transform(cfg).to(device)


def mel_filterbank(cfg: AudioConfig, device="cpu") -> torch.Tensor:
    """The mel filterbank, [n_mels, n_fft // 2 + 1] (power spectrum -> mel power)."""
    return _mel_transform(cfg, str(torch.device(device))).mel_scale.fb.T


def mel_power(audio: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Power mel spectrogram. ``audio`` [..., T] -> [..., n_mels, T // hop + 1]."""
    audio = torch.as_tensor(audio, dtype=torch.float32)
    return _mel_transform(cfg, str(audio.device))(audio)


def power_to_db(power: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """10 log10(power), floored at ``cfg.db_min``."""
    return 10.0 * torch.log10(power.clamp_min(10.0 ** (cfg.db_min / 10.0)))


def db_to_norm(db: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Fixed map [db_min, db_max] -> [-1, 1] (values outside are clipped)."""
    return (2.0 * (db - cfg.db_min) / (cfg.db_max - cfg.db_min) - 1.0).clamp(-1.0, 1.0)


def norm_to_db(norm: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Exact inverse of :func:`db_to_norm` on [-1, 1]."""
    return (norm.clamp(-1.0, 1.0) + 1.0) * 0.5 * (cfg.db_max - cfg.db_min) + cfg.db_min


def mel_db(audio: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Log-mel in dB. ``audio`` [..., T] -> [..., n_mels, frames]."""
    return power_to_db(mel_power(audio, cfg), cfg)


def fit_frames(mel: torch.Tensor, n_frames: int | None, pad_value: float = -1.0) -> torch.Tensor:
    """Crop or pad (with ``pad_value``, silence) the last axis to ``n_frames``."""
    if n_frames is None or mel.shape[-1] == n_frames:
        return mel
    if mel.shape[-1] > n_frames:
        return mel[..., :n_frames]
    return torch.nn.functional.pad(mel, (0, n_frames - mel.shape[-1]), value=pad_value)


def enhanced_audio_to_mel(audio, cfg: AudioConfig | None = None, fit: bool = True) -> torch.Tensor:
    """Normalised log-mel, the mel VAE's input.

    Parameters
    ----------
    audio : Tensor or ndarray, [T] or [B, T]
    cfg : AudioConfig (default ``AudioConfig()``)
    fit : crop / pad with silence to ``cfg.frames`` (else keep the natural frame count)

    Returns
    -------
    Tensor [B, 1, n_mels, frames] in [-1, 1], on ``audio``'s device.
    """
    cfg = cfg if cfg is not None else AudioConfig()
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    mel = db_to_norm(mel_db(audio, cfg), cfg).unsqueeze(1)   # (B, 1, M, F)
    return fit_frames(mel, cfg.frames) if fit else mel


class MelFrontEnd(torch.nn.Module):
    """:func:`enhanced_audio_to_mel` as a module: waveform batch [B, T] -> [B, 1, M, F]."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = build_mel_transform(cfg)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=audio.device.type, enabled=False):
            mel = db_to_norm(power_to_db(self.mel(audio.float()), self.cfg), self.cfg)
        return fit_frames(mel.unsqueeze(1), self.cfg.frames)


# --------------------------------------------------------------------------- datasets
class _MelCollate:
    """Stacks waveform segments and turns them into normalised log-mels [B, 1, M, F]."""

    def __init__(self, cfg: AudioConfig):
        self.cfg = cfg

    def __call__(self, batch):
        wave = torch.stack([torch.as_tensor(b[0]) for b in batch])
        labels = torch.as_tensor([int(b[1]) for b in batch])
        return enhanced_audio_to_mel(wave, self.cfg), labels


def prepare_enhanced_dataset(data_path, cfg: AudioConfig | None = None, batch_size: int = 16,
                             split: str = "auto", seed: int = 0, num_workers: int = 0,
                             output: str = "mel", cache_dir=None, datasets_only: bool = False):
    """Train and validation data on the file-level split of a GTZAN folder.

    Parameters
    ----------
    data_path : GTZAN folder (Kaggle layout, real or synthetic)
    cfg : AudioConfig (sample rate and slicing); default ``AudioConfig()``
    split : "auto" | "filtered" | "random" | "content" (see SlicingDataLoading.split_files)
    output : "mel" -> batches of (log-mel [B, 1, n_mels, frames] in [-1, 1], genre [B]);
             "wave" -> (waveform segments [B, T], genre [B]) for models that compute their
             own front-end on the device (the trainer does this)
    datasets_only : return the two GTZANSegments datasets instead of DataLoaders

    Returns
    -------
    (train, valid, info): DataLoaders (or datasets) and a dict with ``genres``, the file
    names of each split and ``summary`` (file counts and the skipped-file report).
    """
    cfg = cfg or AudioConfig()
    if output not in ("mel", "wave"):
        raise ValueError(f"output must be 'mel' or 'wave', got {output!r}")
    loader = DataLoad(data_path, cache_dir=cache_dir, split_mode=split, seed=seed)
    report = BuildReport()
    files = require_files(loader.splits(report), data_path, report, needed=("train", "valid"))
    sets = {name: GTZANSegments(files[name], **cfg.loader_kwargs(), cache=loader.cache, report=report)
            for name in ("train", "valid")}
    report.log()
    for name, ds in sets.items():
        if len(ds) == 0:
            raise InputError(f"no usable {name} segments in {data_path}: {report.summary()}")
    info = {
        "genres": list(GENRES),
        "splits": {name: [f.name for f in recs] for name, recs in files.items()},
        "summary": {"data_path": str(data_path), "split": split, "seed": seed,
                    "files": {name: len(recs) for name, recs in files.items()},
                    "segments": {name: len(ds) for name, ds in sets.items()},
                    "skipped": [f"{f}: {r}" for f, r, _ in report.skipped]},
    }
    if datasets_only:
        return sets["train"], sets["valid"], info
    collate = _MelCollate(cfg) if output == "mel" else None
    make = lambda ds, shuffle: torch.utils.data.DataLoader(  # noqa: E731
        ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, collate_fn=collate,
        generator=torch.Generator().manual_seed(seed), drop_last=False)
    return make(sets["train"], True), make(sets["valid"], False), info
