"""Evaluation: the yardstick every model is measured with, and the scoring of a checkpoint.

Nothing here knows how a model is built: measures take numpy audio (mono [T]) or latent
arrays, and :func:`evaluate_model` drives any :class:`transfer.GenreTransfer`, so every
family and experiment is scored the same way and reports one ``metrics.json``.

- judge: :class:`GenreJudge`, a genre classifier independent of the VAEs (librosa summary
  features -> StandardScaler -> logistic regression) trained on original training clips;
- transfer success: the share of outputs the judge assigns to the target genre;
- content: :func:`content_similarity`, the chroma-CENS correlation of source and output,
  maximised over tempo ratios in [1/3, 3]; on the synthetic set :func:`content_retrieval`,
  the share of outputs whose nearest target-genre rendering is their own content;
- reconstruction: log-mel L1 in dB and spectral convergence;
- latent: kNN genre accuracy and silhouette of mu, active units, KL per dimension;
- baselines: identity (content ~ 1, success ~ 0) and a random clip of the target genre
  (success ~ judge accuracy, content ~ chance); real transfer sits between.
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import librosa
import numpy as np
import torch
from tqdm.auto import tqdm

from audio_io import resample
from cli import InputError, one_line
from prepare_data import AudioConfig, mel_db
from SlicingDataLoading import GENRES, BuildReport, atomic_write, clip_reader
from vae_parts import GaussianBottleneck

SCHEMA_VERSION = 1
MIN_SECONDS = 1.0                # shortest clip the judge and the chroma accept
N_FFT, HOP = 2048, 512           # the judge's and the chroma's analysis frames (at the judge's sr)
N_MFCC = 20
TEMPO_BANDS_BPM = np.geomspace(40.0, 320.0, 10)   # edges of the 9 tempogram bands
TEMPOGRAM_WIN = 256              # onset frames (~6 s at 22.05 kHz / 512)
SINGLE_FEATURES = ("tempo", "rms", "centroid")
CENS_DOWNSAMPLE = 4              # keep every 4th CENS frame (~10.8 frames/s): CENS is smoothed over ~1 s
CONTENT_MAX_STRETCH = 3.0        # tempo ratios searched by content_similarity: [1/3, 3]
STRETCH_STEPS = 121
MIN_OVERLAP_SECONDS = 2.0        # a stretch must overlap the other clip this long
_FEATURE_VERSION = 1             # bump when judge_features changes: saved judges check it


# --------------------------------------------------------------------------- input checks
def _as_audio(x, name: str, min_seconds: float = 0.0, sr: int | None = None) -> np.ndarray:
    """``x`` as a finite mono float32 [T], or a ValueError naming ``name``."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected mono audio of shape [T], got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty audio")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: audio holds NaN or inf")
    if sr is not None and a.size < min_seconds * sr:
        raise ValueError(f"{name}: {a.size} samples ({a.size / sr:.2f} s) is shorter than "
                         f"{min_seconds} s at sr={sr}")
    return a


def _as_audio_list(audios, name: str, min_seconds: float = 0.0, sr: int | None = None) -> list:
    """A list of [T] arrays from a list of arrays or a 2-D array [N, T]."""
    if isinstance(audios, np.ndarray) and audios.ndim == 2:
        audios = list(audios)
    if isinstance(audios, (np.ndarray, torch.Tensor)) or not isinstance(audios, Sequence):
        raise ValueError(f"{name}: expected a list of [T] arrays or an array [N, T], "
                         f"got {type(audios).__name__} {getattr(audios, 'shape', '')}")
    if len(audios) == 0:
        raise ValueError(f"{name}: no clips")
    return [_as_audio(a, f"{name}[{i}]", min_seconds, sr) for i, a in enumerate(audios)]


def _check_sr(sr) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sample rate must be a positive int, got {sr!r}")
    return int(sr)


def genre_index(genre) -> int:
    """Index into ``GENRES`` of a genre name or index; ValueError naming anything else."""
    if isinstance(genre, (int, np.integer)) and not isinstance(genre, bool):
        if 0 <= int(genre) < len(GENRES):
            return int(genre)
    elif isinstance(genre, str) and genre in GENRES:
        return GENRES.index(genre)
    raise ValueError(f"unknown genre {genre!r}; expected a name in {GENRES} or an index 0..{len(GENRES) - 1}")


def _genre_indices(genres, name: str) -> np.ndarray:
    genres = list(genres) if not isinstance(genres, str) else [genres]
    if not genres:
        raise ValueError(f"{name}: no labels")
    return np.array([genre_index(g) for g in genres], dtype=np.int64)


def _check_lengths(**sequences) -> int:
    """The common length of ``sequences`` (None entries ignored), or a ValueError naming them."""
    lengths = {k: len(v) for k, v in sequences.items() if v is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError("mismatched lengths: " + ", ".join(f"{k}={n}" for k, n in lengths.items()))
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("empty inputs: " + ", ".join(lengths))
    return n


# --------------------------------------------------------------------------- judge features
def _stats(name: str, x: np.ndarray, rows: list[str] | None = None) -> dict:
    """{name_stat[_row]: value}: mean and std over frames of a [R, F] feature."""
    x = np.atleast_2d(x)
    rows = rows or ([""] if x.shape[0] == 1 else [str(i) for i in range(x.shape[0])])
    out = {}
    for stat, fn in (("mean", np.mean), ("std", np.std)):
        for r, v in zip(rows, fn(x, axis=1)):
            out[f"{name}{r and '_' + r}_{stat}"] = float(v)
    return out


def _rms_features(S: np.ndarray) -> dict:
    """Dynamics of the frame RMS in dB (gain-free: relative to the median)."""
    db = librosa.amplitude_to_db(librosa.feature.rms(S=S, frame_length=N_FFT)[0], ref=1.0, top_db=None)
    med = np.median(db)
    p10, p90 = np.percentile(db, [10, 90])
    return {"rms_db_std": float(db.std()), "rms_db_p10": float(p10 - med),
            "rms_db_p90": float(p90 - med), "rms_db_max": float(db.max() - med)}


def _rhythm_features(onset: np.ndarray, sr: int) -> dict:
    """Onset-strength statistics, tempo and the time-averaged tempogram in tempo bands."""
    out = {"onset_mean": float(onset.mean()), "onset_std": float(onset.std()),
           "onset_cv": float(onset.std() / (onset.mean() + 1e-8))}
    tg = librosa.feature.tempogram(onset_envelope=onset, sr=sr, hop_length=HOP,
                                   win_length=TEMPOGRAM_WIN).mean(axis=1)     # (lags,)
    bpm = librosa.tempo_frequencies(len(tg), sr=sr, hop_length=HOP)           # inf at lag 0
    for lo, hi in zip(TEMPO_BANDS_BPM[:-1], TEMPO_BANDS_BPM[1:]):
        band = tg[(bpm >= lo) & (bpm < hi)]
        out[f"tempogram_{lo:.0f}_{hi:.0f}bpm"] = float(band.mean()) if band.size else 0.0
    out["tempo_bpm"] = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP)[0])
    return out


def _feature_dict(audio: np.ndarray, sr: int) -> dict:
    y = audio / max(float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))), 1e-8)  # unit RMS
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))                       # (1 + N_FFT/2, F)
    mel_db_ = librosa.power_to_db(librosa.feature.melspectrogram(S=S ** 2, sr=sr))
    mfcc = librosa.feature.mfcc(S=mel_db_, n_mfcc=N_MFCC)                          # (20, F)
    feats = _stats("mfcc", mfcc)
    feats.update({f"dmfcc_{i}_std": float(v)
                  for i, v in enumerate(librosa.feature.delta(mfcc, width=9, mode="nearest").std(axis=1))})
    feats.update(_stats("contrast", librosa.feature.spectral_contrast(S=S, sr=sr)))
    for name, fn in (("centroid", librosa.feature.spectral_centroid),
                     ("bandwidth", librosa.feature.spectral_bandwidth),
                     ("rolloff", librosa.feature.spectral_rolloff)):
        feats.update(_stats(name, np.log(fn(S=S, sr=sr) + 1.0)))                  # log Hz
    feats.update(_stats("flatness", np.log(librosa.feature.spectral_flatness(S=S) + 1e-10)))
    feats.update(_stats("zcr", librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)))
    feats.update(_rms_features(S))
    feats.update(_rhythm_features(librosa.onset.onset_strength(S=mel_db_, sr=sr), sr))
    return feats


def judge_features(audio, sr: int) -> np.ndarray:
    """Summary features of one clip for the genre judge.

    The clip is scaled to unit RMS first, so the judge ignores overall gain (a model's
    output level is not a genre cue). Features (names in ``JUDGE_FEATURE_NAMES``): MFCC
    (20) mean and std, delta-MFCC std, spectral contrast (7 bands) mean and std, log
    spectral centroid / bandwidth / roll-off and log flatness mean and std, zero-crossing
    rate mean and std, frame-RMS dynamics in dB, onset-strength statistics, tempo and the
    time-averaged tempogram in 9 tempo bands (40-320 BPM).

    Parameters
    ----------
    audio : array [T], mono, at least 1 s
    sr : sample rate of ``audio``

    Returns
    -------
    np.ndarray float64 [D], D = len(JUDGE_FEATURE_NAMES)
    """
    sr = _check_sr(sr)
    audio = _as_audio(audio, "audio", MIN_SECONDS, sr)
    return np.array(list(_feature_dict(audio, sr).values()), dtype=np.float64)


def _feature_names() -> tuple[str, ...]:
    """Names of :func:`judge_features`' entries, in order (a test checks them against the dict)."""
    names = [f"mfcc_{i}_{s}" for s in ("mean", "std") for i in range(N_MFCC)]
    names += [f"dmfcc_{i}_std" for i in range(N_MFCC)]
    names += [f"contrast_{i}_{s}" for s in ("mean", "std") for i in range(7)]
    names += [f"{f}_{s}" for f in ("centroid", "bandwidth", "rolloff", "flatness", "zcr") for s in ("mean", "std")]
    names += ["rms_db_std", "rms_db_p10", "rms_db_p90", "rms_db_max", "onset_mean", "onset_std", "onset_cv"]
    names += [f"tempogram_{lo:.0f}_{hi:.0f}bpm" for lo, hi in zip(TEMPO_BANDS_BPM[:-1], TEMPO_BANDS_BPM[1:])]
    return tuple(names + ["tempo_bpm"])


JUDGE_FEATURE_NAMES = _feature_names()


def extract_features(audios, sr: int, n_jobs: int = 1, progress: bool = True) -> np.ndarray:
    """:func:`judge_features` of many clips.

    Parameters
    ----------
    audios : list of [T] arrays (any lengths >= 1 s) or an array [N, T]
    sr : their sample rate
    n_jobs : worker processes (joblib); 1 runs in this process
    progress : show a tqdm bar

    Returns
    -------
    np.ndarray float64 [N, D]
    """
    sr = _check_sr(sr)
    audios = _as_audio_list(audios, "audios", MIN_SECONDS, sr)
    bar = dict(total=len(audios), desc="judge features", unit="clip", disable=not progress, leave=False)
    if n_jobs == 1 or len(audios) < 4:
        rows = [judge_features(a, sr) for a in tqdm(audios, **bar)]
    else:
        from joblib import Parallel, delayed
        jobs = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(judge_features)(a, sr) for a in audios)
        rows = list(tqdm(jobs, **bar))
    return np.stack(rows)


# --------------------------------------------------------------------------- the judge
class GenreJudge:
    """Genre classifier, independent of the VAEs: features -> StandardScaler -> LogisticRegression.

    Labels are genre names or indices into ``GENRES``; probabilities always have one
    column per genre of ``GENRES`` (0 for a genre absent from the training set). Audio at
    another sample rate than the one the judge was fitted at is resampled first.

    Parameters
    ----------
    C : inverse L2 strength of the logistic regression
    n_jobs : processes for feature extraction (joblib)
    progress : tqdm bars during feature extraction

    Attributes
    ----------
    sr : sample rate the judge was fitted at
    heldout_accuracy, n_test : set by :meth:`evaluate` (None before)
    n_train : clips it was fitted on
    """

    def __init__(self, C: float = 1.0, n_jobs: int = 1, progress: bool = True):
        self.C, self.n_jobs, self.progress = float(C), int(n_jobs), progress
        self.sr: int | None = None
        self.scaler = self.clf = None
        self.n_train = 0
        self.heldout_accuracy: float | None = None
        self.n_test: int | None = None

    # ---- features
    def features(self, audios, sr: int) -> np.ndarray:
        """[N x T] at ``sr`` -> features [N, D] at the judge's sample rate."""
        sr = _check_sr(sr)
        target = self.sr or sr
        audios = _as_audio_list(audios, "audios", MIN_SECONDS, sr)
        if sr != target:
            audios = [librosa.resample(a, orig_sr=sr, target_sr=target) for a in audios]
        return extract_features(audios, target, n_jobs=self.n_jobs, progress=self.progress)

    # ---- fitting
    def fit(self, audios, labels, sr: int) -> "GenreJudge":
        """Fit on clips [N x T] at ``sr`` with genre ``labels`` [N]."""
        _check_lengths(audios=audios, labels=labels)
        y = _genre_indices(labels, "labels")
        self.sr = None                                   # features at the clips' own rate
        return self.fit_features(self.features(audios, sr), y, sr)

    def fit_features(self, X: np.ndarray, labels, sr: int) -> "GenreJudge":
        """Fit on precomputed features [N, D] of clips at ``sr`` (from :func:`extract_features`)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X = np.asarray(X, dtype=np.float64)
        y = _genre_indices(labels, "labels")
        _check_lengths(features=X, labels=y)
        if X.ndim != 2 or X.shape[1] != len(JUDGE_FEATURE_NAMES):
            raise ValueError(f"features: expected shape [N, {len(JUDGE_FEATURE_NAMES)}], got {X.shape}")
        if len(np.unique(y)) < 2:
            raise ValueError(f"labels: need at least two genres to fit, got {sorted(set(GENRES[i] for i in y))}")
        self.sr = _check_sr(sr)
        self.scaler = StandardScaler().fit(X)
        self.clf = LogisticRegression(C=self.C, max_iter=5000).fit(self.scaler.transform(X), y)
        self.n_train = len(y)
        self.heldout_accuracy = self.n_test = None
        return self

    # ---- prediction
    def _check_fitted(self):
        if self.clf is None:
            raise RuntimeError("GenreJudge is not fitted: call fit() or from_file() first")

    def predict_proba_features(self, X: np.ndarray) -> np.ndarray:
        """Features [N, D] -> probabilities [N, len(GENRES)] (columns in GENRES order)."""
        self._check_fitted()
        p = self.clf.predict_proba(self.scaler.transform(np.asarray(X, dtype=np.float64)))
        out = np.zeros((p.shape[0], len(GENRES)))
        out[:, self.clf.classes_] = p
        return out

    def predict_proba(self, audios, sr: int) -> np.ndarray:
        """Clips [N x T] -> probabilities [N, len(GENRES)] (columns in GENRES order)."""
        self._check_fitted()
        return self.predict_proba_features(self.features(audios, sr))

    def predict(self, audios, sr: int) -> np.ndarray:
        """Clips [N x T] -> genre indices into GENRES, int [N]."""
        return self.predict_proba(audios, sr).argmax(axis=1)

    def score(self, audios, labels, sr: int) -> float:
        """Accuracy on clips [N x T] with genre ``labels`` [N]."""
        _check_lengths(audios=audios, labels=labels)
        y = _genre_indices(labels, "labels")
        return float(np.mean(self.predict(audios, sr) == y))

    def evaluate(self, audios, labels, sr: int) -> float:
        """:meth:`score` on held-out clips, recorded as ``heldout_accuracy`` and ``n_test``."""
        self.heldout_accuracy = self.score(audios, labels, sr)
        self.n_test = len(labels)
        return self.heldout_accuracy

    def evaluate_features(self, X: np.ndarray, labels) -> float:
        """:meth:`evaluate` on precomputed features [N, D]."""
        y = _genre_indices(labels, "labels")
        _check_lengths(features=X, labels=y)
        self.heldout_accuracy = float(np.mean(self.predict_proba_features(X).argmax(axis=1) == y))
        self.n_test = len(y)
        return self.heldout_accuracy

    def info(self) -> dict:
        """The judge's entry of metrics.json."""
        return {"heldout_accuracy": self.heldout_accuracy, "n_train": self.n_train, "n_test": self.n_test,
                "classifier": f"StandardScaler + LogisticRegression(C={self.C:g}) on "
                              f"{len(JUDGE_FEATURE_NAMES)} librosa summary features",
                "sr": self.sr, "n_features": len(JUDGE_FEATURE_NAMES)}

    # ---- save / load (numpy arrays only)
    def to_file(self, path) -> Path:
        """Save as ``.npz`` (arrays only, loadable with ``allow_pickle=False``)."""
        self._check_fitted()
        return atomic_write(path, lambda f: np.savez(
                     f, version=_FEATURE_VERSION, feature_names=np.array(JUDGE_FEATURE_NAMES),
                     sr=self.sr, C=self.C, n_train=self.n_train,
                     heldout_accuracy=np.nan if self.heldout_accuracy is None else self.heldout_accuracy,
                     n_test=-1 if self.n_test is None else self.n_test,
                     scaler_mean=self.scaler.mean_, scaler_scale=self.scaler.scale_,
                     scaler_var=self.scaler.var_, coef=self.clf.coef_, intercept=self.clf.intercept_,
                     classes=self.clf.classes_))

    @classmethod
    def from_file(cls, path, n_jobs: int = 1, progress: bool = True) -> "GenreJudge":
        """Rebuild a judge saved by :meth:`to_file`; ValueError if its features are stale."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
            version, names = int(d["version"]), tuple(d["feature_names"])
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - not an npz, or not one of ours
            raise InputError(f"{path} is not a judge file written by GenreJudge.to_file ({one_line(exc)})") from exc
        if version != _FEATURE_VERSION or names != JUDGE_FEATURE_NAMES:
            raise InputError(f"{path}: judge saved with other features (version {version}); refit it")
        judge = cls(C=float(d["C"]), n_jobs=n_jobs, progress=progress)
        judge.sr, judge.n_train = int(d["sr"]), int(d["n_train"])
        judge.heldout_accuracy = None if np.isnan(d["heldout_accuracy"]) else float(d["heldout_accuracy"])
        judge.n_test = None if int(d["n_test"]) < 0 else int(d["n_test"])
        judge.scaler = StandardScaler()
        judge.scaler.mean_, judge.scaler.scale_ = d["scaler_mean"], d["scaler_scale"]
        judge.scaler.var_ = d["scaler_var"]
        judge.scaler.n_features_in_, judge.scaler.n_samples_seen_ = len(d["scaler_mean"]), judge.n_train
        judge.clf = LogisticRegression(C=judge.C)
        judge.clf.coef_, judge.clf.intercept_, judge.clf.classes_ = d["coef"], d["intercept"], d["classes"]
        judge.clf.n_features_in_ = d["coef"].shape[1]
        return judge


def split_by_content(content_ids, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train / test split in which no content id is on both sides.

    Parameters
    ----------
    content_ids : [N] content id of every clip
    test_fraction : share of the distinct content ids held out

    Returns
    -------
    (train_idx, test_idx), int arrays
    """
    ids = np.array([str(c) for c in content_ids])
    if ids.size == 0:
        raise ValueError("content_ids: empty")
    unique = np.unique(ids)
    if len(unique) < 2:
        raise ValueError(f"content_ids: need at least two distinct contents, got {unique.tolist()}")
    n_test = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
    test = np.random.default_rng(seed).choice(unique, n_test, replace=False)
    is_test = np.isin(ids, test)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


# --------------------------------------------------------------------------- single-feature control
def single_feature(audio, sr: int, feature: str) -> float:
    """One raw scalar cue of a clip: "tempo" (BPM, librosa), "rms" (linear RMS of the
    raw clip) or "centroid" (mean spectral centroid, Hz)."""
    if feature not in SINGLE_FEATURES:
        raise ValueError(f"unknown feature {feature!r}; expected one of {SINGLE_FEATURES}")
    audio = _as_audio(audio, "audio", MIN_SECONDS, sr)
    if feature == "rms":
        return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if feature == "centroid":
        return float(librosa.feature.spectral_centroid(y=audio, sr=sr, n_fft=N_FFT, hop_length=HOP).mean())
    onset = librosa.onset.onset_strength(y=audio, sr=sr, hop_length=HOP)
    return float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP)[0])


def single_feature_accuracy(audios, labels, test_audios, test_labels, sr: int, feature: str) -> float:
    """Held-out accuracy of a classifier that sees one scalar cue only.

    A Gaussian naive Bayes classifier (per-genre mean and variance of the cue) is fitted
    on ``audios`` and scored on ``test_audios``. On the synthetic set this stays far below
    the judge: no single cue tells the genres apart.

    Parameters
    ----------
    audios, test_audios : [N x T] clips at ``sr``
    labels, test_labels : genre names or indices, [N]
    feature : "tempo", "rms" or "centroid"

    Returns
    -------
    float, accuracy in [0, 1] (chance = 1 / number of genres)
    """
    from sklearn.naive_bayes import GaussianNB

    if feature not in SINGLE_FEATURES:
        raise ValueError(f"unknown feature {feature!r}; expected one of {SINGLE_FEATURES}")
    sr = _check_sr(sr)
    _check_lengths(audios=audios, labels=labels)
    _check_lengths(test_audios=test_audios, test_labels=test_labels)
    y, y_test = _genre_indices(labels, "labels"), _genre_indices(test_labels, "test_labels")
    x = np.array([[single_feature(a, sr, feature)] for a in _as_audio_list(audios, "audios")])
    x_test = np.array([[single_feature(a, sr, feature)] for a in _as_audio_list(test_audios, "test_audios")])
    return float(np.mean(GaussianNB().fit(x, y).predict(x_test) == y_test))


# --------------------------------------------------------------------------- content
def chroma_cens(audio, sr: int) -> np.ndarray:
    """Chroma CENS at ~10.8 frames/s: librosa's CENS (smoothing window 41 frames of 512
    samples at 22.05 kHz, hop scaled with ``sr``) kept every ``CENS_DOWNSAMPLE``-th frame.

    Parameters
    ----------
    audio : mono clip [T] at ``sr``, >= 1 s

    Returns
    -------
    np.ndarray [12, F], F ~ T / (4 * 512) at 22.05 kHz
    """
    sr = _check_sr(sr)
    return chroma_cens_many([_as_audio(audio, "audio", MIN_SECONDS, sr)], sr)[0]


def chroma_cens_many(audios, sr: int, chunk: int = 32, progress: bool = False) -> list:
    """:func:`chroma_cens` of many clips, the same numbers: clips of one length go through
    librosa together (its multichannel input), so the constant-Q filter bank, most of the
    cost of one short clip, is built once per ``chunk`` clips instead of once per clip."""
    sr = _check_sr(sr)
    audios = _as_audio_list(audios, "audios", MIN_SECONDS, sr)
    out: list = [None] * len(audios)
    by_length: dict[int, list[int]] = {}
    for i, a in enumerate(audios):
        by_length.setdefault(len(a), []).append(i)
    parts = [idx[i:i + chunk] for idx in by_length.values() for i in range(0, len(idx), chunk)]
    for part in tqdm(parts, desc="chroma", disable=not progress, leave=False):
        # tuning=0: no pitch-tracking tuning estimate (the synthetic set is in tune; GTZAN is
        # close), which also makes the chroma of a clip independent of its neighbours in time.
        cens = librosa.feature.chroma_cens(y=np.stack([audios[i] for i in part]), sr=sr,
                                           hop_length=_chroma_hop(sr), tuning=0.0)[..., ::CENS_DOWNSAMPLE]
        for i, c in zip(part, cens):
            out[i] = c
    return out


def _chroma_hop(sr: int) -> int:
    """512 samples at 22.05 kHz, scaled with ``sr`` and kept a multiple of 2**6 (the CQT's octaves)."""
    return max(64, int(round(HOP * sr / AudioConfig.sample_rate / 64)) * 64)


def _min_overlap_frames(sr: int) -> int:
    return max(2, int(MIN_OVERLAP_SECONDS * sr / (_chroma_hop(sr) * CENS_DOWNSAMPLE)))


def _stretch_factors(max_stretch: float) -> np.ndarray:
    """1 and STRETCH_STEPS factors log-spaced in [1 / max_stretch, max_stretch] (~1.8 % apart at 3)."""
    if max_stretch < 1:
        raise ValueError(f"max_stretch must be >= 1, got {max_stretch!r}")
    if max_stretch == 1:
        return np.ones(1)
    return np.unique(np.r_[1.0, np.geomspace(1 / max_stretch, max_stretch, STRETCH_STEPS)])


def _stretch(x: np.ndarray, factor: float) -> np.ndarray:
    """Time-stretch a feature sequence [12, F] to round(F * factor) frames (linear interpolation)."""
    if factor == 1.0:
        return x
    n_in = x.shape[1]
    t = np.minimum(np.arange(max(int(round(n_in * factor)), 1)) / factor, n_in - 1)  # (F',) in input frames
    i = np.floor(t).astype(int)
    w = t - i
    return x[:, i] * (1 - w) + x[:, np.minimum(i + 1, n_in - 1)] * w


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flattened [12, F] matrices, trimmed to the common F."""
    f = min(a.shape[1], b.shape[1])
    x, y = a[:, :f].ravel() - a[:, :f].mean(), b[:, :f].ravel() - b[:, :f].mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return min(1.0, max(-1.0, float(x @ y) / denom)) if denom > 0 else 0.0


@functools.lru_cache(maxsize=64)
def _stretch_plan(n_in: int, max_stretch: float) -> tuple:
    """:func:`_stretch`'s frame indices and weights for every factor but 1, concatenated, and
    where to cut them apart: one gather stretches a clip by all factors at once."""
    here, after, weight, cuts = [], [], [], [0]
    for f in _stretch_factors(max_stretch):
        if f != 1.0:
            t = np.minimum(np.arange(max(int(round(n_in * f)), 1)) / f, n_in - 1)
            i = np.floor(t).astype(int)
            here.append(i), after.append(np.minimum(i + 1, n_in - 1)), weight.append(t - i)
            cuts.append(cuts[-1] + len(i))
    return np.concatenate(here), np.concatenate(after), np.concatenate(weight), cuts[1:-1]


def _stretched(a: np.ndarray, max_stretch: float = CONTENT_MAX_STRETCH) -> list:
    """``a`` [12, F] time-stretched by every factor of :func:`_stretch_factors` (1 first);
    the same numbers as :func:`_stretch` factor by factor."""
    if max_stretch == 1:
        return [a]
    i, j, w, cuts = _stretch_plan(a.shape[1], float(max_stretch))
    return [a] + np.split(a[:, i] * (1 - w) + a[:, j] * w, cuts, axis=1)


def _best_pearson(versions: list, b: np.ndarray, min_frames: int) -> float:
    """Best :func:`_pearson` of the stretched ``versions`` of a clip with ``b``; a stretch
    overlapping ``b`` for fewer than ``min_frames`` frames is skipped (the unstretched never is)."""
    best = _pearson(versions[0], b)
    for v in versions[1:]:
        if min(v.shape[1], b.shape[1]) >= min_frames:
            best = max(best, _pearson(v, b))
    return best


def content_similarity(a, b, sr: int, max_stretch: float = CONTENT_MAX_STRETCH) -> float:
    """Content similarity of two clips: tempo-invariant chroma-CENS correlation.

    The CENS matrices [12, F] (:func:`chroma_cens`) are trimmed to their common number of
    frames, flattened and correlated (Pearson, over all 12 x F entries). Because the same
    song played in another genre is played at another tempo, ``b``'s CENS is also
    time-stretched (start fixed) by factors log-spaced in [1/max_stretch, max_stretch]
    (~1.8 % apart; stretches overlapping ``a`` for less than 2 s are skipped) and the best
    correlation is kept. ``max_stretch=1`` gives the plain, aligned correlation.
    1 = identical pitch-class content over time; ~0.1 = unrelated (the maximum over
    stretches lifts unrelated pairs above 0). A clip with a constant chroma scores 0.

    Parameters
    ----------
    a, b : mono clips [T_a], [T_b] at ``sr``, each >= 1 s (``a`` the source or reference,
        ``b`` the output: evaluate_transfer and content_retrieval call it that way round)
    max_stretch : largest tempo ratio searched (3: the 60-175 BPM span of the synthetic
        genres; GTZAN's tempos span a similar range)

    Returns
    -------
    float in [-1, 1]
    """
    versions = _stretched(chroma_cens(b, sr), max_stretch)             # stretches x (12, F')
    return _best_pearson(versions, chroma_cens(a, sr), _min_overlap_frames(sr))


class ChromaReference:
    """CENS of the reference renderings, computed once: {(content_id, genre): [12, F]}.

    Keys are normalised to (str(content_id), genre name), so 3 and "3", "rock" and 9 agree.
    """

    def __init__(self, cens: dict, sr: int):
        self.cens, self.sr = cens, int(sr)

    @classmethod
    def from_audio(cls, reference: Mapping, sr: int, progress: bool = False) -> "ChromaReference":
        """``reference`` maps (content_id, genre) -> audio [T] at ``sr``."""
        if not isinstance(reference, Mapping) or not reference:
            raise ValueError("reference: expected a non-empty mapping (content_id, genre) -> audio")
        for key in reference:
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"reference key {key!r}: expected (content_id, genre)")
        keys = [(str(k[0]), GENRES[genre_index(k[1])]) for k in reference]
        return cls(dict(zip(keys, chroma_cens_many(list(reference.values()), sr, progress=progress))), sr)

    def contents(self, genre) -> list[str]:
        """Content ids (as str) rendered in ``genre``."""
        g = GENRES[genre_index(genre)]
        return sorted(c for c, gg in self.cens if gg == g)


def _as_reference(reference, sr: int) -> ChromaReference:
    if isinstance(reference, ChromaReference):
        if reference.sr != sr:
            raise ValueError(f"reference chroma computed at sr={reference.sr}, outputs at sr={sr}")
        return reference
    return ChromaReference.from_audio(reference, sr)


def _retrieval_hits(output_versions: list, content_ids, target_genres, ref: ChromaReference) -> np.ndarray:
    """bool [N]: is the nearest target-genre reference rendering of each output its own content?

    ``output_versions``: per output, its CENS stretched by every factor (:func:`_stretched`)."""
    hits = np.zeros(len(output_versions), dtype=bool)
    min_frames = _min_overlap_frames(ref.sr)
    for i, (versions, cid, genre) in enumerate(zip(output_versions, content_ids, target_genres)):
        g, cid = GENRES[genre_index(genre)], str(cid)
        candidates = ref.contents(g)
        if cid not in candidates:
            raise ValueError(f"reference has no rendering of content {cid!r} in genre {g!r}")
        sims = [_best_pearson(versions, ref.cens[(c, g)], min_frames) for c in candidates]
        hits[i] = candidates[int(np.argmax(sims))] == cid
    return hits


def content_retrieval(outputs, content_ids, target_genres, reference, sr: int = AudioConfig.sample_rate) -> float:
    """Share of outputs whose nearest target-genre rendering is their own content.

    For output i (content c_i, target genre B_i) the candidates are all reference
    renderings of genre B_i; the nearest by :func:`content_similarity` (chroma-CENS
    correlation) must be (c_i, B_i). Chance = 1 / number of reference contents.

    Parameters
    ----------
    outputs : [N x T] transferred clips at ``sr``
    content_ids : [N] content id of each output's source
    target_genres : [N] genre names or indices
    reference : mapping (content_id, genre) -> audio [T] (synthetic_gtzan.render_clip, same
        duration), or a :class:`ChromaReference` of it
    sr : sample rate of outputs and reference

    Returns
    -------
    float in [0, 1]
    """
    sr = _check_sr(sr)
    _check_lengths(outputs=outputs, content_ids=content_ids, target_genres=target_genres)
    outputs = _as_audio_list(outputs, "outputs", MIN_SECONDS, sr)
    _genre_indices(target_genres, "target_genres")
    ref = _as_reference(reference, sr)
    versions = [_stretched(c) for c in chroma_cens_many(outputs, sr)]
    return float(_retrieval_hits(versions, content_ids, target_genres, ref).mean())


# --------------------------------------------------------------------------- reconstruction
def _magnitude(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT|, hann window, centred (constant padding, as the mel front-end). [..., T] -> [..., K, F]."""
    return torch.stft(x, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft, dtype=x.dtype),
                      center=True, pad_mode="constant", return_complex=True).abs()


def _pair(reference, output, trim: bool) -> tuple[torch.Tensor, torch.Tensor]:
    ref, out = _as_audio(reference, "reference"), _as_audio(output, "output")
    if ref.size != out.size:
        if not trim:
            raise ValueError(f"mismatched lengths: reference has {ref.size} samples, output {out.size} "
                             f"(pass trim=True to compare the common part)")
        n = min(ref.size, out.size)
        ref, out = ref[:n], out[:n]
    return torch.from_numpy(ref.astype(np.float64)), torch.from_numpy(out.astype(np.float64))


def spectral_convergence(reference, output, n_fft: int, hop: int, trim: bool = False) -> float:
    """|| |STFT ref| - |STFT out| ||_F / || |STFT ref| ||_F (hann, centred).

    Parameters
    ----------
    reference, output : mono clips [T] (equal lengths unless ``trim``)
    n_fft, hop : STFT size and hop in samples

    Returns
    -------
    float >= 0; 0 for identical audio, 0.5 for ``output = 0.5 * reference``.
    """
    ref, out = _pair(reference, output, trim)
    S_ref, S_out = _magnitude(ref, n_fft, hop), _magnitude(out, n_fft, hop)
    norm = torch.linalg.norm(S_ref)
    if norm == 0:
        raise ValueError("reference is silent: spectral convergence is undefined")
    return float(torch.linalg.norm(S_ref - S_out) / norm)


def reconstruction_metrics(reference, output, cfg: AudioConfig, trim: bool = False) -> dict:
    """Reconstruction error of ``output`` against ``reference``.

    Parameters
    ----------
    reference, output : mono clips [T] at ``cfg.sample_rate`` (equal lengths unless ``trim``)
    cfg : the model's AudioConfig (mel and STFT parameters)

    Returns
    -------
    {"logmel_l1_db": mean |mel_db(ref) - mel_db(out)| in dB (floored at cfg.db_min),
     "spectral_convergence": see :func:`spectral_convergence` with cfg.n_fft / cfg.hop_length}
    """
    ref, out = _pair(reference, output, trim)
    l1 = (mel_db(ref.float(), cfg) - mel_db(out.float(), cfg)).abs().mean()
    return {"logmel_l1_db": float(l1),
            "spectral_convergence": spectral_convergence(ref.numpy(), out.numpy(), cfg.n_fft, cfg.hop_length)}


def mean_reconstruction(pairs, cfg: AudioConfig, trim: bool = False) -> dict:
    """Mean of :func:`reconstruction_metrics` over (reference, output) pairs, with ``n``."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs: no (reference, output) pairs")
    rows = [reconstruction_metrics(r, o, cfg, trim) for r, o in pairs]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"n": len(rows)}


# --------------------------------------------------------------------------- latent
ACTIVE_THRESHOLD = 0.01          # a latent unit is active when Var(mu) over the data exceeds this


def latent_matrix(x, name: str) -> np.ndarray:
    """``x`` as a finite float64 [N, D] with N >= 1 and D >= 1, or a ValueError naming it."""
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty array [N, D], got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: holds {int(np.sum(~np.isfinite(a)))} NaN or inf value(s)")
    return a


def label_array(labels, n: int, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name}: expected {n} labels (one per row of mu), got shape {y.shape}")
    return y


def variance_per_dim(mu) -> np.ndarray:
    """[D] variance of mu over the rows."""
    return latent_matrix(mu, "mu").var(axis=0)


def active_units(mu, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Number of latent dimensions whose mu varies over the data by more than ``threshold``."""
    return int(np.sum(variance_per_dim(mu) > threshold))


def kl_per_dim(mu, logvar) -> np.ndarray:
    """[D] mean over rows of KL(N(mu, exp(logvar)) || N(0, 1)) per dimension (the
    bottleneck's own :meth:`vae_parts.GaussianBottleneck.kl_per_dim`).

    With time-averaged mu and logvar this is the KL of the averaged posterior parameters,
    not the trainer's per-position ``kl_raw``; it ranks the dimensions the same way.
    """
    mu, logvar = latent_matrix(mu, "mu"), latent_matrix(logvar, "logvar")
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must both be [N, D]; got {mu.shape} and {logvar.shape}")
    return GaussianBottleneck.kl_per_dim(torch.from_numpy(mu), torch.from_numpy(logvar)).numpy()


def separation_metrics(mu, labels, groups=None, k: int = 5, folds: int = 5, seed: int = 0) -> dict:
    """How well genre can be read from mu.

    Parameters
    ----------
    mu : [N, D]
    labels : [N] genre of each row
    groups : [N] clip of each row, or None. With windows, pass the clip index: the kNN
        folds then never put windows of one clip on both sides (otherwise a window's
        nearest neighbour is its sibling and the accuracy flatters the latent).
    k : neighbours (fewer when a training fold is smaller)
    folds : at most this many stratified folds (fewer when a genre has fewer clips)
    seed : fold shuffling

    Returns
    -------
    {"silhouette": silhouette of mu by genre (euclidean, in [-1, 1]),
     "knn_accuracy": pooled accuracy of the k-NN genre classifier over the folds,
     "knn_k", "knn_folds", "chance": share of the largest genre,
     "n", "n_genres", "grouped": whether groups were used,
     "notes": [why a value is NaN]}. Degenerate input gives NaN and a note, not an error.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier

    mu = latent_matrix(mu, "mu")
    y = label_array(labels, len(mu))
    classes, counts = np.unique(y, return_counts=True)
    notes: list = []
    out = {"silhouette": float("nan"), "knn_accuracy": float("nan"), "knn_k": None, "knn_folds": None,
           "chance": float(counts.max() / len(y)), "n": int(len(y)), "n_genres": int(len(classes)),
           "grouped": groups is not None, "notes": notes}
    if 2 <= len(classes) <= len(y) - 1:
        out["silhouette"] = float(silhouette_score(mu, y))
    else:
        notes.append(f"silhouette: NaN (needs 2 <= genres <= N - 1; got {len(classes)} genre(s), N={len(y)})")
    if groups is not None:
        g = label_array(groups, len(mu), "groups")
        units = np.array([len(np.unique(g[y == c])) for c in classes])     # clips per genre
        splitter_cls, unit_name = StratifiedGroupKFold, "clips"
    else:
        g, units, splitter_cls, unit_name = None, counts, StratifiedKFold, "rows"
    n_splits = int(min(folds, units.min()))
    if len(classes) < 2 or n_splits < 2:
        notes.append(f"knn_accuracy: NaN (needs >= 2 genres with >= 2 {unit_name} each; got "
                     f"{len(classes)} genre(s), the smallest with {int(units.min())} {unit_name})")
        return out
    splitter = splitter_cls(n_splits=n_splits, shuffle=True, random_state=seed)
    correct = total = 0
    ks = []
    for train_idx, test_idx in splitter.split(mu, y, g):
        if len(test_idx) == 0:
            continue
        kk = min(k, len(train_idx))
        ks.append(kk)
        pred = KNeighborsClassifier(n_neighbors=kk).fit(mu[train_idx], y[train_idx]).predict(mu[test_idx])
        correct += int(np.sum(pred == y[test_idx]))
        total += len(test_idx)
    out.update(knn_accuracy=correct / total, knn_k=int(min(ks)), knn_folds=n_splits)
    return out


def latent_diagnostics(mu, logvar, labels, groups=None, active_threshold: float = ACTIVE_THRESHOLD,
                       k: int = 5, seed: int = 0) -> dict:
    """Diagnostics of a VAE's posterior means and variances (the ``latent`` of metrics.json).

    Parameters
    ----------
    mu, logvar : [N, D] posterior mean and log-variance per clip (or window)
    labels : [N] genre names or indices
    groups : [N] clip of each row when rows are windows (see :func:`separation_metrics`)
    active_threshold : a dimension is active if Var_n(mu[:, d]) > this
    k : neighbours of the kNN genre classifier

    Returns
    -------
    {"knn_genre_accuracy", "knn_k", "silhouette" (:func:`separation_metrics`),
     "active_units", "latent_dim": D, "kl_per_dim": [D] list (:func:`kl_per_dim`),
     "kl_total", "n": N, "notes": [why a value is NaN]}
    """
    mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
    if mu.ndim != 2 or mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must both be [N, D]; got {mu.shape} and {logvar.shape}")
    _check_lengths(mu=mu, labels=labels)
    kl = kl_per_dim(mu, logvar)
    sep = separation_metrics(mu, np.array([str(v) for v in labels]), groups, k=k, seed=seed)
    return {"latent_dim": int(mu.shape[1]), "n": int(mu.shape[0]),
            "active_units": active_units(mu, active_threshold), "kl_per_dim": kl.tolist(),
            "kl_total": float(kl.sum()), "knn_genre_accuracy": sep["knn_accuracy"], "knn_k": sep["knn_k"],
            "silhouette": sep["silhouette"], "notes": sep["notes"]}


# --------------------------------------------------------------------------- transfer
def evaluate_transfer(judge: GenreJudge, sources, outputs, source_genres, target_genres, sr: int,
                      content_ids=None, reference=None) -> dict:
    """Score one batch of transferred clips.

    Parameters
    ----------
    judge : a fitted :class:`GenreJudge`
    sources, outputs : [N x T] source clips and their transfers at ``sr`` (lengths may differ
        per pair: the chroma is trimmed to the common part)
    source_genres, target_genres : [N] genre names or indices
    content_ids : [N] content ids of the sources (synthetic set), needed with ``reference``
    reference : mapping (content_id, genre) -> audio or a :class:`ChromaReference`
        (synthetic set); None on real data

    Returns
    -------
    {"success": share judged as the target genre,
     "judged_source": share judged as the source genre (the output kept its genre),
     "target_prob": mean judge probability of the target genre,
     "content_chroma_corr": mean :func:`content_similarity` of source and output,
     "content_retrieval": :func:`content_retrieval` or None,
     "content_retrieval_chance": 1 / contents per genre in the reference, or None,
     "n": N}
    """
    return _evaluate(judge, sources, outputs, source_genres, target_genres, sr, content_ids, reference,
                     _ChromaMemo(sr))


class _ChromaMemo:
    """CENS (and its stretched versions) of clips already seen in this evaluation, keyed by
    array identity; the arrays are kept alive here, so an id is never reused meanwhile."""

    def __init__(self, sr: int):
        self.sr, self.cens, self.versions = sr, {}, {}

    def prefetch(self, audios) -> None:
        """Compute the CENS of the clips not seen yet, together (:func:`chroma_cens_many`)."""
        new = list({id(a): a for a in audios if id(a) not in self.cens}.values())
        for audio, cens in zip(new, chroma_cens_many(new, self.sr) if new else []):
            self.cens[id(audio)] = (audio, cens)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        if id(audio) not in self.cens:
            self.cens[id(audio)] = (audio, chroma_cens(audio, self.sr))
        return self.cens[id(audio)][1]

    def stretched(self, audio: np.ndarray) -> list:
        if id(audio) not in self.versions:
            self.versions[id(audio)] = (audio, _stretched(self(audio)))
        return self.versions[id(audio)][1]


def _evaluate(judge, sources, outputs, source_genres, target_genres, sr, content_ids, reference,
              memo: _ChromaMemo) -> dict:
    sr = _check_sr(sr)
    n = _check_lengths(sources=sources, outputs=outputs, source_genres=source_genres,
                       target_genres=target_genres, content_ids=content_ids)
    sources = _as_audio_list(sources, "sources", MIN_SECONDS, sr)
    outputs = _as_audio_list(outputs, "outputs", MIN_SECONDS, sr)
    source = _genre_indices(source_genres, "source_genres")
    target = _genre_indices(target_genres, "target_genres")
    if reference is not None and content_ids is None:
        raise ValueError("content_ids are needed with a reference")
    proba = judge.predict_proba(outputs, sr)                              # (N, G)
    memo.prefetch(list(sources) + list(outputs))
    out_versions = [memo.stretched(o) for o in outputs]                  # N x stretches x (12, F')
    min_frames = _min_overlap_frames(sr)
    corr = [_best_pearson(v, memo(s), min_frames) for s, v in zip(sources, out_versions)]
    result = {"success": float(np.mean(proba.argmax(axis=1) == target)),
              "judged_source": float(np.mean(proba.argmax(axis=1) == source)),
              "target_prob": float(np.mean(proba[np.arange(n), target])),
              "content_chroma_corr": float(np.mean(corr)),
              "content_retrieval": None, "content_retrieval_chance": None, "n": n}
    if reference is not None:
        ref = _as_reference(reference, sr)
        result["content_retrieval"] = float(_retrieval_hits(out_versions, content_ids, target, ref).mean())
        result["content_retrieval_chance"] = float(np.mean([1.0 / len(ref.contents(g)) for g in target]))
    return result


def _random_target_clips(pool: Mapping, content_ids, target_genres, seed: int) -> list:
    """For each i, a random pool clip of target_genres[i] whose content is not content_ids[i]."""
    rng = np.random.default_rng(seed)
    by_genre: dict[str, list] = {}
    for (cid, genre), audio in pool.items():
        by_genre.setdefault(GENRES[genre_index(genre)], []).append((str(cid), audio))
    picks = []
    for cid, genre in zip(content_ids, target_genres):
        g = GENRES[genre_index(genre)]
        options = [a for c, a in by_genre.get(g, []) if c != str(cid)]
        if not options:
            raise ValueError(f"random-target baseline: no clip of genre {g!r} with a content other than {cid!r}")
        picks.append(options[rng.integers(len(options))])
    return picks


def baseline_metrics(judge: GenreJudge, sources, source_genres, target_genres, sr: int, content_ids=None,
                     reference=None, pool: Mapping | None = None, seed: int = 0, same_timing=None) -> dict:
    """The reference points, scored with :func:`evaluate_transfer`.

    * ``identity``: output = source (content ~ 1, success ~ 0 when target != source);
    * ``random_target``: output = a random clip of the target genre with another content
      (success ~ judge accuracy, content retrieval ~ 0, below chance, since the nearest
      rendering is that other content);
    * ``same_timing`` (given ``same_timing``, the outputs): the same content rendered in the
      target genre at the source clip's tempo and swing (synthetic set only), the ceiling
      of a transfer that keeps the song's timing.

    Parameters
    ----------
    sources, source_genres, target_genres, content_ids, reference : as :func:`evaluate_transfer`
    pool : mapping (content_id, genre) -> audio to draw the random clips from. Default: the
        reference when given, else the sources themselves (keyed by content id, or by index
        when there are no content ids).
    seed : seed of the random draw

    Returns
    -------
    {"identity": {...}, "random_target": {...}}, each as :func:`evaluate_transfer` returns.
    """
    n = _check_lengths(sources=sources, source_genres=source_genres, target_genres=target_genres,
                       content_ids=content_ids)
    ids = list(content_ids) if content_ids is not None else [f"#{i}" for i in range(n)]
    if pool is None:
        pool = reference if isinstance(reference, Mapping) else {
            (c, genre_index(g)): s for c, g, s in zip(ids, source_genres, sources)}
    sr = _check_sr(sr)
    sources = _as_audio_list(sources, "sources", MIN_SECONDS, sr)      # float32 once: the memo keys on them
    ref = _as_reference(reference, sr) if reference is not None else None
    common = dict(judge=judge, sources=sources, source_genres=source_genres, target_genres=target_genres,
                  sr=sr, content_ids=content_ids, reference=ref, memo=_ChromaMemo(sr))
    out = {"identity": _evaluate(outputs=sources, **common),
           "random_target": _evaluate(outputs=_random_target_clips(pool, ids, target_genres, seed), **common)}
    if same_timing is not None:
        out["same_timing"] = _evaluate(outputs=same_timing, **common)
    return out


# --------------------------------------------------------------------------- metrics.json
TRANSFER_KEYS = ("success", "content_chroma_corr", "content_retrieval", "n")


def build_metrics(model_info: dict, judge_info, transfer: dict, baselines: dict,
                  reconstruction: dict | None = None, latent: dict | None = None) -> dict:
    """Assemble the metrics.json dict.

    ::

        {"schema_version": 1,
         "model":  {...free-form: name, family, checkpoint, epoch, preset, ...},
         "judge":  {"heldout_accuracy", "n_train", "n_test", "classifier", "sr", "n_features"},
         "transfer": {"<method>": [{"strength", "success", "judged_source", "target_prob", "content_chroma_corr",
                                    "content_retrieval", "content_retrieval_chance", "n"}, ...]},
         "baselines": {"identity": {...}, "random_target": {...}, "same_timing": {...} (synthetic)},
         "reconstruction": {"logmel_l1_db", "spectral_convergence", "own_genre", "n"
             (and "content_retrieval" when asked)} or null,
         "latent": {"knn_genre_accuracy", "knn_k", "silhouette", "active_units", "latent_dim",
                    "kl_per_dim", "kl_total", "n", "notes", and from GenreTransfer.decoder_use
                    "latent_use", "genre_use", ...} or null}

    ``content_retrieval`` is null without a synthetic reference; non-finite numbers are
    written as null (:func:`write_metrics`), so the file is strict JSON.

    Parameters
    ----------
    model_info : free-form description of the model (name, family, checkpoint, ...)
    judge_info : a :class:`GenreJudge` (its :meth:`~GenreJudge.info`) or that dict
    transfer : {method: [{"strength": s, **evaluate_transfer(...)}, ...]}
    baselines : :func:`baseline_metrics` output
    reconstruction : :func:`mean_reconstruction` / :func:`reconstruction_metrics` output, or None
    latent : :func:`latent_diagnostics` output, or None
    """
    judge = judge_info.info() if isinstance(judge_info, GenreJudge) else dict(judge_info)
    if not isinstance(model_info, Mapping):
        raise ValueError(f"model_info: expected a dict, got {type(model_info).__name__}")
    if not isinstance(transfer, Mapping):
        raise ValueError(f"transfer: expected {{method: [entries]}}, got {type(transfer).__name__}")
    for method, entries in transfer.items():
        if isinstance(entries, Mapping) or not isinstance(entries, Sequence):
            raise ValueError(f"transfer[{method!r}]: expected a list of per-strength dicts")
        for e in entries:
            missing = [k for k in ("strength",) + TRANSFER_KEYS if k not in e]
            if missing:
                raise ValueError(f"transfer[{method!r}] entry {e!r} lacks {missing}")
    for name in ("identity", "random_target"):
        if name not in baselines:
            raise ValueError(f"baselines: missing {name!r} (use baseline_metrics)")
    return {"schema_version": SCHEMA_VERSION, "model": dict(model_info), "judge": judge,
            "transfer": {m: [dict(e) for e in entries] for m, entries in transfer.items()},
            "baselines": {k: dict(v) for k, v in baselines.items()},
            "reconstruction": None if reconstruction is None else dict(reconstruction),
            "latent": None if latent is None else dict(latent)}


def to_jsonable(obj):
    """``obj`` with numpy / torch scalars and arrays, tuples and paths turned into JSON
    types, and non-finite floats into None. TypeError naming anything else."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"metrics: cannot write {type(obj).__name__} {obj!r} to JSON")


def write_metrics(path, metrics: dict) -> Path:
    """Write ``metrics`` as JSON, atomically (temp file in the same folder + os.replace).

    The JSON is built in memory first, so an unserialisable value raises before any file
    is touched, and an existing file is either fully replaced or left as it was.
    """
    text = json.dumps(to_jsonable(metrics), indent=2, allow_nan=False)
    return atomic_write(path, lambda f: f.write(text + "\n"), mode="w")


def read_metrics(path) -> dict:
    """Load a metrics.json."""
    return json.loads(Path(path).read_text())


# --------------------------------------------------------------------------- summary
def _fmt(v, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def summary_table(metrics: dict) -> str:
    """Plain-text table of the headline numbers of a metrics dict (or a loaded metrics.json)."""
    judge = metrics.get("judge") or {}
    lines = [f"model: {(metrics.get('model') or {}).get('name', '?')}",
             f"judge held-out accuracy: {_fmt(judge.get('heldout_accuracy'))} "
             f"(n_train={judge.get('n_train')}, n_test={judge.get('n_test')})", ""]
    header = (f"{'method':<16}{'strength':>9}{'success':>9}{'as src':>8}{'p(tgt)':>8}{'chroma':>8}"
              f"{'retrieval':>10}{'chance':>8}{'n':>6}")
    lines += [header, "-" * len(header)]
    rows = [(name, None, e) for name, e in (metrics.get("baselines") or {}).items()]
    rows += [(m, e.get("strength"), e) for m, entries in (metrics.get("transfer") or {}).items() for e in entries]
    for name, strength, e in rows:
        lines.append(f"{name:<16}{_fmt(strength, '.2f'):>9}{_fmt(e.get('success')):>9}"
                     f"{_fmt(e.get('judged_source')):>8}{_fmt(e.get('target_prob')):>8}"
                     f"{_fmt(e.get('content_chroma_corr')):>8}{_fmt(e.get('content_retrieval')):>10}"
                     f"{_fmt(e.get('content_retrieval_chance')):>8}{_fmt(e.get('n'), 'd'):>6}")
    rec = metrics.get("reconstruction")
    if rec:
        lines += ["", f"reconstruction: log-mel L1 {_fmt(rec.get('logmel_l1_db'), '.2f')} dB, "
                      f"spectral convergence {_fmt(rec.get('spectral_convergence'))}, "
                      f"judged as its own genre {_fmt(rec.get('own_genre'))}"
                      + (f", content retrieval {_fmt(rec['content_retrieval'])}" if "content_retrieval" in rec else "")]
    lat = metrics.get("latent")
    if lat:
        lines += [f"latent: kNN genre acc {_fmt(lat.get('knn_genre_accuracy'))}, silhouette "
                  f"{_fmt(lat.get('silhouette'))}, active units "
                  f"{lat.get('active_units')}/{lat.get('latent_dim')}, "
                  f"KL {_fmt(lat.get('kl_total'), '.2f')}"]
        if "latent_use" in lat:
            lines += [f"decoder: latent use {_fmt(lat.get('latent_use'))}, genre use "
                      f"{_fmt(lat.get('genre_use'))} (output change when z or the genre is swapped, "
                      f"relative to the difference between clips)"]
    return "\n".join(lines)


def plot_transfer_curve(metrics_by_model: Mapping[str, dict], out_png, target: float | None = 0.6) -> Path:
    """Transfer success against content retrieval, one line per model and method.

    Each point is one strength of the sweep (labelled with it); the baselines (identity:
    output = source; random target: a clip of the target genre) are the corners a transfer
    sits between. ``target`` draws the goal box (success and retrieval both at least that).
    Models without content retrieval (real data) are skipped; raises ValueError when none has it.

    Parameters
    ----------
    metrics_by_model : {name: metrics dict or loaded metrics.json}
    out_png : where the figure goes

    Returns
    -------
    Path of the PNG written
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(6.4, 5.2))           # not pyplot: a notebook's backend stays as it is
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    markers, drawn, baselines = {"shift": "o", "conditional": "s"}, 0, {}
    for model, metrics in metrics_by_model.items():
        for method, entries in (metrics.get("transfer") or {}).items():
            pts = [(e["content_retrieval"], e["success"], e["strength"]) for e in entries
                   if e.get("content_retrieval") is not None]
            if not pts:
                continue
            xs, ys, alphas = zip(*pts)
            line, = ax.plot(xs, ys, marker=markers.get(method, "^"), label=f"{model}: {method}")
            for x, y, a in pts:
                ax.annotate(f"{a:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                            color=line.get_color())
            drawn += 1
        for name, e in (metrics.get("baselines") or {}).items():
            if e.get("content_retrieval") is not None:
                baselines.setdefault(name, (e["content_retrieval"], e["success"]))
    if not drawn:
        raise ValueError("plot_transfer_curve: no model has content retrieval (synthetic data only)")
    for name, (x, y) in baselines.items():
        ax.scatter([x], [y], marker="*", s=120, color="black", zorder=3)
        ax.annotate(name.replace("_", " "), (x, y), textcoords="offset points", xytext=(-6, -12),
                    fontsize=8, ha="right" if x > 0.5 else "left")
    if target is not None:
        ax.add_patch(Rectangle((target, target), 1.05 - target, 1.05 - target, color="green",
                                   alpha=0.08, label=f"goal: both >= {target:g}"))
    ax.set(xlim=(-0.03, 1.05), ylim=(-0.03, 1.05), xlabel="content retrieval (same song found)",
           ylabel="transfer success (judge hears the target genre)",
           title="Genre transfer: success against content kept")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120, bbox_inches="tight")
    return out_png


# --------------------------------------------------------------------------- evaluating a model
def train_judge(loader, sr: int, out, seconds: float | None = None) -> GenreJudge:
    """Fit the judge on the training split's original clips of ``loader`` (a
    SlicingDataLoading.DataLoad), score it on the test split and save it to ``out``."""
    splits = loader.splits(BuildReport())

    def clips(records):
        load = clip_reader(records, sr, loader.cache, seconds)
        return [load(r) for r in records]

    judge = GenreJudge(n_jobs=2).fit(clips(splits["train"]), [r.label for r in splits["train"]], sr)
    judge.evaluate(clips(splits["test"]), [r.label for r in splits["test"]], sr)
    judge.to_file(out)
    return judge


def _other_genres(source_labels, n_genres: int, seed: int) -> list[int]:
    """A random target genre != source for each clip (seeded)."""
    rng = np.random.default_rng(seed)
    return [int((s + rng.integers(1, n_genres)) % n_genres) for s in source_labels]


def _heldout(records, sr: int, judge_sr: int, n_genres: int, reference_records=None, cache=None,
             max_seconds: float | None = None, seed: int = 0) -> dict:
    """The clips one evaluation scores: sources at the model's rate and at the judge's, labels,
    a seeded random other genre per clip, content ids, and (synthetic set) the chroma
    reference of every rendering with the pool it was built from."""
    load = clip_reader(records, sr, cache, max_seconds)
    sources = [load(r) for r in tqdm(records, desc="loading clips", leave=False)]
    labels = [r.label for r in records]
    content_ids = [r.content_id for r in records] if all(r.content_id is not None for r in records) else None
    pool = reference = None
    if reference_records is not None and content_ids is not None:
        pool = {(r.content_id, r.label): resample(load(r), sr, judge_sr) for r in reference_records}
        reference = ChromaReference.from_audio(pool, judge_sr)
    return {"sources": sources, "judged_sources": [resample(a, sr, judge_sr) for a in sources], "labels": labels,
            "targets": _other_genres(labels, n_genres, seed), "content_ids": content_ids, "pool": pool,
            "reference": reference}


def _own_genre_share(judge, outputs, sr: int, labels) -> float:
    """The share of ``outputs`` (at ``sr``) that the judge hears as their own ``labels``."""
    heard = judge.predict([resample(o, sr, judge.sr) for o in outputs], judge.sr)
    return float(np.mean(np.asarray(heard) == np.asarray(labels)))


def _reconstructions(tr, sources, labels, judge) -> tuple[dict, np.ndarray, np.ndarray, list]:
    """Each clip decoded with its own genre: the reconstruction error and the share the judge
    hears as that genre; each window's posterior (mu, logvar) for the latent diagnostics; and
    the reconstructions at the judge's rate."""
    pairs, mus, logvars = [], [], []
    for audio, s in zip(tqdm(sources, desc="reconstruction", leave=False), labels):
        # Conditional decoding at strength 0 is the plain reconstruction: one decode, one vocode.
        pairs.append((audio, tr.transfer_mono(audio, tr.genres[s], tr.genres[s], "conditional", 0.0)))
        mu, logvar = tr.encode_clip(audio)
        mus.append(mu)
        logvars.append(logvar)
    rec = mean_reconstruction(pairs, tr.audio, trim=True)
    judged = [resample(o, tr.audio.sample_rate, judge.sr) for _, o in pairs]
    rec["own_genre"] = _own_genre_share(judge, judged, judge.sr, labels)
    return rec, mus, logvars, judged


def _same_timing_renderings(records, targets, sr: int, max_seconds: float | None) -> list | None:
    """Synthetic set: each record's content in its target genre at its own tempo and swing."""
    import synthetic_gtzan
    root = records[0].path.parent.parent.parent
    if not (root / synthetic_gtzan.PARAMS).is_file() or any(r.content_id is None for r in records):
        return None
    limit = int(max_seconds * sr) if max_seconds else None
    return [synthetic_gtzan.timed_rendering(root, r.content_id, r.genre, GENRES[t], sr)[:limit]
            for r, t in zip(tqdm(records, desc="same-timing renderings", leave=False), targets)]


def evaluate_model(tr, records, judge, reference_records=None,
                   strengths: dict | None = None, seed: int = 0, max_seconds: float | None = None,
                   cache=None, model_info: dict | None = None, reconstruction_retrieval: bool = False) -> dict:
    """Transfer every clip of ``records`` to a random other genre and score it.

    Parameters
    ----------
    tr : transfer.GenreTransfer of the model under test
    records : SlicingDataLoading.FileRecord list (usually the test split)
    judge : a fitted GenreJudge
    reference_records : FileRecords of every rendering (synthetic set) for content
        retrieval and the same-timing baseline; None on real data
    strengths : {method: [alpha, ...]}; default shift 0.5 / 1 / 2 / 4 / 6, conditional 0.5 / 1 / 2
    max_seconds : evaluate the first seconds of each clip only (None: whole clips)
    reconstruction_retrieval : also the content retrieval of the reconstructions (with
        ``reference_records``; the chroma of every clip once more)

    Returns
    -------
    The metrics.json dict (:func:`build_metrics`), with per-clip targets under
    ``model["targets"]``.
    """
    strengths = strengths or {"shift": [0.5, 1.0, 2.0, 4.0, 6.0], "conditional": [0.5, 1.0, 2.0]}
    sr, judge_sr = tr.audio.sample_rate, judge.sr
    held = _heldout(records, sr, judge_sr, len(tr.genres), reference_records, cache, max_seconds, seed)
    sources, judged_sources, src_labels, tgt_labels, content_ids, pool, reference = (
        held[k] for k in ("sources", "judged_sources", "labels", "targets", "content_ids", "pool", "reference"))
    same_timing = None if reference is None else _same_timing_renderings(records, tgt_labels, judge_sr, max_seconds)

    def to_judge(x):
        return resample(x, sr, judge_sr)

    reconstruction, mus, logvars, recons = _reconstructions(tr, sources, src_labels, judge)
    if reconstruction_retrieval and reference is not None:
        reconstruction["content_retrieval"] = content_retrieval(recons, content_ids,
                                                                src_labels, reference, judge_sr)
    transfer = {}
    for method, alphas in strengths.items():
        transfer[method] = []
        for alpha in alphas:
            outs = [tr.transfer_mono(a, tr.genres[s], tr.genres[t], method, alpha)
                    for a, s, t in zip(tqdm(sources, desc=f"{method} {alpha:g}", leave=False), src_labels, tgt_labels)]
            scores = evaluate_transfer(judge, judged_sources, [to_judge(o) for o in outs],
                                       src_labels, tgt_labels, judge_sr, content_ids, reference)
            transfer[method].append({"strength": alpha, **scores})
    baselines = baseline_metrics(judge, judged_sources, src_labels, tgt_labels, judge_sr,
                                 content_ids, reference, pool=pool, seed=seed, same_timing=same_timing)
    win_labels = np.concatenate([[s] * len(m) for s, m in zip(src_labels, mus)])
    info = {"family": tr.model.family, "checkpoint_epoch": tr.state.get("epoch"),
            "clips": len(records), "targets": [tr.genres[t] for t in tgt_labels], **(model_info or {})}
    latent = {**latent_diagnostics(np.concatenate(mus), np.concatenate(logvars), win_labels),
              **tr.decoder_use(sources, src_labels)}
    return build_metrics(info, judge, transfer, baselines, reconstruction, latent)


def score_clips(clips, judge, reference_records=None, cache=None) -> dict:
    """Score :func:`transfer_clips` output with the project's yardstick (evaluation.py).

    Parameters
    ----------
    clips : transfer.ClipTransfers
    judge : a fitted GenreJudge
    reference_records : FileRecords of every rendering (synthetic set: all splits) for content
        retrieval; ignored (no retrieval) when the clips or these records carry no content ids
    cache : AudioCache to read the reference clips from (default: the data folder's)

    The judge and the chroma measures see the clips resampled to the judge's rate (as in
    :func:`evaluate_model`); the reconstruction error is measured at the model's rate.

    Returns
    -------
    dict shaped like metrics.json (:func:`summary_table` prints it): "model",
    "judge", "transfer" {method: [{"strength", "success", "target_prob",
    "content_chroma_corr", "content_retrieval", ...}]}, "baselines" {"identity"},
    "reconstruction" (or None), "clips" (names and target).
    """
    if getattr(judge, "sr", None) is None:
        raise ValueError("judge is not fitted: fit it (demo.train_judge) or load it (GenreJudge.from_file)")
    sr = judge.sr
    sources = [resample(a, clips.sr, sr) for a in clips.sources]
    targets = [clips.target_genre] * len(sources)
    content_ids = [r.content_id for r in clips.records]
    reference = None
    refs = [r for r in (reference_records or []) if r.genre == clips.target_genre and r.content_id is not None]
    if refs and all(c is not None for c in content_ids):
        load = clip_reader(refs, sr, cache, clips.max_seconds)
        reference = ChromaReference.from_audio({(r.content_id, r.genre): load(r) for r in refs}, sr)
    else:
        content_ids = None
    common = dict(judge=judge, sources=sources, source_genres=clips.source_genres,
                  target_genres=targets, sr=sr, content_ids=content_ids, reference=reference)
    transfer = {m: [{"strength": clips.strength,
                     **evaluate_transfer(outputs=[resample(o, clips.sr, sr) for o in outs], **common)}]
                for m, outs in clips.outputs.items()}
    recon = None
    if clips.reconstructions is not None:
        recon = mean_reconstruction(zip(clips.sources, clips.reconstructions), clips.audio, trim=True)
    return {"model": {"name": f"{clips.info.get('family', '?')} VAE", **clips.info},
            "judge": judge.info(), "transfer": transfer,
            "baselines": {"identity": evaluate_transfer(outputs=sources, **common)},
            "reconstruction": recon,
            "clips": {"files": [r.name for r in clips.records], "target_genre": clips.target_genre}}


def select_checkpoint(transfers: Mapping, records, judge, reference_records=None, max_seconds: float | None = 5.0,
                      cache=None, seed: int = 0, strengths=(1.0,)) -> tuple[str, float, list[dict]]:
    """Choose among one run's checkpoints, and the conditional strength to decode with, by what
    the judge hears on held-out clips.

    Each candidate decodes ``records`` (the validation split: the test split stays unseen)
    with the source genre and, at the first of ``strengths``, with a random other genre (the
    same targets for every candidate). Its score is the share of reconstructions the judge
    hears as their own genre + transfer success + content retrieval (without a reference, the
    chroma correlation with the source), the three figures the adversarial phase trades off.
    The winner alone then decodes the same transfers at each further strength (one pass each,
    not one per candidate), scored the same way with its own-genre share, and the best
    (checkpoint, strength) row is chosen.

    Parameters
    ----------
    transfers : {name: transfer.GenreTransfer}, e.g. best.pt and the kept epoch<N>.pt
    records, judge, reference_records, max_seconds, cache, seed : as :func:`evaluate_model`
    strengths : conditional strengths to try, the first for comparing checkpoints

    Returns
    -------
    (the chosen name, the chosen strength, one row per candidate and strength {"checkpoint",
    "epoch", "strength", "own_genre", "success", "content", "score"})
    """
    if not transfers:
        raise ValueError("select_checkpoint: no checkpoints to choose from")
    strengths = [float(s) for s in strengths]     # transfer_mono checks each
    if not strengths:
        raise ValueError("select_checkpoint: no strengths to try")
    first = next(iter(transfers.values()))
    sr, judge_sr, genres = first.audio.sample_rate, judge.sr, first.genres
    held = _heldout(records, sr, judge_sr, len(genres), reference_records, cache, max_seconds, seed)
    sources, labels, targets, reference = held["sources"], held["labels"], held["targets"], held["reference"]

    def row(name, tr, strength, own, outs):
        scores = evaluate_transfer(judge, held["judged_sources"], [resample(o, sr, judge_sr) for o in outs],
                                   labels, targets, judge_sr, held["content_ids"], reference)
        content = scores["content_retrieval"] if reference is not None else scores["content_chroma_corr"]
        return {"checkpoint": name, "epoch": tr.state.get("epoch"), "strength": strength, "own_genre": own,
                "success": scores["success"], "content": content, "score": own + scores["success"] + content}

    rows = []
    for name, tr in tqdm(transfers.items(), desc="choosing a checkpoint", leave=False):
        # one encoding per clip: the transfer and the reconstruction (decoded with the source genre)
        pairs = [tr.transfer_mono(a, genres[s], genres[t], "conditional", strengths[0], return_reconstruction=True)
                 for a, s, t in zip(sources, labels, targets)]
        own = _own_genre_share(judge, [rec for _, rec in pairs], sr, labels)
        rows.append(row(name, tr, strengths[0], own, [out for out, _ in pairs]))
    best = max(rows, key=lambda r: r["score"])
    tr = transfers[best["checkpoint"]]
    for strength in tqdm(strengths[1:], desc="choosing a strength", leave=False):
        outs = [tr.transfer_mono(a, genres[s], genres[t], "conditional", strength)
                for a, s, t in zip(sources, labels, targets)]
        rows.append(row(best["checkpoint"], tr, strength, best["own_genre"], outs))
    best = max(rows, key=lambda r: r["score"])
    return best["checkpoint"], best["strength"], rows
