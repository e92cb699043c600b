"""One trainer for both model families, readable top to bottom.

    python trainer.py --data Data/synthetic --preset demo --out vae_logs
    python trainer.py --data /path/to/GTZAN/Data --preset full --out vae_logs/full   # GPU
    torchrun --nproc_per_node 4 trainer.py --data ... --preset full --out ...         # DDP

Re-running the same command resumes from ``<out>/latest.pt`` (``--fresh`` starts over).
Every checkpoint is one self-describing dict (configs, weights, optimiser, scheduler, RNG
states, epoch and step, beta state, genre map, per-genre latent means) written atomically
and read back with ``torch.load(weights_only=True)``; :func:`load_model` rebuilds the
model from the file alone.

Public API
----------
TrainConfig, TRAIN_PRESETS      optimisation settings (presets demo / full / tiny)
BetaSchedule                    KL weight: linear warm-up or cyclical, from the global step
EfficientLoss                   the mel VAE's loss, a dict of named terms
MemoryEfficientTrainer          the loop: AMP, accumulation, clipping, validation, checkpoints
build_model / load_model        family registry -> model; checkpoint -> model
save_checkpoint / load_checkpoint
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from prepare_data import AudioConfig, config_from_dict, override

CHECKPOINT_FORMAT = "genre-transfer-vae/1"


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    accum_steps: int = 1
    warmup_steps: int = 200             # linear lr warm-up before the cosine decay
    beta_max: float = 1.0
    beta_schedule: str = "warmup"       # "warmup" | "cyclical" | "constant"
    beta_warmup_steps: int = 2000
    beta_cycle_steps: int = 4000        # cyclical: one cycle (ramp for half, hold for half)
    free_bits: float = 0.05             # nats per latent channel below which KL is not pushed
    kl_low_weight: float = 1.0          # KL weight of the first half of the latent channels
    kl_high_weight: float = 1.0         # ... and of the second half
    adv_weight: float = 0.1             # latent genre adversary (0 switches it off)
    freq_grad_weight: float = 0.0       # mel loss: L1 of the gradient over frequency (contrast)
    lazy_threshold: float = 0.25        # warn when active units / latent units falls below
    seed: int = 0
    num_workers: int = 0
    split: str = "auto"
    amp: bool = True                    # bf16 autocast where a GPU is present
    compile: bool = False               # torch.compile the model
    channels_last: bool = True          # channels-last memory for 2-D convolutions on a GPU
    smoke_test: bool = False            # one batch of training and validation, then stop


# The mel loss is a mean over pixels (about 0.03-0.05 once trained) and the KL a mean over
# latent numbers, with 64-128 pixels per latent number: beta 0.005 is about 0.3-0.6 in the
# summed ELBO's units. An adversary weight of 0.3 (its cross-entropy sits at ln 10 = 2.3)
# gave the encoder gradients some 15x the reconstruction's, and it learnt to hide everything:
# the decoder drew a per-genre mean spectrogram. 0.02 keeps the adversary at chance without
# drowning the reconstruction (6-epoch demo runs: validation MSE 0.030 against 0.042).
#
# freq_grad_weight 1: with the pitch-harmonic view, 20 demo epochs (30 test clips, 3 s)
# decode to a chroma correlation with the source of 0.83 and content retrieval 0.90, against
# 0.67 and 0.70 with the MSE and temporal term alone; the validation MSE is no worse.
TRAIN_PRESETS = {
    "full": dict(beta_max=0.005, adv_weight=0.02, freq_grad_weight=1.0),
    "demo": dict(epochs=20, batch_size=16, lr=1e-3, warmup_steps=50, beta_max=0.005,
                 beta_warmup_steps=400, free_bits=0.02, adv_weight=0.02, freq_grad_weight=1.0),
    "tiny": dict(epochs=2, batch_size=4, lr=1e-3, warmup_steps=1, beta_warmup_steps=4, beta_max=0.1),
}


# --------------------------------------------------------------------------- families
EXPERIMENT_PACKAGES = ("TemplateCode", "AudioExperiment", "ImageExperiment")   # each exports FAMILIES

def _families() -> dict:
    """name -> {config: builder(preset, audio, **changes), config_cls, model: class(cfg, audio),
    loss: class(train_cfg, audio)}, optionally train_presets and audio: builder(preset, **changes)."""
    import model as mel
    fams = {"mel": dict(config=mel.mel_config, config_cls=mel.MelVAEConfig, model=mel.MelVAE,
                        loss=EfficientLoss)}
    try:
        import audio_resnet_encoder_wavenet_decoder as wave
        fams["wave"] = dict(config=wave.wave_config, config_cls=wave.WaveVAEConfig, model=wave.CVAE,
                            loss=wave.WaveformLoss, train_presets=wave.TRAIN_PRESETS, audio=wave.audio_config)
    except (ImportError, AttributeError):
        pass
    import importlib
    for package in EXPERIMENT_PACKAGES:                 # the templates' and experiments' families
        try:
            fams.update(importlib.import_module(package).FAMILIES)
        except ModuleNotFoundError as exc:              # a trimmed checkout without the folder
            if exc.name != package:
                raise
    return fams


def build_model(family: str, model_cfg, audio: AudioConfig) -> nn.Module:
    fams = _families()
    if family not in fams:
        raise KeyError(f"unknown model family {family!r}; available: {sorted(fams)}")
    return fams[family]["model"](model_cfg, audio)


# --------------------------------------------------------------------------- loss
class BetaSchedule:
    """KL weight as a function of the global optimiser step (so it survives a resume)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def __call__(self, step: int) -> float:
        c = self.cfg
        if c.beta_schedule == "constant":
            return c.beta_max
        if c.beta_schedule == "warmup":
            return c.beta_max * min(1.0, step / max(1, c.beta_warmup_steps))
        if c.beta_schedule == "cyclical":       # Fu et al. 2019: ramp for half a cycle, then hold
            phase = (step % c.beta_cycle_steps) / c.beta_cycle_steps
            return c.beta_max * min(1.0, 2.0 * phase)
        raise ValueError(f"unknown beta_schedule {c.beta_schedule!r}; use warmup, cyclical or constant")


def kl_terms(mu: torch.Tensor, logvar: torch.Tensor, cfg: TrainConfig) -> dict:
    """KL split over the low and high halves of the latent channels, with free bits.

    Returns named terms: ``kl_low``, ``kl_high`` (nats per channel, after free bits),
    ``kl`` (weighted sum used in the loss) and ``kl_raw`` (mean nats per channel).
    """
    from model import GaussianBottleneck
    per_dim = GaussianBottleneck.kl_per_dim(mu.float(), logvar.float())   # (D,)
    clamped = per_dim.clamp_min(cfg.free_bits)
    half = per_dim.shape[0] // 2
    kl_low, kl_high = clamped[:half].mean(), clamped[half:].mean()
    return {"kl_low": kl_low, "kl_high": kl_high, "kl_raw": per_dim.mean(),
            "kl": cfg.kl_low_weight * kl_low + cfg.kl_high_weight * kl_high}


class EfficientLoss(nn.Module):
    """0.7 x frequency-weighted MSE + 0.3 x L1 of the temporal gradient + beta x KL
    (+ adv_weight x the latent adversary's cross-entropy). Returns named terms.

    ``freq_grad_weight`` > 0 adds that weight x the L1 of the gradient over mel bins. The
    MSE alone is met by a blurred spectrogram, whose harmonic peaks and valleys are smoothed:
    the genre judge then reads low spectral contrast, whatever genre was asked for.
    """

    def __init__(self, cfg: TrainConfig, audio: AudioConfig):
        super().__init__()
        self.cfg = cfg
        n_mels = audio.n_mels
        # Low bands carry pitch and bass: weight 2 at the bottom falling to 1 at the top (mean 1).
        w = torch.linspace(2.0, 1.0, n_mels)
        self.register_buffer("freq_weight", (w / w.mean()).view(1, 1, n_mels, 1))

    def forward(self, out: dict, genre: torch.Tensor, beta: float) -> dict:
        recon, target = out["recon"].float(), out["target"].float()
        mse = (self.freq_weight * (recon - target).pow(2)).mean()
        grad_l1 = (torch.diff(recon, dim=-1) - torch.diff(target, dim=-1)).abs().mean()
        freq_grad_l1 = (torch.diff(recon, dim=-2) - torch.diff(target, dim=-2)).abs().mean()
        terms = {"mse": mse, "grad_l1": grad_l1, "freq_grad_l1": freq_grad_l1,
                 **kl_terms(out["mu"], out["logvar"], self.cfg)}
        terms["recon"] = 0.7 * mse + 0.3 * grad_l1 + self.cfg.freq_grad_weight * freq_grad_l1
        return _finish(terms, out, genre, beta, self.cfg)


def _finish(terms: dict, out: dict, genre: torch.Tensor, beta: float, cfg: TrainConfig) -> dict:
    """Add the adversary term and the weighted total (shared by every family's loss)."""
    if "adv_logits" in out and cfg.adv_weight > 0:
        terms["adv"] = F.cross_entropy(out["adv_logits"].float(), genre)
        terms["adv_acc"] = (out["adv_logits"].argmax(-1) == genre).float().mean()
    else:
        terms["adv"] = torch.zeros((), device=terms["recon"].device)
    terms["beta"] = torch.tensor(beta)
    terms["elbo"] = terms["recon"] + beta * terms["kl"]          # what "best" is chosen by
    terms["total"] = terms["elbo"] + cfg.adv_weight * terms["adv"]
    return terms


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; clear errors for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not ours"
        raise ValueError(f"{path} is not a readable genre-transfer checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a genre-transfer checkpoint (expected format "
                         f"{CHECKPOINT_FORMAT!r}, found {state.get('format') if isinstance(state, dict) else type(state).__name__!r})")
    return state


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested config dicts."""
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += config_differences(va, vb, f"{prefix}{key}.")
        elif _plain(va) != _plain(vb):
            diffs.append(f"{prefix}{key}: checkpoint has {va!r}, expected {vb!r}")
    return diffs


def _plain(v):
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def load_model(path, device="cpu", family: str | None = None, expect: dict | None = None):
    """Rebuild a model from a checkpoint alone.

    Parameters
    ----------
    path : checkpoint file (``best.pt`` / ``latest.pt``)
    family : if given, the checkpoint must be of this family ("mel" or "wave")
    expect : if given, a dict {"audio": ..., "model": ...} the checkpoint's configs must match

    Returns
    -------
    (model in eval mode on ``device``, checkpoint dict)
    """
    state = load_checkpoint(path)
    if family is not None and state["family"] != family:
        raise ValueError(f"{path} holds a {state['family']!r} model, not a {family!r} model")
    if expect is not None:
        diffs = config_differences({k: state[k] for k in expect}, expect)
        if diffs:
            raise ValueError(f"{path} was trained with another config: " + "; ".join(diffs))
    fams = _families()
    if state["family"] not in fams:
        raise ValueError(f"{path}: unknown model family {state['family']!r}")
    audio = AudioConfig.from_dict(state["audio"])
    model_cfg = config_from_dict(fams[state["family"]]["config_cls"], state["model"])
    model = build_model(state["family"], model_cfg, audio)
    model.load_state_dict(state["weights"])
    return model.to(device).eval(), state


# --------------------------------------------------------------------------- distributed
def _dist_info() -> tuple[int, int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def _unwrap(m: nn.Module) -> nn.Module:
    m = getattr(m, "_orig_mod", m)
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


# --------------------------------------------------------------------------- trainer
class MemoryEfficientTrainer:
    """Trains any model whose ``forward(x, genre)`` returns the dict the loss reads.

    The model provides ``prepare(waveforms) -> x`` (the mel VAE computes its log-mel there,
    on the device) and ``encode(x) -> (z, mu, logvar)``. Nothing here is specific to mels.
    """

    def __init__(self, model: nn.Module, loss: nn.Module, cfg: TrainConfig, out_dir, *,
                 family: str, audio: AudioConfig, model_cfg, train_data, val_data,
                 genres: list[str], data_info: dict | None = None, device=None, preset: str | None = None):
        self.rank, self.world, local_rank = _dist_info()
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if device is None:
            device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.cfg, self.family, self.audio, self.model_cfg = cfg, family, audio, model_cfg
        self.preset = preset
        self.genres, self.data_info = list(genres), data_info or {}
        self.out = Path(out_dir)
        self.model = model.to(self.device)
        if cfg.channels_last and self.device.type == "cuda" and any(p.dim() == 4 for p in model.parameters()):
            self.model = self.model.to(memory_format=torch.channels_last)   # tensor-core friendly layout
        self.loss = loss.to(self.device)
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.model = torch.compile(self.model)
        self.train_data, self.val_data = train_data, val_data
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, math.ceil(len(self._loader(train_data, 0, shuffle=True)) / cfg.accum_steps))
        self.total_steps = steps_per_epoch * cfg.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.beta = BetaSchedule(cfg)
        self.epoch, self.step, self.best_val = 0, 0, float("inf")
        self.genre_means = None
        self.autocast = dict(device_type=self.device.type, dtype=torch.bfloat16,
                             enabled=cfg.amp and self.device.type == "cuda")

    # ---- schedule
    def _lr_factor(self, step: int) -> float:
        warm = self.cfg.warmup_steps
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, self.total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    # ---- data
    def _loader(self, data, epoch: int, shuffle: bool):
        sampler = None
        if self.world > 1:
            sampler = torch.utils.data.DistributedSampler(data, self.world, self.rank, shuffle=shuffle,
                                                          seed=self.cfg.seed)
            sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)   # order from (seed, epoch)
        return torch.utils.data.DataLoader(
            data, batch_size=self.cfg.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
            generator=gen, num_workers=self.cfg.num_workers, drop_last=shuffle and len(data) > self.cfg.batch_size,
            pin_memory=self.device.type == "cuda", persistent_workers=False)

    def _to_device(self, batch):
        wave, genre = batch[0], batch[1]
        return (wave.to(self.device, non_blocking=True).float(),
                torch.as_tensor(genre).to(self.device, non_blocking=True).long())

    # ---- state
    def state_dict(self) -> dict:
        core = _unwrap(self.model)
        return {
            "format": CHECKPOINT_FORMAT, "family": self.family, "preset": self.preset or "",
            "audio": self.audio.to_dict(), "model": dataclasses.asdict(self.model_cfg),
            "train": dataclasses.asdict(self.cfg),
            "weights": core.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "epoch": self.epoch, "step": self.step, "best_val": self.best_val,
            "beta": {"schedule": self.cfg.beta_schedule, "value": self.beta(self.step), "step": self.step},
            "genres": self.genres,
            "genre_means": self.genre_means if self.genre_means is not None else torch.zeros(0),
            "data": self.data_info,
        }

    def load_state(self, state: dict) -> None:
        expect = {"family": self.family, "audio": self.audio.to_dict(),
                  "model": dataclasses.asdict(self.model_cfg)}
        diffs = [f"family: checkpoint has {state['family']!r}, expected {self.family!r}"] \
            if state["family"] != self.family else []
        diffs += config_differences({"audio": state["audio"], "model": state["model"]},
                                    {"audio": expect["audio"], "model": expect["model"]})
        if diffs:
            raise ValueError("cannot resume: the checkpoint was trained with another config: "
                             + "; ".join(diffs) + " (use --fresh or another --out)")
        _unwrap(self.model).load_state_dict(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.epoch, self.step, self.best_val = state["epoch"], state["step"], state["best_val"]
        self.genre_means = state["genre_means"] if state["genre_means"].numel() else None

    def save(self, name: str) -> Path:
        path = self.out / name
        if self.rank == 0:
            save_checkpoint(path, self.state_dict())
        return path

    # ---- one epoch
    def _run_epoch(self, epoch: int, train: bool) -> dict:
        model, data = self.model, (self.train_data if train else self.val_data)
        model.train(train)
        loader = self._loader(data, epoch, shuffle=train)
        sums, count = {}, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs} {'train' if train else 'valid'}",
                   leave=False, disable=self.rank != 0, dynamic_ncols=True)
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar):
            wave, genre = self._to_device(batch)
            with torch.set_grad_enabled(train), torch.autocast(**self.autocast):
                x = _unwrap(model).prepare(wave)
                terms = self.loss(model(x, genre), genre, self.beta(self.step))
            if train:
                (terms["total"] / self.cfg.accum_steps).backward()
                if (i + 1) % self.cfg.accum_steps == 0 or i + 1 == len(loader):
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            count += 1
            bar.set_postfix(loss=f"{sums['total'] / count:.4f}", beta=f"{self.beta(self.step):.3g}")
            if self.cfg.smoke_test:
                break
        means = {k: v / max(1, count) for k, v in sums.items()}
        if self.world > 1:                       # average the epoch's terms over ranks
            keys = sorted(means)
            t = torch.tensor([means[k] for k in keys], device=self.device)
            dist.all_reduce(t)
            means = dict(zip(keys, (t / self.world).tolist()))
        return means

    @torch.no_grad()
    def encode_dataset(self, data, max_batches: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """mu and logvar (time-averaged, [N, D]) and genre labels [N] of ``data``, in eval mode."""
        core = _unwrap(self.model).eval()
        mus, logvars, labels = [], [], []
        loader = torch.utils.data.DataLoader(data, batch_size=self.cfg.batch_size, shuffle=False,
                                             num_workers=self.cfg.num_workers)
        for i, batch in enumerate(loader):
            wave, genre = self._to_device(batch)
            with torch.autocast(**self.autocast):
                _, mu, logvar = core.encode(core.prepare(wave))
            mus.append(mu.float().flatten(2).mean(-1).cpu())
            logvars.append(logvar.float().flatten(2).mean(-1).cpu())
            labels.append(genre.cpu())
            if self.cfg.smoke_test or (max_batches and i + 1 >= max_batches):
                break
        return torch.cat(mus), torch.cat(logvars), torch.cat(labels)

    def _latent_health(self) -> dict:
        mu, _, labels = self.encode_dataset(self.train_data)
        means = torch.stack([mu[labels == g].mean(0) if (labels == g).any() else torch.zeros(mu.shape[1])
                             for g in range(len(self.genres))])
        self.genre_means = means                                        # (G, D)
        active = int((mu.var(0) > 0.01).sum()) if mu.shape[0] > 1 else 0
        return {"active_units": active, "latent_dim": mu.shape[1]}

    # ---- the loop
    def fit(self) -> Path:
        """Train until ``cfg.epochs`` (resuming if a checkpoint was loaded); return best.pt."""
        torch.manual_seed(self.cfg.seed)
        log_path = self.out / "log.csv"
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        epochs = range(self.epoch, 1 if self.cfg.smoke_test else self.cfg.epochs)
        for epoch in tqdm(epochs, desc="training", disable=self.rank != 0, initial=self.epoch,
                          total=self.cfg.epochs, dynamic_ncols=True):
            # Noise and order depend on (seed, epoch, rank) only: a resumed run repeats them.
            torch.manual_seed(self.cfg.seed * 1000003 + epoch * 101 + self.rank)
            t0 = time.time()
            train = self._run_epoch(epoch, train=True)
            val = self._run_epoch(epoch, train=False)
            health = self._latent_health()
            self.epoch = epoch + 1
            row = {"epoch": self.epoch, "step": self.step, "lr": self.scheduler.get_last_lr()[0],
                   "seconds": round(time.time() - t0, 2), **health,
                   **{f"train_{k}": v for k, v in train.items()}, **{f"val_{k}": v for k, v in val.items()}}
            if self.rank == 0:
                if health["active_units"] < self.cfg.lazy_threshold * health["latent_dim"]:
                    tqdm.write(f"warning: the VAE is getting lazy: {health['active_units']} of "
                               f"{health['latent_dim']} latent units active (variance of mu > 0.01)")
                _append_csv(log_path, row)
                if val["elbo"] < self.best_val:
                    self.best_val = val["elbo"]
                    self.save("best.pt")
                self.save("latest.pt")
                tqdm.write(f"epoch {self.epoch}: train {train['total']:.4f}  valid {val['total']:.4f}  "
                           f"kl {train['kl_raw']:.3f}  active {health['active_units']}/{health['latent_dim']}")
            if self.world > 1:
                dist.barrier()
        if self.rank == 0 and log_path.exists():
            plot_loss_curves(log_path, self.out / "loss_curves.png")
        return self.out / "best.pt"


def _append_csv(path: Path, row: dict) -> None:
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
    rows.append(row)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def plot_loss_curves(log_csv, out_png) -> Path:
    """Train / validation total, reconstruction and KL per epoch, and active units."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    ep = [int(r["epoch"]) for r in rows]
    col = lambda k: [float(r[k]) if r.get(k) not in (None, "") else np.nan for r in rows]  # noqa: E731
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, key in zip(axes[:3], ["total", "recon", "kl_raw"]):
        ax.plot(ep, col(f"train_{key}"), label="train")
        ax.plot(ep, col(f"val_{key}"), label="valid")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend()
    axes[3].plot(ep, col("active_units"))
    axes[3].set_title("active latent units")
    axes[3].set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


# --------------------------------------------------------------------------- CLI
def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        import ast
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a genre-transfer VAE (mel or waveform).")
    p.add_argument("--data", default="Data/synthetic",
                   help="GTZAN folder (Kaggle layout); 'Data/synthetic' is generated when missing")
    p.add_argument("--model", choices=["mel", "wave"], default="mel")
    p.add_argument("--preset", default="demo", help="demo | full | tiny")
    p.add_argument("--out", default="vae_logs")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--split", choices=["auto", "filtered", "random", "content"])
    p.add_argument("--num-workers", type=int)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--resume", action="store_true", help="resume from <out>/latest.pt (the default when it exists)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--smoke-test", action="store_true", help="one batch of training and validation")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", default=[],
                   help="overrides: audio.KEY=V, model.KEY=V or train.KEY=V")
    p.add_argument("--synthetic-per-genre", type=int, default=30)
    p.add_argument("--synthetic-duration", type=float, default=10.0)
    return p


def configs_from_args(args) -> tuple[AudioConfig, object, TrainConfig]:
    fams = _families()
    if args.model not in fams:
        raise SystemExit(f"model family {args.model!r} is not available")
    sets = _parse_set(args.set)
    scoped = {"audio": {}, "model": {}, "train": {}}
    for k, v in sets.items():
        scope, _, key = k.partition(".")
        if scope not in scoped or not key:
            raise SystemExit(f"--set key {k!r} must start with audio., model. or train.")
        scoped[scope][key] = v
    fam = fams[args.model]
    if "audio" in fam:                                  # a family with its own audio presets
        audio = fam["audio"](args.preset, **scoped["audio"])
    else:
        audio = AudioConfig.preset("full" if args.preset == "full" else "demo", **scoped["audio"])
    model_cfg = fam["config"](args.preset, audio, **scoped["model"])
    presets = fam.get("train_presets", TRAIN_PRESETS)        # a family may tune its own optimisation
    if args.preset not in presets:
        raise SystemExit(f"unknown preset {args.preset!r}; choose from {sorted(presets)}")
    train = override(TrainConfig(), **presets[args.preset])
    cli = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
           "split": args.split, "num_workers": args.num_workers}
    train = override(train, **{k: v for k, v in cli.items() if v is not None}, **scoped["train"])
    if args.compile:
        train = override(train, compile=True)
    if args.smoke_test:
        train = override(train, smoke_test=True)
    return audio, model_cfg, train


def configs_for(family: str, preset: str, *extra: str) -> tuple[AudioConfig, object, TrainConfig]:
    """The configs ``python trainer.py --model FAMILY --preset PRESET [extra...]`` would train with."""
    return configs_from_args(build_parser().parse_args(["--model", family, "--preset", preset, *extra]))


def ensure_data(data: str, per_genre: int, duration: float, sr: int) -> Path:
    """The data folder; the synthetic GTZAN is generated into it when it is the default and missing."""
    path = Path(data)
    genres_dir = path / "genres_original"
    if not path.exists() or (path.name == "synthetic" and not genres_dir.exists()):
        if path.name != "synthetic":
            raise FileNotFoundError(f"data folder not found: {path} (expected GTZAN's Kaggle layout "
                                    f"<data>/genres_original/<genre>/<genre>.000NN.wav)")
        import synthetic_gtzan
        synthetic_gtzan.generate(path, n_per_genre=per_genre, duration=duration, sr=sr)
    return path


def main(argv=None) -> Path:
    args = build_parser().parse_args(argv)
    audio, model_cfg, train_cfg = configs_from_args(args)
    rank, world, _ = _dist_info()
    data_root = ensure_data(args.data, args.synthetic_per_genre, args.synthetic_duration, 22050) \
        if rank == 0 else Path(args.data)
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        dist.barrier()
    from prepare_data import prepare_enhanced_dataset
    train_data, val_data, info = prepare_enhanced_dataset(data_root, audio, split=train_cfg.split,
                                                          seed=train_cfg.seed, datasets_only=True)
    torch.manual_seed(train_cfg.seed)                 # identical initial weights on every run and rank
    fam = _families()[args.model]
    model = build_model(args.model, model_cfg, audio)
    loss = fam["loss"](train_cfg, audio)
    trainer = MemoryEfficientTrainer(model, loss, train_cfg, args.out, family=args.model, audio=audio,
                                     model_cfg=model_cfg, train_data=train_data, val_data=val_data,
                                     genres=info["genres"], data_info=info["summary"], preset=args.preset)
    latest = Path(args.out) / "latest.pt"
    if latest.exists() and not args.fresh:
        trainer.load_state(load_checkpoint(latest))
        if rank == 0:
            print(f"resuming from {latest} at epoch {trainer.epoch}, step {trainer.step}")
    elif args.resume and not latest.exists():
        raise SystemExit(f"--resume: no checkpoint at {latest}")
    best = trainer.fit()
    if rank == 0:
        print(f"best checkpoint: {best}")
    if world > 1:
        dist.destroy_process_group()
    return best


if __name__ == "__main__":
    main()
