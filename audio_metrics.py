"""Measures of audio: chroma-CENS content similarity and retrieval, reconstruction error, and time against a reference (onsets, sharpness).

Every measure takes numpy audio (mono [T]) at a given sample rate and knows nothing of the
models; :mod:`evaluation` scores transfers with them, :mod:`judge` shares their input checks.

- content: :func:`content_similarity`, the chroma-CENS (:func:`chroma_cens`) correlation of
  two clips, maximised over tempo ratios in [1/3, 3]; on the synthetic set
  :func:`content_retrieval`, the share of outputs whose nearest target-genre rendering
  (:class:`ChromaReference`) is their own content;
- reconstruction: log-mel L1 in dB and :func:`spectral_convergence`
  (:func:`reconstruction_metrics`, :func:`mean_reconstruction`);
- time against a reference (:func:`time_metrics`, :func:`mean_time_metrics`): onset precision,
  recall and F1 within 50 ms, onset sharpness (:func:`onset_sharpness`), log-mel L1 with an
  80 dB floor; a transfer against the aligned truth, a reconstruction against its source;
- the input checks of every measure (mono audio, sample rate, matching lengths, genre
  labels: :func:`genre_index`), used by the judge and the latent diagnostics too.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import librosa
import numpy as np
import torch
from tqdm.auto import tqdm

from prepare_data import AudioConfig, mel_db
from SlicingDataLoading import GENRES

MIN_SECONDS = 1.0                # shortest clip the judge and the chroma accept
N_FFT, HOP = 2048, 512           # the judge's and the chroma's analysis frames (at the judge's sr)
CENS_DOWNSAMPLE = 4              # keep every 4th CENS frame (~10.8 frames/s): CENS is smoothed over ~1 s
CONTENT_MAX_STRETCH = 3.0        # tempo ratios searched by content_similarity: [1/3, 3]
STRETCH_STEPS = 121
MIN_OVERLAP_SECONDS = 2.0        # a stretch must overlap the other clip this long


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


def _best_pearsons(versions: list, refs: list, min_frames: int) -> np.ndarray:
    """:func:`_best_pearson` of ``versions`` with each of ``refs`` ([12, F_k] each), as one
    matrix product per stretch for the references of equal length (retrieval compares every
    output with every rendering of its target genre; pair by pair that loop was the
    evaluation's largest cost). The same correlations, to rounding."""
    best = np.empty(len(refs))
    by_len: dict = {}
    for k, r in enumerate(refs):
        by_len.setdefault(r.shape[1], []).append(k)
    for n_frames, idx in by_len.items():
        R = np.stack([refs[k] for k in idx]).astype(np.float64)        # (N, 12, F)
        # sums and sums of squares over the first f frames, for every f: O(1) centring per trim
        s1 = np.concatenate([np.zeros((len(idx), 1)), np.cumsum(R.sum(axis=1), axis=1)], axis=1)
        s2 = np.concatenate([np.zeros((len(idx), 1)), np.cumsum((R * R).sum(axis=1), axis=1)], axis=1)
        top = np.full(len(idx), -np.inf)
        for j, v in enumerate(versions):
            f = min(v.shape[1], n_frames)
            if j > 0 and f < min_frames:
                continue
            x = v[:, :f].astype(np.float64)
            x = x - x.mean()
            num = np.einsum("nkf,kf->n", R[:, :, :f], x)                  # sum (y - mean y) x = sum y x; no copy
            var_y = np.maximum(s2[:, f] - s1[:, f] ** 2 / x.size, 0.0)
            denom = np.sqrt(float(np.vdot(x, x)) * var_y)
            r = np.where(denom > 0, np.clip(num / np.where(denom > 0, denom, 1.0), -1.0, 1.0), 0.0)
            top = np.maximum(top, r)
        best[idx] = top
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
        sims = _best_pearsons(versions, [ref.cens[(c, g)] for c in candidates], min_frames)
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



# --------------------------------------------------------------------------- time, against a reference
# A transfer that keeps the song's time has its onsets where the aligned truth (the same content
# rendered in the target genre at the source clip's timing) has them, and as sharp. The judge's
# and the chroma's features average over the clip and cannot hear a smear; these measures can.
ONSET_TOLERANCE = 0.05           # seconds: an output onset this close to a reference onset is a hit
TIME_DB_FLOOR = -80.0            # the log-mel L1 floors both sides here (dB re full scale)


def onset_envelope(audio, sr: int) -> np.ndarray:
    """librosa's onset strength (spectral flux of the log-mel) of a mono clip, one value per HOP samples."""
    return librosa.onset.onset_strength(y=_as_audio(audio, "audio"), sr=_check_sr(sr), hop_length=HOP)


def onset_times(audio, sr: int, envelope: np.ndarray | None = None) -> np.ndarray:
    """Onset times in seconds (librosa's peak picker on :func:`onset_envelope`)."""
    env = onset_envelope(audio, sr) if envelope is None else envelope
    return librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=HOP, units="time")


def onset_sharpness(envelope: np.ndarray) -> float:
    """How peaked an onset envelope is: its 95th percentile over its median. Crisp hits over a
    quiet floor score high (the synthetic renderings about 13); a smear of the same energy is flat."""
    env = np.asarray(envelope, dtype=np.float64)
    return float(np.percentile(env, 95) / max(float(np.median(env)), 1e-8))


def onset_scores(reference_onsets, output_onsets, tolerance: float = ONSET_TOLERANCE) -> dict:
    """Precision, recall and F1 of ``output_onsets`` against ``reference_onsets`` (seconds), each
    reference onset matched to at most one output onset within ``tolerance`` (mir_eval's
    bipartite matching, as in the MIREX onset task)."""
    import mir_eval
    ref, out = np.asarray(reference_onsets, dtype=float), np.asarray(output_onsets, dtype=float)
    if ref.size == 0 or out.size == 0:               # mir_eval warns and scores 0: say it plainly
        return {"onset_precision": 0.0, "onset_recall": 0.0, "onset_f1": float(ref.size == out.size == 0)}
    f1, precision, recall = mir_eval.onset.f_measure(ref, out, window=tolerance)
    return {"onset_precision": float(precision), "onset_recall": float(recall), "onset_f1": float(f1)}


def _time_mel_config(sr: int) -> AudioConfig:
    return AudioConfig(sample_rate=sr, n_fft=N_FFT, hop_length=HOP, db_min=TIME_DB_FLOOR)


class TimeReference:
    """What :func:`time_metrics` needs of one reference clip, computed once: its onsets, onset
    sharpness and log-mel in dB (at the judge's analysis frames)."""

    def __init__(self, audio, sr: int):
        self.audio, self.sr = _as_audio(audio, "reference"), _check_sr(sr)
        env = onset_envelope(self.audio, sr)
        self.onsets, self.sharpness = onset_times(self.audio, sr, env), onset_sharpness(env)
        self.mel_db = mel_db(torch.from_numpy(self.audio), _time_mel_config(sr))

    def logmel_l1(self, audio) -> float:
        """Mean |log-mel difference| in dB between ``audio`` [T] and this reference (common length)."""
        out = mel_db(torch.from_numpy(_as_audio(audio, "output")), _time_mel_config(self.sr))
        n = min(self.mel_db.shape[-1], out.shape[-1])
        return float((self.mel_db[..., :n] - out[..., :n]).abs().mean())


def time_metrics(reference, output, sr: int) -> dict:
    """How well ``output`` keeps the time of ``reference`` (mono clips [T] at ``sr``; the common
    length is compared).

    Parameters
    ----------
    reference : [T] array or a :class:`TimeReference` (reused across outputs)
    output : [T] array

    Returns
    -------
    {"onset_precision", "onset_recall", "onset_f1": output onsets against the reference's
     (:data:`ONSET_TOLERANCE`), "onset_sharpness": the output's (:func:`onset_sharpness`),
     "logmel_l1_db": mean |log-mel difference| in dB, both floored at :data:`TIME_DB_FLOOR`}
    """
    ref = reference if isinstance(reference, TimeReference) else TimeReference(reference, sr)
    out = _as_audio(output, "output")
    env = onset_envelope(out, sr)
    return {**onset_scores(ref.onsets[ref.onsets < len(out) / sr], onset_times(out, sr, env)),
            "onset_sharpness": onset_sharpness(env), "logmel_l1_db": ref.logmel_l1(out)}


def mean_time_metrics(references, outputs, sr: int) -> dict:
    """:func:`time_metrics` of each (reference, output) pair, averaged, with the references' mean
    sharpness (``reference_sharpness``), ``n``, and ``per_clip_logmel_l1_db`` (a list, for
    comparing two outputs clip by clip)."""
    _check_lengths(references=references, outputs=outputs)
    refs = [r if isinstance(r, TimeReference) else TimeReference(r, sr) for r in references]
    rows = [time_metrics(r, o, sr) for r, o in zip(refs, outputs)]
    means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return {**means, "reference_sharpness": float(np.mean([r.sharpness for r in refs])), "n": len(rows),
            "per_clip_logmel_l1_db": [r["logmel_l1_db"] for r in rows]}
