"""The genre judge: a genre classifier independent of the VAEs, its features and its training.

librosa summary features (:func:`judge_features`, names in ``JUDGE_FEATURE_NAMES``) ->
StandardScaler -> logistic regression (:class:`GenreJudge`), fitted on original clips of the
training split (:func:`train_judge`) and saved as arrays only. :func:`split_by_content`
holds whole contents out; :func:`single_feature_accuracy` is the control that no single cue
(tempo, loudness, centroid) tells the genres apart.
"""
from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
from tqdm.auto import tqdm

from audio_metrics import HOP, MIN_SECONDS, N_FFT, _as_audio, _as_audio_list, _check_lengths, _check_sr, _genre_indices
from cli import InputError, one_line
from SlicingDataLoading import GENRES, BuildReport, atomic_write, clip_reader

N_MFCC = 20
TEMPO_BANDS_BPM = np.geomspace(40.0, 320.0, 10)   # edges of the 9 tempogram bands
TEMPOGRAM_WIN = 256              # onset frames (~6 s at 22.05 kHz / 512)
SINGLE_FEATURES = ("tempo", "rms", "centroid")
_FEATURE_VERSION = 1             # bump when judge_features changes: saved judges check it


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


# --------------------------------------------------------------------------- training the judge
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
