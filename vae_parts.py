"""The pieces every VAE family shares: the Gaussian bottleneck and its KL, the genre
embedding and FiLM, the latent genre adversary, the weighted total of named loss terms, and
the folding of an observed stream (the onset stream of ``timing``) into the code.

Both families and every experiment build on these, so transfer, the latent tools and the
trainer meet one bottleneck and one loss layout whatever the model.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- bottleneck
class GaussianBottleneck(nn.Module):
    """Features -> (z, mu, logvar). Works on any trailing shape: channels on dim 1.

    ``logvar`` is bounded to [-logvar_bound, logvar_bound] by a scaled tanh, so the KL
    cannot explode on the first optimiser steps.

    ``init_logvar`` starts the posterior narrower than the prior. At logvar = 0 the sampled
    z is almost all noise (mu is small at first), and the decoder learns to ignore the
    latent before the encoder has learnt anything.
    """

    def __init__(self, in_channels: int, latent_dim: int, logvar_bound: float = 8.0,
                 init_logvar: float = 0.0, rows: int = 1):
        super().__init__()
        if not -logvar_bound < init_logvar < logvar_bound:
            raise ValueError(f"init_logvar={init_logvar} must lie inside (-logvar_bound, logvar_bound) "
                             f"= ({-logvar_bound}, {logvar_bound})")
        if rows < 1 or in_channels % rows:
            raise ValueError(f"GaussianBottleneck: {in_channels} input channels do not split into {rows} rows")
        # rows > 1: the input is [B, C * rows, T'] (C-major) and one 1x1 head, shared by the
        # rows, gives latent_dim channels per row; z is flattened back to [B, latent_dim * rows, T'].
        self.head = (nn.Conv1d(in_channels, 2 * latent_dim, kernel_size=1) if rows == 1
                     else nn.Conv2d(in_channels // rows, 2 * latent_dim, kernel_size=1))
        self.latent_dim, self.rows = latent_dim, rows
        self.logvar_bound = logvar_bound
        with torch.no_grad():           # the head maps raw r to bound * tanh(r / bound)
            self.head.bias[latent_dim:].fill_(logvar_bound * math.atanh(init_logvar / logvar_bound))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.rows == 1:
            mu, raw = self.head(h).chunk(2, dim=1)                   # (B, D, T') each
        else:
            b, _, t = h.shape
            mu, raw = (part.flatten(1, 2) for part in self.head(h.view(b, -1, self.rows, t)).chunk(2, dim=1))
        logvar = self.logvar_bound * torch.tanh(raw / self.logvar_bound)
        return self.reparametrize(mu, logvar), mu, logvar

    def reparametrize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    @staticmethod
    def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q || N(0, 1)) per latent channel, averaged over batch and time: [D]."""
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)          # (B, D, T')
        return kl.transpose(0, 1).reshape(kl.shape[1], -1).mean(dim=1)


# --------------------------------------------------------------------------- genre
class GenreFiLM(nn.Module):
    """Genre index -> per-channel (scale, shift) for feature-wise linear modulation."""

    def __init__(self, n_genres: int, embed_dim: int, channels: int):
        super().__init__()
        self.to_scale_shift = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, h: torch.Tensor, genre_embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.to_scale_shift(genre_embedding).chunk(2, dim=-1)   # (B, C) each
        view = (h.shape[0], h.shape[1]) + (1,) * (h.dim() - 2)
        return h * (1.0 + scale.view(view)) + shift.view(view)


class GenreEmbedding(nn.Embedding):
    """Genre index -> embedding, with optional genre dropout.

    With ``dropout`` > 0 the table has one more row, a learned "no genre" entry (index
    ``n_genres``), and in training each genre is replaced by it with that probability. A
    decoder that must sometimes reconstruct without being told the genre cannot draw a
    per-genre average from the conditioning alone: it has to read the latent.
    """

    def __init__(self, n_genres: int, dim: int, dropout: float = 0.0):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"genre dropout must be in [0, 1), got {dropout}")
        super().__init__(n_genres + (1 if dropout > 0 else 0), dim)
        self.n_genres, self.dropout = n_genres, dropout

    def forward(self, genre: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout > 0:
            drop = torch.rand(genre.shape, device=genre.device) < self.dropout
            genre = torch.where(drop, torch.full_like(genre, self.n_genres), genre)
        return super().forward(genre)


# --------------------------------------------------------------------------- latent adversary
class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


class GradientReversal(nn.Module):
    """Identity on the way forward; multiplies the gradient by -lambda on the way back."""

    def __init__(self, lam: float = 1.0):
        super().__init__()
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGrad.apply(x, self.lam)


ADVERSARY_OBJECTIVES = ("reversal", "confusion")


class LatentGenreAdversary(nn.Module):
    """A classifier that predicts the genre from mu [B, D, T'], and how the encoder learns to
    hide the genre from it (``objective``):

    - "reversal" (Ganin & Lempitsky 2015): the classifier's gradient reaches the encoder
      reversed, so the encoder maximises the classifier's cross-entropy. That goal has no
      bound: the encoder can make the classifier confidently wrong (which still tells the
      genre), and the chase can swing the whole VAE (design notes, 2026-12-06);
    - "confusion" (Tzeng et al. 2015): the classifier learns from a detached mu, and the
      encoder, through the classifier's frozen weights, learns to make its prediction uniform
      (:meth:`confusion`), a goal met at chance and no further.
    """

    def __init__(self, latent_dim: int, n_genres: int, hidden: int = 128, objective: str = "reversal"):
        super().__init__()
        if objective not in ADVERSARY_OBJECTIVES:
            raise ValueError(f"adversary objective {objective!r}: choose from {ADVERSARY_OBJECTIVES}")
        self.objective = objective
        self.reverse = GradientReversal(1.0)
        self.net = nn.Sequential(nn.Conv1d(latent_dim, hidden, 1), nn.GELU(),
                                 nn.Conv1d(hidden, hidden, 1), nn.GELU(),
                                 nn.Conv1d(hidden, n_genres, 1))

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        """The classifier's logits (B, n_genres); their cross-entropy trains it (and, reversed,
        the encoder with "reversal")."""
        return self.net(self.reverse(mu) if self.objective == "reversal" else mu.detach()).mean(dim=-1)

    def confusion(self, mu: torch.Tensor) -> torch.Tensor:
        """The cross-entropy of the classifier's prediction from ``mu`` against the uniform
        distribution, less its minimum log(n_genres): 0 when the prediction is at chance. Its
        gradient reaches ``mu`` and not the classifier, whose weights are read frozen."""
        frozen = {name: p.detach() for name, p in self.net.named_parameters()}
        logits = torch.func.functional_call(self.net, frozen, (mu,)).mean(dim=-1).float()
        return -F.log_softmax(logits, dim=-1).mean(dim=-1).mean() - math.log(logits.shape[-1])


def check_adversary_objective(cfg) -> None:
    """A family config's ``adversary_objective`` must be one of ``ADVERSARY_OBJECTIVES`` (the
    error names the config's class)."""
    if cfg.adversary_objective not in ADVERSARY_OBJECTIVES:
        raise ValueError(f"{type(cfg).__name__}: adversary_objective={cfg.adversary_objective!r}; choose from "
                         f"{ADVERSARY_OBJECTIVES}")


def latent_adversary(cfg) -> LatentGenreAdversary | None:
    """The adversary a family's config asks for (``adversary``, ``latent_channels``,
    ``n_genres``, ``adversary_objective``; an experiment's config without the last gets the
    reversal), or None."""
    if not cfg.adversary:
        return None
    return LatentGenreAdversary(cfg.latent_channels, cfg.n_genres,
                                objective=getattr(cfg, "adversary_objective", "reversal"))


def adversary_outputs(adversary: LatentGenreAdversary | None, mu: torch.Tensor) -> dict:
    """What a family's ``forward`` adds for its adversary on the latent ``mu``: the classifier's
    ``adv_logits`` and, with the "confusion" objective, the encoder's ``adv_confusion``."""
    if adversary is None:
        return {}
    out = {"adv_logits": adversary(mu)}
    if adversary.objective == "confusion":
        out["adv_confusion"] = adversary.confusion(mu)
    return out


# --------------------------------------------------------------------------- loss terms
def kl_terms(mu: torch.Tensor, logvar: torch.Tensor, cfg) -> dict:
    """KL split over the low and high halves of the latent channels, with free bits.

    ``cfg`` carries ``free_bits`` (nats per channel below which the KL is not pushed) and
    ``kl_low_weight`` / ``kl_high_weight`` (trainer.TrainConfig does).

    Returns named terms: ``kl_low``, ``kl_high`` (nats per channel, after free bits),
    ``kl`` (their weighted sum, the loss term) and ``kl_raw`` (mean nats per channel).
    """
    per_dim = GaussianBottleneck.kl_per_dim(mu.float(), logvar.float())   # (D,)
    clamped = per_dim.clamp_min(cfg.free_bits)
    half = per_dim.shape[0] // 2
    kl_low, kl_high = clamped[:half].mean(), clamped[half:].mean()
    return {"kl_low": kl_low, "kl_high": kl_high, "kl_raw": per_dim.mean(),
            "kl": cfg.kl_low_weight * kl_low + cfg.kl_high_weight * kl_high}


def total_loss(terms: dict, out: dict, genre: torch.Tensor, beta: float, cfg) -> dict:
    """Complete a family's named terms (``recon`` and the KL terms) with the adversary's
    cross-entropy ``adv`` (and the encoder's ``adv_confusion``, :func:`adversary_outputs`),
    ``beta``, ``elbo = recon + beta kl`` (the validation criterion) and ``total = elbo +
    adv_weight (adv + adv_confusion)`` (what is minimised). ``cfg`` carries ``adv_weight``."""
    if "adv_logits" in out and cfg.adv_weight > 0:
        terms["adv"] = F.cross_entropy(out["adv_logits"].float(), genre)
        terms["adv_acc"] = (out["adv_logits"].argmax(-1) == genre).float().mean()
    else:
        terms["adv"] = torch.zeros((), device=terms["recon"].device)
    terms["beta"] = torch.tensor(beta)
    terms["elbo"] = terms["recon"] + beta * terms["kl"]
    terms["total"] = terms["elbo"] + cfg.adv_weight * terms["adv"]
    if "adv_confusion" in out and cfg.adv_weight > 0:
        terms["adv_confusion"] = out["adv_confusion"]
        terms["total"] = terms["total"] + cfg.adv_weight * terms["adv_confusion"]
    return terms


# --------------------------------------------------------------------------- observed channels
# With ``timing`` a family's code carries, after its latent channels, an observed stream at a
# finer frame rate than the latent's (the input's onsets), folded so that it rides along the
# latent's time axis: channel j holds frame j of each latent step. The KL, the adversary and the
# diagnostics read the latent channels only.
def fold_time(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Streams [B, S, F] -> [B, S * stride, F / stride]: channel s * stride + j holds frame j of
    each latent step of stream s."""
    b, n, f = x.shape
    return x.view(b, n, f // stride, stride).transpose(2, 3).reshape(b, n * stride, f // stride)


def unfold_time(x: torch.Tensor, streams: int = 1) -> torch.Tensor:
    """The inverse of :func:`fold_time`: [B, S * stride, F'] -> [B, S, F' * stride]."""
    b, c, t = x.shape
    return x.view(b, streams, c // streams, t).transpose(2, 3).reshape(b, streams, t * (c // streams))


def transfer_code(model: nn.Module, z: torch.Tensor, strength: float, source: torch.Tensor | None = None,
                  target: torch.Tensor | None = None) -> torch.Tensor:
    """The code ``model`` decodes when told another genre at ``strength`` (from the ``source``
    genres [B] to the ``target`` genres [B]): its own ``transfer_code`` where it has one (the mel
    VAE fades a stream that belongs to the source's genre, its hits), else ``z``."""
    edit = getattr(model, "transfer_code", None)
    return z if edit is None else edit(z, strength, source, target)


def with_observed(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, streams: torch.Tensor,
                  stride: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, mu, logvar) [B, D, F'] with ``streams`` [B, S, F' * stride] folded after the latent:
    the same in z and mu, 0 in logvar (observed, not inferred)."""
    folded = fold_time(streams, stride).to(mu.dtype)
    return (torch.cat([z, folded], 1), torch.cat([mu, folded], 1), torch.cat([logvar, torch.zeros_like(folded)], 1))
