"""Latent diagnostics: how a VAE's posterior uses its dimensions and how well genre reads from it.

Measures take posterior means and log-variances (mu, logvar [N, D], numpy or torch):
variance and active units per dimension, KL per dimension (the bottleneck's own), kNN genre
accuracy and silhouette of mu (:func:`separation_metrics`), and :func:`latent_diagnostics`,
the ``latent`` entry of metrics.json. The trainer and the latent tool use them too.
"""
from __future__ import annotations

import numpy as np
import torch

from audio_metrics import _check_lengths
from vae_parts import GaussianBottleneck

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

