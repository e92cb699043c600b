"""A grid of CNN CVAE hyper-parameters as comparison variants.

    sweep_variants({"depth": [2, 3], "width": [8, 16], "latent_dim": [16, 32], "beta": [0.02, 0.2]})

``depth``, ``width`` and ``latent_dim`` are :class:`~ImageExperiment.cnn_cvae.CNNCVAEConfig`
fields; ``beta`` is the trainer's ``beta_max`` (the KL weight after warm-up). Every point
of the grid is one variant, named after its values, trained and scored by the same
comparison runner as every other variant, so its row lands in the same table.
"""
from __future__ import annotations

import itertools

from TemplateCode.experiment import Variant

AXES = {"depth": ("model", "depth", "d"), "width": ("model", "width", "w"),
        "latent_dim": ("model", "latent_dim", "z"), "beta": ("train", "beta_max", "b")}


def parse_grid(text: str) -> dict:
    """``"depth=2,3 width=8,16 beta=0.02"`` -> {"depth": [2, 3], "width": [8, 16], "beta": [0.02]}."""
    grid = {}
    for item in text.split():
        key, sep, values = item.partition("=")
        if not sep or key not in AXES or not values:
            raise ValueError(f"sweep axis {item!r}: expected NAME=V1,V2 with NAME one of {sorted(AXES)}")
        cast = float if key == "beta" else int
        try:
            grid[key] = [cast(v) for v in values.split(",")]
        except ValueError as err:
            raise ValueError(f"sweep axis {key}: {values!r} are not {cast.__name__} values") from err
    return grid


def sweep_variants(grid: dict, data: str = "audio") -> list[Variant]:
    """One CNN CVAE variant per point of ``grid`` (axes: depth, width, latent_dim, beta).

    Axes left out keep the size preset's value; an empty grid gives no variant.
    """
    unknown = sorted(set(grid) - set(AXES))
    if unknown:
        raise KeyError(f"unknown sweep axes {unknown}; choose from {sorted(AXES)}")
    if not grid:
        return []
    keys = [k for k in AXES if k in grid]
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        model, train, tag = {}, {}, []
        for key, value in zip(keys, values):
            scope, field, short = AXES[key]
            (model if scope == "model" else train)[field] = value
            tag.append(f"{short}{value:g}")
        out.append(Variant(f"cnn_cvae_sweep_{'_'.join(tag)}", "cnn-cvae", "mel",
                           "CNN CVAE hyper-parameter sweep point (" + ", ".join(
                               f"{k}={v:g}" for k, v in zip(keys, values)) + ")",
                           "Sohn et al. 2015", model=model, train=train, data=data))
    return out
