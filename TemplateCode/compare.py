"""The comparison runner: every variant, the same budget, data and split, one table.

    python -m TemplateCode.compare --suite all --budget demo          # both suites, about 15 min on 2 CPU cores
    python -m AudioExperiment.compare --budget demo                    # the waveform suite only
    python -m ImageExperiment.compare --budget demo --sweep "depth=2,3 width=8,16"
    python -m TemplateCode.compare --suite image --budget smoke --data /tmp/syn --out /tmp/cmp   # seconds

For every variant of the suite(s), in order:

1. build it at the budget's size (:func:`TemplateCode.experiment.build`): the domain's
   AudioConfig, the family's model and train presets, the variant's overrides, then the
   budget's epochs: every variant of a domain sees the same segments, split, batch size
   and number of optimiser steps (``--budget smoke``: one batch);
2. train it with :class:`trainer.MemoryEfficientTrainer` into ``<out>/<variant>/``
   (re-running resumes from ``latest.pt``; ``--fresh`` starts over);
3. reload ``best.pt`` from the file alone and score it with the shared yardstick,
   :func:`transfer.evaluate_model` (one judge, trained once per output folder with
   :func:`evaluation.train_judge`, on the same test clips, a few seconds each, to a random other
   genre; on the synthetic set, content retrieval among every genre's renderings of the
   test contents);
4. draw the PCA of its latent means over the validation segments (``latent_pca.png``).

Each variant's row is kept in ``<out>/<variant>/row.json`` (with ``metrics.json``,
``log.csv``, ``loss_curves.png``); ``<out>/comparison.csv`` and ``comparison.md`` are
rewritten from every row in ``<out>`` after each variant, so separate suite runs into one
folder give one table. Validation losses compare within a domain only (the waveform and
mel families have different losses); transfer, content and latent metrics compare across.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cli import ArgumentParser, run
from prepare_data import AudioConfig
from TemplateCode.experiment import Variant, baselines, build, load_experiment, make_trainer

SUITES = ("audio", "image")
JUDGE_SR = AudioConfig().sample_rate        # the judge hears every variant at the project's rate


@dataclass(frozen=True)
class Budget:
    """How much every variant gets.

    size : model / audio / train preset of every family ("tiny" | "demo" | "full")
    epochs : training epochs (the same for all)
    steps_per_epoch : optimiser steps per epoch: the training split is cut to the same
        ``steps_per_epoch x batch size`` segments for every variant of a domain (spread
        evenly over the files); None trains on the whole split
    val_batches : validation batches (the same segments for all); None: the whole split
    smoke_test : one batch of training and validation (the trainer's ``smoke_test``)
    eval_clips, eval_seconds : test clips scored and seconds of each
    judge_seconds : seconds of each training clip the judge is fitted on
    sweep : default CNN CVAE grid (see :func:`ImageExperiment.sweep.parse_grid`)
    per_genre, duration : synthetic GTZAN written when the data folder is missing
    strengths : {method: [alpha, ...]} for :func:`transfer.evaluate_model`
    """

    name: str
    size: str
    epochs: int
    steps_per_epoch: int | None
    val_batches: int | None
    smoke_test: bool
    eval_clips: int
    eval_seconds: float
    judge_seconds: float
    sweep: str
    per_genre: int = 30
    duration: float = 10.0
    strengths: dict = field(default_factory=lambda: {"conditional": [1.0], "shift": [1.0]})


BUDGETS = {
    # Tests: tiny models, one batch, two clips of 1.5 s.
    "smoke": Budget("smoke", "tiny", epochs=1, steps_per_epoch=1, val_batches=1, smoke_test=True,
                    eval_clips=2, eval_seconds=1.5, judge_seconds=2.0,
                    sweep="depth=2 width=4 latent_dim=8 beta=0.02,0.2", per_genre=3, duration=4.0),
    # 2 CPU cores: every variant of both suites, 16 sweep points included, in about 15 minutes.
    "demo": Budget("demo", "demo", epochs=2, steps_per_epoch=12, val_batches=3, smoke_test=False,
                   eval_clips=6, eval_seconds=3.0, judge_seconds=10.0,
                   sweep="depth=2,3 width=8,16 latent_dim=16,32 beta=0.02,0.2"),
    # A GPU: full-size models on the whole split.
    "full": Budget("full", "full", epochs=30, steps_per_epoch=None, val_batches=None, smoke_test=False,
                   eval_clips=30, eval_seconds=10.0, judge_seconds=30.0,
                   sweep="depth=3,4 width=16,32 latent_dim=32,64 beta=0.02,0.2"),
}


def suite_variants(suite: str, sweep: str | None) -> list[Variant]:
    """The rows of ``suite`` ("audio" | "image"): the domain's baselines (template, the
    project's model), the package's variants, and for images the sweep ``sweep``."""
    if suite == "audio":
        import AudioExperiment
        return baselines("wave") + list(AudioExperiment.VARIANTS)
    if suite == "image":
        import ImageExperiment
        return baselines("mel") + list(ImageExperiment.VARIANTS) + \
            ImageExperiment.sweep_variants(ImageExperiment.parse_grid(sweep or ""))
    raise ValueError(f"unknown suite {suite!r}; choose from {SUITES}")


# --------------------------------------------------------------------------- pieces
def spread_subset(dataset, n: int | None):
    """``n`` items of ``dataset`` spread evenly over it (its files are in genre order), the
    same for every variant; the whole dataset when ``n`` is None or not smaller."""
    if n is None or n >= len(dataset):
        return dataset
    return torch.utils.data.Subset(dataset, np.linspace(0, len(dataset) - 1, n).round().astype(int).tolist())


def pick_eval_records(records, n: int) -> list:
    """``n`` records taken round-robin over the genres (first clip of each genre, then the second...)."""
    seen, keyed = {}, []
    for r in records:
        keyed.append((seen.get(r.label, 0), r.label, r))
        seen[r.label] = seen.get(r.label, 0) + 1
    return [r for _, _, r in sorted(keyed, key=lambda t: t[:2])][:n]


@torch.no_grad()
def latent_means(model, dataset, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Time-averaged posterior means [N, D] and genre labels [N] of ``dataset`` (eval mode)."""
    model.eval()
    mus, labels = [], []
    for x, genre in torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False):
        _, mu, _ = model.encode(model.prepare(x.float()))
        mus.append(mu.float().flatten(2).mean(-1))
        labels.append(torch.as_tensor(genre))
    return torch.cat(mus).numpy(), torch.cat(labels).numpy()


def plot_latent_pca(mu: np.ndarray, labels: np.ndarray, path, title: str, genres) -> Path:
    """Scatter of the first two principal components of ``mu`` [N, D], coloured by genre."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    centred = mu - mu.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    pcs = centred @ vt[:2].T                                          # (N, <=2)
    if pcs.shape[1] < 2:
        pcs = np.pad(pcs, ((0, 0), (0, 2 - pcs.shape[1])))
    share = s ** 2 / max(float(np.sum(s ** 2)), 1e-12)
    fig = Figure(figsize=(5.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    for g, name in enumerate(genres):
        sel = labels == g
        if sel.any():
            ax.scatter(pcs[sel, 0], pcs[sel, 1], s=12, color=colours[g % 10], label=name, alpha=0.8)
    pc = [f"PC{i + 1} ({100 * share[i]:.0f} %)" if i < len(share) else f"PC{i + 1}" for i in range(2)]
    ax.set_xlabel(pc[0])
    ax.set_ylabel(pc[1])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return Path(path)


def _best_log_row(log_csv: Path) -> dict:
    """The log.csv row of the epoch with the lowest validation ELBO (empty if no log)."""
    if not log_csv.exists():
        return {}
    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    return min(rows, key=lambda r: float(r.get("val_elbo") or "inf")) if rows else {}


def _entry(metrics: dict, method: str, strength: float = 1.0) -> dict:
    entries = (metrics.get("transfer") or {}).get(method) or []
    match = [e for e in entries if math.isclose(e["strength"], strength)]
    return (match or entries or [{}])[0]


def _num(v):
    return None if v in (None, "") else float(v)


def make_row(variant: Variant, budget: Budget, parameters: int, trainer_state: dict, log_row: dict,
             metrics: dict, train_seconds: float) -> dict:
    """One table row: identity, budget, validation loss, latent and transfer metrics."""
    lat, rec = metrics.get("latent") or {}, metrics.get("reconstruction") or {}
    cond, shift = _entry(metrics, "conditional"), _entry(metrics, "shift")
    base = metrics.get("baselines") or {}
    return {
        "variant": variant.name, "domain": variant.domain, "data": variant.data, "family": variant.family,
        "paper": variant.paper, "budget": budget.name, "parameters": parameters,
        "epochs": trainer_state["epoch"], "steps": trainer_state["step"], "train_seconds": round(train_seconds, 1),
        "val_elbo": _num(log_row.get("val_elbo")), "val_recon": _num(log_row.get("val_recon")),
        "val_kl": _num(log_row.get("val_kl_raw")),
        "active_units": lat.get("active_units"), "latent_dim": lat.get("latent_dim"),
        "knn_genre_acc": lat.get("knn_genre_accuracy"), "silhouette": lat.get("silhouette"),
        "kl_total": lat.get("kl_total"),
        "logmel_l1_db": rec.get("logmel_l1_db"), "spectral_convergence": rec.get("spectral_convergence"),
        "cond_success": cond.get("success"), "cond_chroma": cond.get("content_chroma_corr"),
        "cond_retrieval": cond.get("content_retrieval"),
        "shift_success": shift.get("success"), "shift_chroma": shift.get("content_chroma_corr"),
        "shift_retrieval": shift.get("content_retrieval"),
        "retrieval_chance": cond.get("content_retrieval_chance"),
        "identity_success": (base.get("identity") or {}).get("success"),
        "identity_retrieval": (base.get("identity") or {}).get("content_retrieval"),
        "random_success": (base.get("random_target") or {}).get("success"),
        "random_retrieval": (base.get("random_target") or {}).get("content_retrieval"),
        "judge_accuracy": (metrics.get("judge") or {}).get("heldout_accuracy"),
        "eval_clips": metrics.get("model", {}).get("clips"),
    }


# --------------------------------------------------------------------------- table
MARKDOWN_COLUMNS = [  # (header, key, format)
    ("variant", "variant", "s"), ("domain", "domain", "s"), ("data", "data", "s"),
    ("params", "parameters", ","), ("steps", "steps", "d"), ("train s", "train_seconds", ".0f"),
    ("val ELBO", "val_elbo", ".4f"), ("val recon", "val_recon", ".4f"),
    ("active", "active_units", "d"), ("D", "latent_dim", "d"), ("kNN genre", "knn_genre_acc", ".2f"),
    ("silh.", "silhouette", ".2f"), ("log-mel L1 dB", "logmel_l1_db", ".2f"),
    ("SC", "spectral_convergence", ".3f"),
    ("success cond.", "cond_success", ".2f"), ("chroma cond.", "cond_chroma", ".2f"),
    ("retrieval cond.", "cond_retrieval", ".2f"),
    ("success shift", "shift_success", ".2f"), ("retrieval shift", "shift_retrieval", ".2f"),
]


def _cell(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    try:
        return format(int(value) if spec in ("d", ",") else value, spec)
    except (TypeError, ValueError):
        return str(value)


def write_table(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """``<out>/comparison.csv`` (every field) and ``<out>/comparison.md`` (the headline ones)."""
    out.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    csv_path, md_path = out / "comparison.csv", out / "comparison.md"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    lines = ["# Variant comparison", ""]
    if rows:
        r0 = rows[0]
        lines += [f"Budget `{r0['budget']}`; judge held-out accuracy {_cell(r0['judge_accuracy'], '.2f')}; "
                  f"{r0['eval_clips']} test clips per variant; transfers to a random other genre at strength 1. "
                  f"Reference points: identity success {_cell(r0['identity_success'], '.2f')} / retrieval "
                  f"{_cell(r0['identity_retrieval'], '.2f')}, random target clip success "
                  f"{_cell(r0['random_success'], '.2f')} / retrieval {_cell(r0['random_retrieval'], '.2f')} "
                  f"(chance {_cell(r0['retrieval_chance'], '.2f')}). Validation losses compare within a domain.", ""]
    lines.append("| " + " | ".join(h for h, _, _ in MARKDOWN_COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in MARKDOWN_COLUMNS) + "|")
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(k), spec) for _, k, spec in MARKDOWN_COLUMNS) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


# --------------------------------------------------------------------------- the runner
class Comparison:
    """Trains and scores variants on one data folder, split and budget; see the module doc.

    Parameters
    ----------
    data : GTZAN folder (a folder named ``synthetic`` is generated when missing)
    out : output folder (one sub-folder per variant, the tables, the judge)
    budget : a :class:`Budget` or its name
    seed, split : data split and initial weights
    fresh : retrain and re-score even where ``<out>/<variant>`` holds results
    cmap : colormap of the ``images_original`` pictures
    """

    def __init__(self, data, out, budget: Budget | str = "demo", seed: int = 0, split: str = "auto",
                 fresh: bool = False, cmap: str | None = None):
        from SlicingDataLoading import BuildReport, DataLoad
        from TemplateCode.data import ensure_data

        self.budget = BUDGETS[budget] if isinstance(budget, str) else budget
        self.root = ensure_data(data, self.budget.per_genre, self.budget.duration)
        self.out, self.seed, self.split, self.fresh = Path(out), seed, split, fresh
        self.cmap = cmap
        self.loader = DataLoad(self.root, split_mode=split, seed=seed)
        self.splits = self.loader.splits(BuildReport())
        self.synthetic = (self.loader.data_root / "synthetic_manifest.csv").exists()
        self._data, self._judge = {}, None

    # ---- shared inputs
    def judge(self):
        """The genre judge of this output folder (fitted once, then read from ``judge.npz``)."""
        if self._judge is None:
            import evaluation as ev
            path = self.out / "judge.npz"
            self._judge = ev.GenreJudge.from_file(path, progress=False) if path.exists() and not self.fresh \
                else ev.train_judge(self.loader, JUDGE_SR, path, seconds=self.budget.judge_seconds)
        return self._judge

    def datasets(self, variant: Variant, audio, batch_size: int):
        """(train, valid, info) of a variant's domain and input, cut to the budget; built once per run."""
        key = (variant.domain, variant.data, audio, batch_size)
        if key not in self._data:
            if variant.data == "png":
                from ImageExperiment.png_spectrograms import DEFAULT_CMAP, png_datasets
                train, valid, info = png_datasets(self.root, audio, self.split, self.seed, self.cmap or DEFAULT_CMAP)
            else:
                from TemplateCode.data import load_segments
                train, valid, info = load_segments(self.root, audio, self.split, self.seed)
            b = self.budget
            self._data[key] = (spread_subset(train, b.steps_per_epoch and b.steps_per_epoch * batch_size),
                               spread_subset(valid, b.val_batches and b.val_batches * batch_size), info)
        return self._data[key]

    def reference_records(self):
        """Renderings content retrieval searches (synthetic set only, else None): every genre's
        rendering of the test contents, or of the validation and test contents when the test
        split holds a single content (the random-target reference point needs two)."""
        if not self.synthetic:
            return None
        test = self.splits["test"]
        if len({r.content_id for r in test}) >= 2:
            return test
        return self.splits["valid"] + test

    # ---- one variant
    def run_variant(self, variant: Variant) -> dict:
        """Train, reload, score and plot one variant; return (and keep) its table row."""
        from evaluation import evaluate_model, to_jsonable, write_metrics
        from transfer import GenreTransfer

        vdir = self.out / variant.name
        row_file = vdir / "row.json"
        if row_file.exists() and not self.fresh:
            row = json.loads(row_file.read_text())
            if row.get("budget") == self.budget.name:
                return row
        if self.fresh and vdir.exists():
            shutil.rmtree(vdir)
        b = self.budget
        built = build(variant, b.size, seed=self.seed, epochs=b.epochs, smoke_test=b.smoke_test, split=self.split)
        train, valid, info = self.datasets(variant, built.audio, built.train_cfg.batch_size)
        trainer = make_trainer(built, vdir, train, valid, info)
        start = time.perf_counter()
        best = trainer.fit()
        seconds = time.perf_counter() - start
        print(f"  trained {variant.name}: {trainer.step} steps in {seconds:.1f} s", flush=True)
        model, state = load_experiment(best)
        judge = self.judge()
        test = self.splits["test"]
        metrics = evaluate_model(
            GenreTransfer(model, state, judge), pick_eval_records(test, b.eval_clips), judge,
            reference_records=self.reference_records(), strengths=b.strengths, seed=self.seed,
            max_seconds=b.eval_seconds, cache=self.loader.cache,
            model_info={"name": variant.name, "variant": variant.name, "family": variant.family,
                        "description": variant.description, "paper": variant.paper, "budget": b.name,
                        "checkpoint": str(best)})
        write_metrics(vdir / "metrics.json", metrics)
        print(f"  scored {variant.name} in {time.perf_counter() - start - seconds:.1f} s", flush=True)
        mu, labels = latent_means(model, valid, built.train_cfg.batch_size)
        plot_latent_pca(mu, labels, vdir / "latent_pca.png",
                        f"{variant.name}: latent means of the validation segments", info["genres"])
        row = make_row(variant, b, built.parameters, {"epoch": trainer.epoch, "step": trainer.step},
                       _best_log_row(vdir / "log.csv"), metrics, seconds)
        row_file.write_text(json.dumps(to_jsonable(row), indent=1))
        return row

    # ---- all of them
    def run(self, variants: list[Variant]) -> list[dict]:
        """Run ``variants`` in order, rewriting the tables after each; return every row of ``out``."""
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate variant names in {names}")
        self.out.mkdir(parents=True, exist_ok=True)
        order = list(dict.fromkeys(v.name for s in SUITES for v in suite_variants(s, self.budget.sweep)))
        rows = []
        for i, variant in enumerate(variants):
            print(f"[{i + 1}/{len(variants)}] {variant.name} ({variant.family}, {variant.domain}, {variant.data})",
                  flush=True)
            self.run_variant(variant)
            rows = self.collect(order)
            write_table(rows, self.out)
        return rows

    def collect(self, order: list[str]) -> list[dict]:
        """Every row under ``out`` of this budget: in the order of ``order``, then the others by name."""
        rows = {}
        for f in sorted(self.out.glob("*/row.json")):
            row = json.loads(f.read_text())
            if row.get("budget") == self.budget.name:
                rows[row["variant"]] = row
        first = [rows.pop(n) for n in order if n in rows]
        return first + [rows[n] for n in sorted(rows)]


def main(argv=None, suites: tuple = SUITES) -> list[dict]:
    """Command line; ``suites`` limits the ``--suite`` choices (the packages' wrappers)."""
    p = ArgumentParser(description="Train every variant for the same budget and compare them.")
    p.add_argument("--suite", choices=list(suites) + (["all"] if len(suites) > 1 else []),
                   default="all" if len(suites) > 1 else suites[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="demo")
    p.add_argument("--data", default="Data/synthetic", help="GTZAN folder (the synthetic one is written when missing)")
    p.add_argument("--out", default="vae_logs/experiments", help="output folder")
    p.add_argument("--variants", help="comma-separated names: run only these rows")
    p.add_argument("--sweep", help='CNN CVAE grid, e.g. "depth=2,3 width=8,16 latent_dim=16 beta=0.02,0.2" '
                                   '(default: the budget\'s; "none" for no sweep)')
    p.add_argument("--epochs", type=int, help="override the budget's epochs")
    p.add_argument("--steps", type=int, help="override the budget's optimiser steps per epoch (0: whole split)")
    p.add_argument("--png-cmap", help="colormap the images_original pictures were drawn with (default magma)")
    p.add_argument("--split", choices=["auto", "filtered", "random", "content"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="retrain and re-score every variant run")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (0: torch's default); one thread keeps the small demo models "
                        "fast on a machine shared with other jobs")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    args = p.parse_args(argv)
    budget = BUDGETS[args.budget]
    if args.epochs is not None or args.steps is not None:      # another budget: its own rows
        epochs = budget.epochs if args.epochs is None else args.epochs
        steps = budget.steps_per_epoch if args.steps is None else (args.steps or None)
        budget = dataclasses.replace(budget, name=f"{budget.name}-epochs{epochs}-steps{steps or 'all'}",
                                     epochs=epochs, steps_per_epoch=steps)
    sweep = "" if args.sweep == "none" else (args.sweep if args.sweep is not None else budget.sweep)
    chosen = suites if args.suite == "all" else (args.suite,)
    variants = [v for s in chosen for v in suite_variants(s, sweep)]
    if args.variants:
        wanted = [n.strip() for n in args.variants.split(",") if n.strip()]
        known = {v.name for v in variants}
        missing = [n for n in wanted if n not in known]
        if missing:
            p.error(f"unknown variant(s) {missing}; this suite has: {', '.join(sorted(known))}")
        variants = [v for v in variants if v.name in wanted]
    if args.list:
        for v in variants:
            print(f"{v.name:<40} {v.family:<14} {v.domain:<5} {v.data:<6} {v.paper}")
        return []
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cmp = Comparison(args.data, args.out, budget, seed=args.seed, split=args.split, fresh=args.fresh,
                     cmap=args.png_cmap)
    rows = cmp.run(variants)
    print((cmp.out / "comparison.md").read_text())
    return rows


if __name__ == "__main__":
    run(main, prog="compare")
