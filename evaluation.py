"""Evaluation: scoring a model with the yardstick, one metrics.json for every model.

Nothing here knows how a model is built: :func:`evaluate_model` drives any
:class:`transfer.GenreTransfer`, so every family and experiment is scored the same way and
reports one ``metrics.json``. The measures live a floor below, each in its own module:

- judge (:mod:`judge`): :class:`GenreJudge`, a genre classifier independent of the VAEs,
  trained on original training clips; transfer success is the share of outputs it assigns
  to the target genre (:func:`evaluate_transfer`);
- content and reconstruction (:mod:`audio_metrics`): tempo-invariant chroma-CENS content
  similarity, content retrieval on the synthetic set, log-mel L1 and spectral convergence;
- time (:mod:`audio_metrics`, synthetic set): each transfer against the aligned truth, the
  same content rendered in the target genre at the source clip's tempo and swing (onset
  precision / recall / F1, onset sharpness, log-mel L1, the share of clips nearer the truth
  than the source is); each reconstruction against its source;
- latent (:mod:`latent_metrics`): kNN genre accuracy and silhouette of mu, active units,
  KL per dimension;
- baselines (:func:`baseline_metrics`): identity (content ~ 1, success ~ 0), a random
  clip of the target genre (success ~ judge accuracy, content ~ chance), and on the
  synthetic set the aligned truth itself and a second draw of the target genre at the same
  timing (what even a perfect transfer still differs by); real transfer sits between.

The public names of those modules stay importable from here, the same objects (``__all__``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from audio_io import resample
from SlicingDataLoading import GENRES, atomic_write, clip_reader

# The measures, from their homes. Their public names are re-exported (see __all__): the
# public API of evaluation before it was split (issue 29).
from audio_metrics import (CENS_DOWNSAMPLE, CONTENT_MAX_STRETCH, HOP, MIN_OVERLAP_SECONDS, MIN_SECONDS, N_FFT,
                           STRETCH_STEPS, ChromaReference, _as_audio_list, _as_reference, _best_pearson,
                           _check_lengths, _check_sr, _genre_indices, _min_overlap_frames, _retrieval_hits,
                           _stretched, chroma_cens, chroma_cens_many, content_retrieval, content_similarity,
                           genre_index, mean_reconstruction, mean_time_metrics, reconstruction_metrics,
                           spectral_convergence, TimeReference)
from judge import (JUDGE_FEATURE_NAMES, N_MFCC, SINGLE_FEATURES, TEMPO_BANDS_BPM, TEMPOGRAM_WIN, GenreJudge,
                   extract_features, judge_features, single_feature, single_feature_accuracy, split_by_content,
                   train_judge)
from latent_metrics import (ACTIVE_THRESHOLD, active_units, kl_per_dim, label_array, latent_diagnostics,
                            latent_matrix, separation_metrics, variance_per_dim)

__all__ = [
    # scoring a model: defined here
    "SCHEMA_VERSION", "TRANSFER_KEYS", "evaluate_transfer", "baseline_metrics", "build_metrics", "to_jsonable",
    "write_metrics", "read_metrics", "summary_table", "plot_transfer_curve", "evaluate_model", "score_clips",
    "select_checkpoint",
    # re-exported from judge
    "N_MFCC", "TEMPO_BANDS_BPM", "TEMPOGRAM_WIN", "SINGLE_FEATURES", "JUDGE_FEATURE_NAMES", "judge_features",
    "extract_features", "GenreJudge", "split_by_content", "train_judge", "single_feature", "single_feature_accuracy",
    # re-exported from audio_metrics
    "MIN_SECONDS", "N_FFT", "HOP", "CENS_DOWNSAMPLE", "CONTENT_MAX_STRETCH", "STRETCH_STEPS", "MIN_OVERLAP_SECONDS",
    "genre_index", "chroma_cens", "chroma_cens_many", "content_similarity", "ChromaReference", "content_retrieval",
    "spectral_convergence", "reconstruction_metrics", "mean_reconstruction",
    # re-exported from latent_metrics
    "ACTIVE_THRESHOLD", "latent_matrix", "label_array", "variance_per_dim", "active_units", "kl_per_dim",
    "separation_metrics", "latent_diagnostics",
]

SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- transfer
def evaluate_transfer(judge: GenreJudge, sources, outputs, source_genres, target_genres, sr: int,
                      content_ids=None, reference=None, truth=None) -> dict:
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
    truth : [N] the aligned truth of each transfer ([T] arrays at ``sr`` or
        :class:`audio_metrics.TimeReference`; synthetic set), or None

    Returns
    -------
    {"success": share judged as the target genre,
     "judged_source": share judged as the source genre (the output kept its genre),
     "target_prob": mean judge probability of the target genre,
     "content_chroma_corr": mean :func:`content_similarity` of source and output,
     "content_retrieval": :func:`content_retrieval` or None,
     "content_retrieval_chance": 1 / contents per genre in the reference, or None,
     "n": N, and with ``truth`` the time of the outputs against it (:func:`_time_scores`):
     "onset_precision", "onset_recall", "onset_f1", "onset_sharpness", "truth_onset_sharpness",
     "truth_logmel_l1_db", "nearer_truth_than_source"}
    """
    return _evaluate(judge, sources, outputs, source_genres, target_genres, sr, content_ids, reference,
                     _ChromaMemo(sr), truth)


class _ChromaMemo:
    """CENS (and its stretched versions) of clips already seen in this evaluation, and the time
    references of aligned truths with their log-mel L1 to sources, keyed by array identity;
    the arrays are kept alive here, so an id is never reused meanwhile."""

    def __init__(self, sr: int):
        self.sr, self.cens, self.versions, self.cens_time, self.l1 = sr, {}, {}, {}, {}

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

    def time_references(self, truth) -> list:
        """:class:`TimeReference` of each aligned truth (built once per array)."""
        out = []
        for t in truth:
            if not isinstance(t, TimeReference):
                if id(t) not in self.cens_time:
                    self.cens_time[id(t)] = (t, TimeReference(t, self.sr))
                t = self.cens_time[id(t)][1]
            out.append(t)
        return out

    def truth_l1(self, truth: TimeReference, audio: np.ndarray) -> float:
        key = (id(truth), id(audio))
        if key not in self.l1:
            self.l1[key] = (truth, audio, truth.logmel_l1(audio))
        return self.l1[key][2]


def _evaluate(judge, sources, outputs, source_genres, target_genres, sr, content_ids, reference,
              memo: _ChromaMemo, truth=None) -> dict:
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
    if truth is not None:
        result.update(_time_scores(truth, sources, outputs, sr, memo))
    return result


def _time_scores(truth, sources, outputs, sr: int, memo: _ChromaMemo) -> dict:
    """The outputs' time against their aligned truth (:func:`audio_metrics.mean_time_metrics`),
    and the share of clips whose output is nearer the truth than its source is (log-mel L1)."""
    _check_lengths(truth=truth, outputs=outputs)
    truth = memo.time_references(truth)
    t = mean_time_metrics(truth, outputs, sr)
    source_l1 = [memo.truth_l1(r, s) for r, s in zip(truth, sources)]
    return {"onset_precision": t["onset_precision"], "onset_recall": t["onset_recall"], "onset_f1": t["onset_f1"],
            "onset_sharpness": t["onset_sharpness"], "truth_onset_sharpness": t["reference_sharpness"],
            "truth_logmel_l1_db": t["logmel_l1_db"],
            "nearer_truth_than_source": float(np.mean(np.asarray(t["per_clip_logmel_l1_db"]) < source_l1))}


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
                     reference=None, pool: Mapping | None = None, seed: int = 0, same_timing=None,
                     second_draw=None) -> dict:
    """The reference points, scored with :func:`evaluate_transfer`.

    * ``identity``: output = source (content ~ 1, success ~ 0 when target != source);
    * ``random_target``: output = a random clip of the target genre with another content
      (success ~ judge accuracy, content retrieval ~ 0, below chance, since the nearest
      rendering is that other content);
    * ``same_timing`` (given ``same_timing``, the outputs): the same content rendered in the
      target genre at the source clip's tempo and swing (synthetic set only), the ceiling
      of a transfer that keeps the song's timing; it is also the aligned truth that every
      baseline's time is measured against;
    * ``second_draw`` (given ``second_draw``, the outputs): the same content and timing in
      the target genre with the genre's other parameters drawn again (another seed): how
      far even a perfect transfer lands from one rendering of the truth.

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
                  sr=sr, content_ids=content_ids, reference=ref, memo=_ChromaMemo(sr), truth=same_timing)
    out = {"identity": _evaluate(outputs=sources, **common),
           "random_target": _evaluate(outputs=_random_target_clips(pool, ids, target_genres, seed), **common)}
    if same_timing is not None:
        out["same_timing"] = _evaluate(outputs=[t.audio if isinstance(t, TimeReference) else t for t in same_timing],
                                       **common)
    if second_draw is not None:
        out["second_draw"] = _evaluate(outputs=second_draw, **common)
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
                                    "content_retrieval", "content_retrieval_chance", "n", and on the
                                    synthetic set "onset_precision", "onset_recall", "onset_f1",
                                    "onset_sharpness", "truth_onset_sharpness", "truth_logmel_l1_db",
                                    "nearer_truth_than_source"}, ...]},
         "baselines": {"identity": {...}, "random_target": {...}, "same_timing": {...} and
                       "second_draw": {...} (synthetic)},
         "reconstruction": {"logmel_l1_db", "spectral_convergence", "own_genre", "n",
             "onset_precision", "onset_recall", "onset_f1", "onset_sharpness" (against the
             source), "source_onset_sharpness" (and "content_retrieval" when asked)} or null,
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
              f"{'retrieval':>10}{'chance':>8}{'onset F1':>9}{'sharp':>7}{'L1 truth':>9}{'nearer':>7}{'n':>6}")
    lines += [header, "-" * len(header)]
    rows = [(name, None, e) for name, e in (metrics.get("baselines") or {}).items()]
    rows += [(m, e.get("strength"), e) for m, entries in (metrics.get("transfer") or {}).items() for e in entries]
    for name, strength, e in rows:
        lines.append(f"{name:<16}{_fmt(strength, '.2f'):>9}{_fmt(e.get('success')):>9}"
                     f"{_fmt(e.get('judged_source')):>8}{_fmt(e.get('target_prob')):>8}"
                     f"{_fmt(e.get('content_chroma_corr')):>8}{_fmt(e.get('content_retrieval')):>10}"
                     f"{_fmt(e.get('content_retrieval_chance')):>8}{_fmt(e.get('onset_f1')):>9}"
                     f"{_fmt(e.get('onset_sharpness'), '.1f'):>7}{_fmt(e.get('truth_logmel_l1_db'), '.2f'):>9}"
                     f"{_fmt(e.get('nearer_truth_than_source'), '.2f'):>7}{_fmt(e.get('n'), 'd'):>6}")
    truth_sharpness = [e["truth_onset_sharpness"] for _, _, e in rows if e.get("truth_onset_sharpness") is not None]
    if truth_sharpness:
        lines += [f"time against the aligned truth (the content in the target genre at the source's timing): "
                  f"onset F1 within 50 ms, onset sharpness (the truth's: {_fmt(truth_sharpness[0], '.1f')}), "
                  f"log-mel L1 in dB, share of clips nearer the truth than the source is"]
    rec = metrics.get("reconstruction")
    if rec:
        lines += ["", f"reconstruction: log-mel L1 {_fmt(rec.get('logmel_l1_db'), '.2f')} dB, "
                      f"spectral convergence {_fmt(rec.get('spectral_convergence'))}, "
                      f"judged as its own genre {_fmt(rec.get('own_genre'))}"
                      + (f", content retrieval {_fmt(rec['content_retrieval'])}" if "content_retrieval" in rec else "")]
        if "onset_f1" in rec:
            lines += [f"reconstruction against its source: onset F1 {_fmt(rec['onset_f1'])} (precision "
                      f"{_fmt(rec['onset_precision'])}, recall {_fmt(rec['onset_recall'])}), onset sharpness "
                      f"{_fmt(rec['onset_sharpness'], '.1f')} (sources {_fmt(rec['source_onset_sharpness'], '.1f')})"]
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


def _reconstructions(tr, sources, labels, judge, judged_sources=None) -> tuple[dict, np.ndarray, np.ndarray, list]:
    """Each clip decoded with its own genre: the reconstruction error, the share the judge
    hears as that genre and (given the sources at the judge's rate) their time against the
    sources; each window's posterior (mu, logvar) for the latent diagnostics; and the
    reconstructions at the judge's rate."""
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
    if judged_sources is not None:
        t = mean_time_metrics(judged_sources, judged, judge.sr)
        rec.update({k: t[k] for k in ("onset_precision", "onset_recall", "onset_f1", "onset_sharpness")},
                   source_onset_sharpness=t["reference_sharpness"])
    return rec, mus, logvars, judged


def _same_timing_renderings(records, targets, sr: int, max_seconds: float | None, draws=(0,)) -> list | None:
    """Synthetic set: each record's content in its target genre at its own tempo and swing, one
    list per draw in ``draws`` (0: the dataset's own; k > 0: the genre's other parameters drawn
    again, see synthetic_gtzan.timed_rendering), rendered in parallel; None on other data."""
    import synthetic_gtzan
    root = records[0].path.parent.parent.parent
    if not (root / synthetic_gtzan.PARAMS).is_file() or any(r.content_id is None for r in records):
        return None
    limit = int(max_seconds * sr) if max_seconds else None
    clips = [(r.content_id, r.genre, GENRES[t], d) for d in draws for r, t in zip(records, targets)]
    audio = [a[:limit] for a in synthetic_gtzan.timed_renderings(root, clips, sr)]
    return [audio[i * len(records):(i + 1) * len(records)] for i in range(len(draws))]


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
    same_timing = second_draw = truth = None
    if reference is not None:
        same_timing, second_draw = _same_timing_renderings(records, tgt_labels, judge_sr, max_seconds,
                                                           draws=(0, 1)) or (None, None)
        truth = None if same_timing is None else [TimeReference(a, judge_sr) for a in same_timing]

    def to_judge(x):
        return resample(x, sr, judge_sr)

    reconstruction, mus, logvars, recons = _reconstructions(tr, sources, src_labels, judge, judged_sources)
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
                                       src_labels, tgt_labels, judge_sr, content_ids, reference, truth)
            transfer[method].append({"strength": alpha, **scores})
    baselines = baseline_metrics(judge, judged_sources, src_labels, tgt_labels, judge_sr,
                                 content_ids, reference, pool=pool, seed=seed, same_timing=truth,
                                 second_draw=second_draw)
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
    chroma correlation with the source) + the transfers' onset F1 against the aligned truth
    (without one, against the source's onsets): the figures the adversarial phase trades
    off, and the time that the judge cannot hear, so a smeared epoch does not win on the
    judge's word alone.
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
    "epoch", "strength", "own_genre", "success", "content", "onset_f1", "score"})
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
    # the time reference of each transfer: its aligned truth (synthetic set), else its source
    timing = _same_timing_renderings(records, targets, judge_sr, max_seconds) if reference is not None else None
    truth = [TimeReference(a, judge_sr) for a in (timing[0] if timing else held["judged_sources"])]

    def row(name, tr, strength, own, outs):
        scores = evaluate_transfer(judge, held["judged_sources"], [resample(o, sr, judge_sr) for o in outs],
                                   labels, targets, judge_sr, held["content_ids"], reference, truth)
        content = scores["content_retrieval"] if reference is not None else scores["content_chroma_corr"]
        return {"checkpoint": name, "epoch": tr.state.get("epoch"), "strength": strength, "own_genre": own,
                "success": scores["success"], "content": content, "onset_f1": scores["onset_f1"],
                "score": own + scores["success"] + content + scores["onset_f1"]}

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
