"""Where the genres sit in a VAE's latent space, and whether the VAE is going lazy.

    python -m LatentSpaceInterpretation.latent_space --checkpoint vae_logs/mel/best.pt \
        --data Data/synthetic --split test --out vae_logs/mel/latent_space

Works for a checkpoint of either family (mel or wave): clips are encoded with
:meth:`transfer.GenreTransfer.encode_clip` and moved along genre directions with
:meth:`transfer.GenreTransfer.transfer_mono`, so nothing here knows how a family builds
its input. Every number is computed on the posterior means mu, time-averaged over each
analysis window (one training segment long) or over a whole clip.

Outputs of :func:`analyse` (one figure per question, and ``latent_space.json``)
-------------------------------------------------------------------------------
embedding_pca.png, embedding_tsne.png   mu in 2-D (PCA, t-SNE), coloured by genre
genre_cosine.png                        cosine similarity of the genre attribute vectors
genre_spread.png                        RMS radius of each genre against centroid distances
latent_units.png                        variance of mu and KL per dimension (active units)
training_history.png                    active units, KL, beta and reconstruction per epoch
                                        from the trainer's log.csv; a collapse is marked
transfer_path.png, path_alpha_*.wav     one clip shifted by alpha x attribute vector,
                                        decoded, with the judge's target-genre probability

Public API
----------
LatentSet                                    encoded split: mu, logvar [N, D], labels, clip index
newest_checkpoint(root)                      newest best.pt under a folder (trainer.newest_checkpoint)
split_records(loader, split)                 FileRecords of "train" | "valid" | "test" | "all"
encode_records(tr, records, cache, level)    one time-averaged mu per window or per clip
embed_2d(mu, method, seed)                   [N, D] -> [N, 2] with "pca" or "tsne"
separation_metrics(mu, labels, groups, k)    silhouette and kNN genre accuracy (evaluation.separation_metrics)
genre_spread(mu, labels, genres)             per-genre RMS radius and distances between centroids
genre_means(mu, labels, n_genres)            [G, D] per-genre mean of mu
attribute_vectors(means)                     genre mean minus the overall mean, [G, D]
cosine_matrix(vectors)                       [G, D] -> [G, G] cosine similarities
variance_per_dim(mu), active_units(mu, threshold), kl_per_dim(mu, logvar)   (from evaluation)
read_log(log_csv)                            the trainer's log.csv as {column: float array}
collapse_epoch(history, latent_dim, fraction) first epoch of a collapse that lasts to the end
ensure_judge(judge, tr, loader, out)         a GenreJudge: given, beside the checkpoint, or fitted
path_pairs(records, n_genres, n)             (record, target genre) pairs spread over genres
transfer_path(tr, audio, source, target, alphas, judge)
mean_transfer_path(tr, clips, pairs, alphas, judge)
plot_embedding, plot_cosine_matrix, plot_spread, plot_units, plot_history, plot_transfer_path
analyse(checkpoint, data, split, out, ...)   all of the above -> figures and latent_space.json
summary(result)                              its headline numbers as text
main(argv)                                   the command line

UMAP is not used (it is not a dependency); PCA and t-SNE come from scikit-learn.
"""
from __future__ import annotations

import csv
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:                     # run as a script or from the notebook's folder
    sys.path.insert(0, str(_ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import evaluation as ev  # noqa: E402
from cli import ArgumentParser, InputError, run  # noqa: E402
from audio_io import save_wav  # noqa: E402
from latent_metrics import (ACTIVE_THRESHOLD, label_array, latent_matrix, active_units, kl_per_dim,  # noqa: E402
                            separation_metrics, variance_per_dim)
from SlicingDataLoading import GENRES, SPLITS, BadAudioError, BuildReport, DataLoad, clip_reader  # noqa: E402
from trainer import newest_checkpoint  # noqa: E402
from transfer import GenreTransfer  # noqa: E402
DEFAULT_ALPHAS = (0.0, 0.5, 1.0, 1.5, 2.0)
LEVELS = ("window", "clip")
METHODS_2D = ("pca", "tsne")
RESULTS_FILE = "latent_space.json"


# --------------------------------------------------------------------------- encoding
@dataclass
class LatentSet:
    """An encoded split.

    Attributes
    ----------
    mu, logvar : float64 [N, D], time-averaged posterior parameters, one row per window or clip
    labels : int [N], genre index of each row (into ``genres``)
    clip : int [N], index of each row's clip in ``names``
    names : clip names (GTZAN ids such as ``"blues.00029"``)
    genres : genre names of the model, in label order
    level : "window" or "clip"
    """
    mu: np.ndarray
    logvar: np.ndarray
    labels: np.ndarray
    clip: np.ndarray
    names: list
    genres: list
    level: str

    def __len__(self) -> int:
        return len(self.labels)


def split_records(loader: DataLoad, split: str) -> list:
    """FileRecords of one split of ``loader`` ("train", "valid", "test") or of all ("all")."""
    if split != "all" and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS + ('all',)}")
    splits = loader.splits(BuildReport())
    records = [r for s in SPLITS for r in splits[s]] if split == "all" else list(splits[split])
    if not records:
        raise InputError(f"split {split!r} of {loader.data_root} holds no usable clips")
    return records


def encode_records(tr, records, cache, level: str = "window", max_seconds: float | None = None,
                   progress: bool = True) -> LatentSet:
    """Encode clips with a model of either family.

    Each clip is encoded with :meth:`~transfer.GenreTransfer.encode_clip` in back-to-back
    windows of one training segment, leaving out a mostly-padding last window; each
    window's mu and logvar are averaged over time.
    ``level="clip"`` averages a clip's windows into one row. A file that cannot be decoded
    is skipped with a warning naming it.

    Parameters
    ----------
    tr : transfer.GenreTransfer
    records : SlicingDataLoading.FileRecord list
    cache : SlicingDataLoading.AudioCache that decodes them
    level : "window" or "clip"
    max_seconds : use only the first seconds of each clip (None: all of it)

    Returns
    -------
    LatentSet with N = number of windows (or clips) and D = the latent dimension.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose from {LEVELS}")
    load = clip_reader(records, tr.audio.sample_rate, cache, max_seconds)
    mus, logvars, labels, clips, names = [], [], [], [], []
    for rec in tqdm(records, desc=f"encoding {level}s", unit="clip", disable=not progress, leave=False):
        try:
            audio = load(rec)
        except BadAudioError as err:
            warnings.warn(f"skipped {err}", stacklevel=2)
            continue
        mu, logvar = tr.encode_clip(audio, partial=False)                   # (W, D), whole windows only
        if level == "clip":
            mu, logvar = mu.mean(0, keepdims=True), logvar.mean(0, keepdims=True)
        mus.append(mu)
        logvars.append(logvar)
        labels += [tr.genre_index(rec.genre)] * len(mu)
        clips += [len(names)] * len(mu)
        names.append(rec.name)
    if not mus:
        raise ValueError("no clip could be encoded (every file was skipped)")
    return LatentSet(np.concatenate(mus).astype(np.float64), np.concatenate(logvars).astype(np.float64),
                     np.array(labels), np.array(clips), names, list(tr.genres), level)


# --------------------------------------------------------------------------- 2-D views
def embed_2d(mu, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, dict]:
    """Reduce mu [N, D] to [N, 2].

    Parameters
    ----------
    mu : [N, D]
    method : "pca" (linear; axes keep their meaning) or "tsne" (neighbourhoods only;
        distances between clusters mean little). Perplexity is min(30, (N - 1) / 3).
    seed : random state of t-SNE (PCA is deterministic)

    Returns
    -------
    (xy float64 [N, 2], info) where info holds ``explained_variance`` (PCA) or
    ``perplexity`` (t-SNE). A latent with one dimension gets a zero second coordinate.
    """
    mu = latent_matrix(mu, "mu")
    n, d = mu.shape
    if method == "pca":
        from sklearn.decomposition import PCA
        k = min(2, d, n)
        pca = PCA(n_components=k).fit(mu)
        xy = pca.transform(mu)
        info = {"explained_variance": pca.explained_variance_ratio_.tolist()}
    elif method == "tsne":
        if n < 4:
            raise ValueError(f"t-SNE needs at least 4 points, got {n}")
        from sklearn.manifold import TSNE
        perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(mu)
        info = {"perplexity": perplexity}
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS_2D}")
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    return np.asarray(xy, dtype=np.float64), info


# --------------------------------------------------------------------------- separation
def genre_means(mu, labels, n_genres: int) -> np.ndarray:
    """[G, D] mean of mu per genre index 0..G-1 (NaN rows for genres with no rows)."""
    mu = latent_matrix(mu, "mu")
    y = label_array(labels, len(mu))
    means = np.full((n_genres, mu.shape[1]), np.nan)
    for gi in range(n_genres):
        if np.any(y == gi):
            means[gi] = mu[y == gi].mean(0)
    return means


def genre_spread(mu, labels, genres=GENRES) -> dict:
    """How wide each genre's cloud is, against how far apart the clouds sit.

    Parameters
    ----------
    mu : [N, D]
    labels : [N] genre indices into ``genres``
    genres : genre names in label order

    Returns
    -------
    {"per_genre": {genre: RMS distance of its rows to its centroid} (present genres only),
     "mean_radius": mean of those,
     "mean_centroid_distance": mean euclidean distance between two genre centroids,
     "radius_to_distance": mean_radius / mean_centroid_distance (below ~0.5: the clouds
        stand apart; ~1 or more: they overlap),
     "nearest_genre": {genre: the genre with the nearest centroid}}
    """
    mu = latent_matrix(mu, "mu")
    y = label_array(labels, len(mu)).astype(int)
    if y.min() < 0 or y.max() >= len(genres):
        raise ValueError(f"labels must be genre indices 0..{len(genres) - 1}, got {y.min()}..{y.max()}")
    present = [gi for gi in range(len(genres)) if np.any(y == gi)]
    cents = np.stack([mu[y == gi].mean(0) for gi in present])                # (P, D)
    radius = {genres[gi]: float(np.sqrt(np.mean(np.sum((mu[y == gi] - c) ** 2, axis=1))))
              for gi, c in zip(present, cents)}
    dist = np.sqrt(((cents[:, None] - cents[None]) ** 2).sum(-1))           # (P, P)
    pairs = dist[np.triu_indices(len(present), 1)]
    mean_dist = float(pairs.mean()) if pairs.size else float("nan")
    np.fill_diagonal(dist, np.inf)
    nearest = {genres[gi]: genres[present[int(np.argmin(row))]] for gi, row in zip(present, dist)} \
        if len(present) > 1 else {}
    mean_radius = float(np.mean(list(radius.values())))
    return {"per_genre": radius, "mean_radius": mean_radius, "mean_centroid_distance": mean_dist,
            "radius_to_distance": mean_radius / mean_dist if mean_dist > 0 else float("nan"),
            "nearest_genre": nearest}


# --------------------------------------------------------------------------- attribute vectors
def attribute_vectors(means) -> np.ndarray:
    """Genre attribute vectors: each genre's mean mu minus the overall mean.

    Parameters
    ----------
    means : [G, D] per-genre mean of mu (e.g. the checkpoint's ``genre_means``); NaN rows
        (genres without data) are left out of the overall mean and stay NaN.

    Returns
    -------
    float64 [G, D]. The shift transfer moves a clip by alpha x (a_target - a_source).
    """
    m = np.asarray(means.detach().cpu() if hasattr(means, "detach") else means, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 2:
        raise ValueError(f"means: expected [G, D] with at least two genres, got shape {m.shape}")
    ok = np.all(np.isfinite(m), axis=1)
    if ok.sum() < 2:
        raise ValueError(f"means: need at least two genres with finite means, got {int(ok.sum())}")
    return m - m[ok].mean(0)


def cosine_matrix(vectors, eps: float = 1e-12) -> np.ndarray:
    """[G, D] -> [G, G] cosine similarity; rows that are NaN or (near) zero give NaN."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"vectors: expected [G, D], got shape {v.shape}")
    norm = np.linalg.norm(v, axis=1)
    bad = ~np.isfinite(norm) | (norm < eps)
    u = np.where(bad[:, None], np.nan, v / np.where(bad, 1.0, norm)[:, None])
    cos = np.clip(u @ u.T, -1.0, 1.0)
    return (cos + cos.T) / 2.0                                         # exactly symmetric


# --------------------------------------------------------------------------- training history
def read_log(log_csv) -> dict:
    """The trainer's ``log.csv`` as {column: float64 [epochs]} (blank cells are NaN)."""
    path = Path(log_csv)
    if not path.is_file():
        raise FileNotFoundError(f"training log not found: {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "epoch" not in rows[0]:
        raise ValueError(f"{path}: not a trainer log (no rows, or no 'epoch' column)")

    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")
    return {k: np.array([num(r.get(k)) for r in rows]) for k in rows[0]}


def collapse_epoch(history: dict, latent_dim: int | None = None, fraction: float = 0.25) -> int | None:
    """First epoch from which the active units stay below ``fraction`` x latent_dim to the
    end of the log (a collapse that lasts), or None. ``latent_dim`` defaults to the log's
    ``latent_dim`` column; ``fraction`` is the trainer's ``lazy_threshold``."""
    if "active_units" not in history:
        raise ValueError("history has no 'active_units' column")
    active, epochs = history["active_units"], history["epoch"]
    if latent_dim is None:
        dims = history.get("latent_dim")
        if dims is None or not np.any(np.isfinite(dims)):
            raise ValueError("latent_dim not given and not in the log")
        latent_dim = int(np.nanmax(dims))
    below = active < fraction * latent_dim
    if not below[-1]:
        return None
    start = len(below) - 1
    while start > 0 and below[start - 1]:
        start -= 1
    return int(epochs[start])


# --------------------------------------------------------------------------- judge and paths
def ensure_judge(judge, tr, loader: DataLoad | None = None, out=None):
    """A fitted evaluation.GenreJudge.

    ``judge`` may be a GenreJudge (returned as it is) or the path of a saved one. With
    None: the judge found beside the checkpoint (``judge.npz``, loaded by
    GenreTransfer.from_checkpoint), else one fitted on the training split of ``loader``
    with evaluation.train_judge and saved to ``out/judge.npz``.
    """
    if isinstance(judge, ev.GenreJudge):
        return judge
    if judge is not None:
        path = Path(judge)
        if not path.is_file():
            raise FileNotFoundError(f"judge file not found: {path}")
        return ev.GenreJudge.from_file(path)
    if tr.judge is not None:
        return tr.judge
    if loader is None or out is None:
        raise ValueError("no judge given and none beside the checkpoint: pass a judge, or a loader "
                         "and an output folder to fit one on the training split")
    print(f"fitting a genre judge on the training split of {loader.data_root} ...")
    return ev.train_judge(loader, tr.audio.sample_rate, Path(out) / "judge.npz")


def path_pairs(records, n_genres: int = len(GENRES), n: int = 10) -> list:
    """Up to ``n`` (record, target genre index) pairs: sources taken round-robin over the
    genres (first clip of each genre, then the second, ...), each with a target genre
    other than its own that cycles through the others."""
    by_genre: dict = {}
    for r in records:
        by_genre.setdefault(r.label, []).append(r)
    order = []
    for i in range(max((len(v) for v in by_genre.values()), default=0)):
        order += [v[i] for _, v in sorted(by_genre.items()) if i < len(v)]
    return [(r, (r.label + 1 + i % (n_genres - 1)) % n_genres) for i, r in enumerate(order[:n])]


def transfer_path(tr, audio, source: str, target: str, alphas=DEFAULT_ALPHAS, judge=None,
                  method: str = "shift") -> dict:
    """Move one clip along its attribute direction and ask the judge at every step.

    Parameters
    ----------
    tr : transfer.GenreTransfer
    audio : mono [T] at the model's rate
    source, target : genre names
    alphas : strengths; with ``method="shift"`` the latent moves by
        alpha x (genre_means[target] - genre_means[source])
    judge : a fitted evaluation.GenreJudge (columns in GENRES order)

    Returns
    -------
    {"alphas": [A], "outputs": A decoded clips [T], "proba": [A, len(GENRES)],
     "target_prob": [A], "source_prob": [A], "source", "target"}
    """
    if judge is None:
        raise ValueError("transfer_path needs a judge (see ensure_judge)")
    alphas = [float(a) for a in alphas]
    if not alphas:
        raise ValueError("alphas: need at least one strength")
    outputs = [tr.transfer_mono(audio, source, target, method=method, strength=a) for a in alphas]
    proba = judge.predict_proba(outputs, tr.audio.sample_rate)                # (A, G)
    return {"alphas": alphas, "outputs": outputs, "proba": proba, "source": source, "target": target,
            "target_prob": proba[:, ev.genre_index(target)], "source_prob": proba[:, ev.genre_index(source)]}


def mean_transfer_path(tr, clips, pairs, alphas=DEFAULT_ALPHAS, judge=None, method: str = "shift",
                       progress: bool = True) -> dict:
    """:func:`transfer_path` over several (clip, source, target) and its average.

    Parameters
    ----------
    clips : list of mono [T] arrays at the model's rate
    pairs : list of (source genre, target genre) names, one per clip

    Returns
    -------
    {"alphas": [A], "target_prob": [P, A], "source_prob": [P, A],
     "mean_target_prob": [A], "mean_source_prob": [A],
     "spearman": Spearman correlation of alpha and the mean target probability (NaN if constant),
     "non_decreasing": whether the mean target probability never falls as alpha grows,
     "share_raised": share of pairs whose target probability at the largest alpha exceeds
        the one at the smallest, "pairs": [(source, target)], "first": the first pair's
        :func:`transfer_path` result (with its decoded clips)}
    """
    from scipy.stats import spearmanr
    if len(clips) != len(pairs) or not clips:
        raise ValueError(f"need one (source, target) pair per clip; got {len(clips)} clips and {len(pairs)} pairs")
    results = []
    for i, (audio, (src, tgt)) in enumerate(tqdm(list(zip(clips, pairs)), desc="transfer paths",
                                                 unit="clip", disable=not progress, leave=False)):
        res = transfer_path(tr, audio, src, tgt, alphas, judge, method)
        if i > 0:
            res.pop("outputs")
        results.append(res)
    alphas = results[0]["alphas"]
    tp = np.stack([r["target_prob"] for r in results])                     # (P, A)
    sp = np.stack([r["source_prob"] for r in results])
    mean = tp.mean(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                    # constant input -> NaN
        rho = float(spearmanr(alphas, mean).statistic) if len(alphas) > 1 else float("nan")
    order = np.argsort(alphas)
    return {"alphas": alphas, "target_prob": tp, "source_prob": sp, "mean_target_prob": mean,
            "mean_source_prob": sp.mean(0), "spearman": rho,
            "non_decreasing": bool(np.all(np.diff(mean[order]) >= 0)),
            "share_raised": float(np.mean(tp[:, order[-1]] > tp[:, order[0]])),
            "pairs": list(pairs), "first": results[0]}


# --------------------------------------------------------------------------- figures
def _save(fig, png) -> Path:
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def _genre_colours(n: int):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def plot_embedding(xy, labels, genres, png, title: str = "", axis_labels=("1", "2")) -> Path:
    """Scatter of 2-D points [N, 2] coloured by genre index ``labels`` [N]."""
    xy = latent_matrix(xy, "xy")
    y = label_array(labels, len(xy)).astype(int)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for gi, colour in enumerate(_genre_colours(len(genres))):
        sel = y == gi
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=22, color=colour, label=genres[gi], alpha=0.8,
                       edgecolors="none")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=9)
    fig.tight_layout()
    return _save(fig, png)


def plot_cosine_matrix(cos, genres, png, title: str = "cosine similarity of genre attribute vectors") -> Path:
    """Heat map of a [G, G] cosine matrix in [-1, 1], values written in the cells."""
    cos = np.asarray(cos, dtype=np.float64)
    g = len(genres)
    if cos.shape != (g, g):
        raise ValueError(f"cosine matrix of shape {cos.shape} does not match {g} genres")
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * g, 0.4 + 0.55 * g))
    im = ax.imshow(np.ma.masked_invalid(cos), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(g), genres, rotation=45, ha="right")
    ax.set_yticks(range(g), genres)
    if g <= 12:
        for i in range(g):
            for j in range(g):
                if np.isfinite(cos[i, j]):
                    ax.text(j, i, f"{cos[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(cos[i, j]) > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, png)


def plot_spread(spread: dict, png, title: str = "genre spread in the latent space") -> Path:
    """Bars of each genre's RMS radius (:func:`genre_spread`) with the mean centroid distance."""
    names = list(spread["per_genre"])
    colours = {g: c for g, c in zip(GENRES, _genre_colours(len(GENRES)))}
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(names, [spread["per_genre"][n] for n in names], color=[colours.get(n, "grey") for n in names])
    if np.isfinite(spread["mean_centroid_distance"]):
        ax.axhline(spread["mean_centroid_distance"], color="black", ls="--",
                   label=f"mean distance between genre centroids ({spread['mean_centroid_distance']:.3g})")
        ax.legend(fontsize=8)
    ax.set_ylabel("RMS distance to genre centroid")
    ax.set_title(f"{title} (radius / distance = {spread['radius_to_distance']:.2f})")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return _save(fig, png)


def plot_units(variance, kl, png, threshold: float = ACTIVE_THRESHOLD, title: str = "") -> Path:
    """Variance of mu per dimension (log scale, active units coloured) and KL per dimension."""
    variance, kl = np.asarray(variance, dtype=np.float64), np.asarray(kl, dtype=np.float64)
    dims = np.arange(len(variance))
    active = variance > threshold
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(max(6.0, 0.25 * len(dims) + 3), 5.5), sharex=True)
    a0.bar(dims, np.maximum(variance, 1e-12), color=np.where(active, "tab:blue", "lightgrey"))
    a0.axhline(threshold, color="tab:red", ls="--", label=f"active threshold {threshold:g}")
    a0.set_yscale("log")
    a0.set_ylabel("Var(mu)")
    a0.set_title(f"{title}active units: {int(active.sum())} of {len(dims)}")
    a0.legend(fontsize=8)
    a1.bar(dims, kl, color=np.where(active, "tab:orange", "lightgrey"))
    a1.set_ylabel("KL per dimension (nats)")
    a1.set_xlabel("latent dimension")
    fig.tight_layout()
    return _save(fig, png)


def plot_history(history: dict, png, latent_dim: int | None = None, fraction: float = 0.25) -> Path:
    """Active units, KL (train / valid) and beta with the reconstruction loss, per epoch.

    The lazy threshold (``fraction`` x latent_dim) is drawn, and the start of a collapse
    that lasts to the end of the log (:func:`collapse_epoch`) is marked on every panel.
    """
    ep = history["epoch"]
    if latent_dim is None and "latent_dim" in history and np.any(np.isfinite(history["latent_dim"])):
        latent_dim = int(np.nanmax(history["latent_dim"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    ax = axes[0]
    if "active_units" in history:
        ax.plot(ep, history["active_units"], marker="o", ms=3, label="active units")
    if latent_dim:
        ax.axhline(latent_dim, color="grey", ls=":", label=f"latent dim {latent_dim}")
        ax.axhline(fraction * latent_dim, color="tab:red", ls="--", label=f"lazy below {fraction:g} x dim")
    ax.set_title("active latent units (Var(mu) > 0.01)")
    panels = ((axes[1], "KL per latent unit (nats, raw)", (("train_kl_raw", "train"), ("val_kl_raw", "valid"))),
              (axes[2], "reconstruction loss and beta", (("train_recon", "train recon"), ("val_recon", "valid recon"))))
    for ax, title, curves in panels:
        for key, name in curves:
            if key in history:
                ax.plot(ep, history[key], label=name)
        ax.set_title(title)
    if "train_beta" in history:
        twin = ax.twinx()
        twin.plot(ep, history["train_beta"], color="tab:green", ls="--", label="beta")
        twin.set_ylabel("beta", color="tab:green")
    start = None
    if "active_units" in history and latent_dim:
        start = collapse_epoch(history, latent_dim, fraction)
    for ax in axes:
        if start is not None:
            ax.axvline(start, color="tab:red", alpha=0.5, lw=3, label=f"collapse from epoch {start}")
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, png)


def plot_transfer_path(path: dict, cfg, png, mean: dict | None = None, title: str = "") -> Path:
    """Log-mels of a decoded path (one panel per alpha) above the judge's probabilities.

    Parameters
    ----------
    path : :func:`transfer_path` result (with ``outputs``)
    cfg : the model's AudioConfig (for the log-mel of the decoded audio)
    mean : optional :func:`mean_transfer_path` result, drawn as the average over clips
    """
    import torch

    from audio_io import plot_mel
    from prepare_data import mel_db
    alphas, outputs = path["alphas"], path["outputs"]
    n = len(alphas)
    fig = plt.figure(figsize=(max(8.0, 3.0 * n), 7.0))
    grid = fig.add_gridspec(2, n, height_ratios=[1.0, 1.1])
    for i, (a, audio) in enumerate(zip(alphas, outputs)):
        ax = fig.add_subplot(grid[0, i])
        db = mel_db(torch.from_numpy(np.asarray(audio, dtype=np.float32)), cfg).numpy()
        plot_mel(ax, db, cfg, f"alpha = {a:g}", kind="db", colorbar=False)
        if i:
            ax.set_ylabel("")
    ax = fig.add_subplot(grid[1, :])
    ax.plot(alphas, path["target_prob"], "o-", color="tab:red", label=f"this clip: p({path['target']})")
    ax.plot(alphas, path["source_prob"], "o-", color="tab:blue", label=f"this clip: p({path['source']})")
    if mean is not None:
        for row in mean["target_prob"]:
            ax.plot(alphas, row, color="tab:red", alpha=0.15, lw=1)
        ax.plot(alphas, mean["mean_target_prob"], "s--", color="darkred",
                label=f"mean p(target) over {len(mean['target_prob'])} clips (Spearman {mean['spearman']:.2f})")
        ax.plot(alphas, mean["mean_source_prob"], "s--", color="navy", label="mean p(source)")
    ax.set_xlabel("alpha (shift by alpha x attribute vector)")
    ax.set_ylabel("judge probability")
    top = float(np.nanmax([np.max(path["target_prob"]), np.max(path["source_prob"])]
                          + ([np.max(mean["target_prob"]), np.max(mean["mean_source_prob"])] if mean else [])))
    ax.set_ylim(0.0, min(1.02, 1.15 * top + 0.02))                    # small probabilities stay visible
    ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title or f"transfer path {path['source']} -> {path['target']}")
    fig.tight_layout()
    return _save(fig, png)


# --------------------------------------------------------------------------- everything
def _embedding_figures(lat: LatentSet, out: Path, tag: str, tsne: bool, seed: int, figures: dict) -> None:
    """mu in 2-D by genre: PCA, and t-SNE when asked for (and there are enough points)."""
    for method in METHODS_2D if tsne and len(lat) >= 4 else ("pca",):
        xy, extra = embed_2d(lat.mu, method, seed)
        if method == "pca":
            ratio = extra["explained_variance"] + [0.0] * 2
            axis = (f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%})")
        else:
            axis = ("t-SNE 1", "t-SNE 2")
        figures[f"embedding_{method}"] = plot_embedding(
            xy, lat.labels, lat.genres, out / f"embedding_{method}.png", f"mu by genre, {method.upper()} ({tag})",
            axis).name


def _attribute_section(tr, lat: LatentSet, split: str, out: Path, figures: dict, notes: list) -> dict:
    """Genre attribute vectors (the checkpoint's genre means, else the encoded split's) and
    the cosine matrix between them."""
    if tr.genre_means is not None:
        means, source = tr.genre_means.numpy(), "checkpoint genre_means (training split)"
    else:
        means, source = genre_means(lat.mu, lat.labels, len(lat.genres)), f"{split} split (checkpoint stores none)"
        notes.append("the checkpoint stores no genre means: attribute vectors from the encoded split, no shift path")
    attributes = attribute_vectors(means)
    cos = cosine_matrix(attributes)
    figures["genre_cosine"] = plot_cosine_matrix(cos, lat.genres, out / "genre_cosine.png").name
    return {"source": source, "genres": lat.genres, "cosine": cos, "norms": np.linalg.norm(attributes, axis=1)}


def _units_section(lat: LatentSet, split: str, out: Path, figures: dict) -> dict:
    """Variance of mu and KL per dimension: how many units the decoder can use."""
    variance, kl = variance_per_dim(lat.mu), kl_per_dim(lat.mu, lat.logvar)
    figures["latent_units"] = plot_units(variance, kl, out / "latent_units.png", title=f"{split} split: ").name
    return {"active_units": active_units(lat.mu), "threshold": ACTIVE_THRESHOLD, "variance_per_dim": variance,
            "kl_per_dim": kl, "kl_total": float(kl.sum())}


def _history_section(tr, log_csv: Path, latent_dim: int, out: Path, figures: dict, notes: list) -> dict | None:
    """Active units, KL and beta over training, from the trainer's log.csv beside the checkpoint."""
    if not log_csv.is_file():
        notes.append(f"no training log at {log_csv}: no history figure")
        return None
    fraction = float((tr.state.get("train") or {}).get("lazy_threshold", 0.25))
    log = read_log(log_csv)
    figures["training_history"] = plot_history(log, out / "training_history.png", latent_dim, fraction).name
    return {"log": str(log_csv), "epochs": int(len(log["epoch"])),
            "active_units": log.get("active_units", np.array([])).tolist(),
            "collapse_epoch": collapse_epoch(log, latent_dim, fraction) if "active_units" in log else None,
            "lazy_fraction": fraction}


def _path_section(tr, records, loader: DataLoad, judge, alphas, path_clips: int, max_seconds, tag: str,
                  out: Path, figures: dict, progress: bool) -> dict:
    """The averaged shift path over ``path_clips`` clips, its figure and the first clip's WAVs."""
    pairs = path_pairs(records, len(tr.genres), path_clips)
    load = clip_reader(records, tr.audio.sample_rate, loader.cache, max_seconds)
    clips = [load(r) for r, _ in pairs]
    names = [(r.genre, tr.genres[t]) for r, t in pairs]
    mean = mean_transfer_path(tr, clips, names, alphas, judge, progress=progress)
    first = mean["first"]
    title = f"{pairs[0][0].name}: {first['source']} -> {first['target']}, shift ({tag})"
    figures["transfer_path"] = plot_transfer_path(first, tr.audio, out / "transfer_path.png", mean, title).name
    for a, audio in zip(first["alphas"], first["outputs"]):
        save_wav(out / f"path_alpha_{a:g}.wav", audio, tr.audio.sample_rate)
    return {"method": "shift", "alphas": mean["alphas"], "clips": [r.name for r, _ in pairs],
            "pairs": names, "target_prob": mean["target_prob"], "source_prob": mean["source_prob"],
            "mean_target_prob": mean["mean_target_prob"], "mean_source_prob": mean["mean_source_prob"],
            "spearman": mean["spearman"], "non_decreasing": mean["non_decreasing"],
            "share_raised": mean["share_raised"], "judge": judge.info()}


def analyse(checkpoint=None, data=None, split: str = "test", out=None, judge=None, level: str = "window",
            alphas=DEFAULT_ALPHAS, path_clips: int = 10, max_seconds: float | None = None,
            tsne: bool = True, seed: int = 0, device: str = "cpu", logs_root="vae_logs",
            progress: bool = True) -> dict:
    """Encode a split with a checkpoint, write every figure and ``latent_space.json``.

    Parameters
    ----------
    checkpoint : best.pt / latest.pt of either family; None: newest best.pt under ``logs_root``
    data : GTZAN folder; None: the one the checkpoint was trained on
    split : "train" | "valid" | "test" | "all" (the checkpoint's split mode and seed)
    out : output folder; None: ``<checkpoint folder>/latent_space``
    judge : GenreJudge, path of a saved one, or None (see :func:`ensure_judge`)
    level : "window" (one mu per training-segment window) or "clip"
    alphas : strengths of the transfer path
    path_clips : source clips of the averaged transfer path (0 skips the path)
    max_seconds : use only the first seconds of each clip
    tsne : also draw the t-SNE view

    Returns
    -------
    The dict written to ``out/latent_space.json`` (figures listed under ``figures``).
    """
    checkpoint = Path(checkpoint) if checkpoint else newest_checkpoint(logs_root)
    tr = GenreTransfer.from_checkpoint(checkpoint, device=device)
    info = tr.state.get("data") or {}
    data = data or info.get("data_path")
    if not data:
        raise InputError(f"{checkpoint} does not say which data it was trained on: pass --data")
    out = Path(out) if out else checkpoint.parent / "latent_space"
    out.mkdir(parents=True, exist_ok=True)
    loader = DataLoad(data, split_mode=info.get("split", "auto"), seed=int(info.get("seed", 0)),
                      progress=progress)
    records = split_records(loader, split)
    lat = encode_records(tr, records, loader.cache, level, max_seconds, progress)
    notes, figures = [], {}
    tag = f"{tr.model.family} VAE, epoch {tr.state.get('epoch')}, {split} split, {len(lat)} {level}s"

    _embedding_figures(lat, out, tag, tsne, seed, figures)
    spread = genre_spread(lat.mu, lat.labels, lat.genres)
    figures["genre_spread"] = plot_spread(spread, out / "genre_spread.png").name
    attributes = _attribute_section(tr, lat, split, out, figures, notes)
    units = _units_section(lat, split, out, figures)
    history = _history_section(tr, checkpoint.parent / "log.csv", lat.mu.shape[1], out, figures, notes)
    path_result = None
    if path_clips > 0 and tr.genre_means is not None:
        judge = ensure_judge(judge, tr, loader, out)
        path_result = _path_section(tr, records, loader, judge, alphas, path_clips, max_seconds, tag, out,
                                    figures, progress)
    result = {"checkpoint": str(checkpoint), "out": str(out), "family": tr.model.family, "epoch": tr.state.get("epoch"),
              "data": str(data), "split": split, "level": level, "n": len(lat), "n_clips": len(lat.names),
              "latent_dim": int(lat.mu.shape[1]),
              "separation": separation_metrics(lat.mu, lat.labels, lat.clip if level == "window" else None, seed=seed),
              "spread": spread, "attributes": attributes, "units": units,
              "history": history, "transfer_path": path_result, "figures": figures, "notes": notes}
    ev.write_metrics(out / RESULTS_FILE, result)
    return result


def summary(result: dict) -> str:
    """A few lines with the headline numbers of an :func:`analyse` result."""
    s, u = result["separation"], result["units"]
    lines = [f"{result['family']} VAE (epoch {result['epoch']}), {result['split']} split: "
             f"{result['n']} {result['level']}s of {result['n_clips']} clips, latent dim {result['latent_dim']}",
             f"kNN genre accuracy {s['knn_accuracy']:.3f} (k={s['knn_k']}, {s['knn_folds']} folds, chance "
             f"{s['chance']:.3f}), silhouette {s['silhouette']:.3f}",
             f"genre radius / centroid distance {result['spread']['radius_to_distance']:.2f}",
             f"active units {u['active_units']} / {result['latent_dim']}, KL {u['kl_total']:.3f} nats"]
    if result["history"]:
        c = result["history"]["collapse_epoch"]
        lines.append("training log: " + (f"collapse from epoch {c}" if c else "no lasting collapse"))
    p = result["transfer_path"]
    if p:
        lines.append("shift path, mean p(target) at alpha " + ", ".join(
            f"{a:g}: {v:.3f}" for a, v in zip(p["alphas"], p["mean_target_prob"]))
            + f" (Spearman {p['spearman']:.2f}, over {len(p['clips'])} clips)")
    return "\n".join(lines + [f"note: {n}" for n in result["notes"]])


def main(argv=None) -> dict:
    p = ArgumentParser(description="Latent-space figures and metrics of a genre-transfer VAE checkpoint.")
    p.add_argument("--checkpoint", help="checkpoint (default: newest best.pt under --logs)")
    p.add_argument("--logs", default="vae_logs")
    p.add_argument("--data", help="GTZAN folder (default: the checkpoint's training data)")
    p.add_argument("--split", default="test", choices=SPLITS + ("all",))
    p.add_argument("--out", help="output folder (default: <checkpoint folder>/latent_space)")
    p.add_argument("--judge", help="judge .npz (default: judge.npz beside the checkpoint, else fitted)")
    p.add_argument("--level", default="window", choices=LEVELS)
    p.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS))
    p.add_argument("--path-clips", type=int, default=10)
    p.add_argument("--max-seconds", type=float)
    p.add_argument("--no-tsne", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    result = analyse(args.checkpoint, args.data, args.split, args.out, args.judge, args.level, args.alphas,
                     args.path_clips, args.max_seconds, not args.no_tsne, args.seed, args.device, args.logs)
    print(summary(result))
    print(f"wrote {len(result['figures'])} figures and {RESULTS_FILE} to {result['out']}")
    return result


if __name__ == "__main__":
    run(main, prog="latent_space")
