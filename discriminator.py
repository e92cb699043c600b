"""The critics of the adversarial phase: a genre-conditional mel discriminator and a genre classifier.

Both read normalised log-mels [B, 1, M, F] (the waveform family through the mel of its
output), so one module serves every model family.

- :class:`MelDiscriminator` judges whether a mel is a real clip *of a given genre*. It sees
  the mel at a few time scales (the input, then average-pooled over time), each through
  its own stack of strided 2-D convolutions (spectral or weight normalisation), and is told the
  genre by projection (Miyato & Koyama 2018): a patch with features h scores
  ``psi(h) + <embed(y), h>``. Its layers' features serve feature matching.
- :class:`GenreClassifier` is a small CNN trained on real mels (and, if the trainer asks,
  on decodes told another genre, labelled with their source genre), frozen while it judges:
  its cross-entropy on a decode told another genre is the signal that makes the decoder
  render the genre it was asked for (StarGAN's domain classification loss). A realism
  discriminator alone does not give it: it rates a swapped decode that copies the source
  genre as real.
- :class:`Critics` holds the two, as the trainer stores them in a checkpoint.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm
from torch.nn.utils.parametrizations import weight_norm

NORMS = {"spectral": spectral_norm, "weight": weight_norm, "none": lambda module: module}


class ScaleDiscriminator(nn.Module):
    """Projection discriminator on one time scale: [B, 1, M, F], genre [B] -> patch logits.

    Parameters
    ----------
    n_genres : number of genre labels
    channels : output channels of the strided convolutions, one per layer
    strides : (freq, time) stride of each layer
    kernel : kernel size of every convolution
    norm : "spectral" (Lipschitz-bounded, slow to learn at this size), "weight" or "none"
    """

    def __init__(self, n_genres: int, channels=(32, 64, 128, 128),
                 strides=((2, 2), (2, 2), (2, 2), (2, 1)), kernel: int = 3, norm: str = "spectral"):
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(f"ScaleDiscriminator: {len(channels)} channels but {len(strides)} strides")
        if norm not in NORMS:
            raise ValueError(f"ScaleDiscriminator: norm {norm!r}, expected one of {sorted(NORMS)}")
        wrap = NORMS[norm]
        layers, c_in = [], 1
        for c_out, stride in zip(channels, strides):
            layers.append(wrap(nn.Conv2d(c_in, c_out, kernel, stride=tuple(stride), padding=kernel // 2)))
            c_in = c_out
        self.layers = nn.ModuleList(layers)
        self.psi = wrap(nn.Conv2d(c_in, 1, 1))
        self.embed = spectral_norm(nn.Embedding(n_genres, c_in)) if norm == "spectral" else nn.Embedding(n_genres, c_in)

    def forward(self, x: torch.Tensor, genre: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits [B, M', F'] one per patch, every layer's features [B, C_l, M_l, F_l])."""
        feats, h = [], x
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            feats.append(h)
        proj = (self.embed(genre)[:, :, None, None] * h).sum(1)                # (B, M', F')
        return self.psi(h)[:, 0] + proj, feats


class MelDiscriminator(nn.Module):
    """Genre-conditional multi-scale mel discriminator.

    ``forward(x [B, 1, M, F], genre [B])`` -> list, one (logits, features) per time scale
    (``scales``: the pooling factor over time, 1 = the input itself).
    """

    def __init__(self, n_genres: int, scales=(1, 2, 4), channels=(32, 64, 128, 128), norm: str = "spectral"):
        super().__init__()
        self.scales = tuple(scales)
        self.nets = nn.ModuleList(ScaleDiscriminator(n_genres, channels, norm=norm) for _ in self.scales)

    def forward(self, x: torch.Tensor, genre: torch.Tensor) -> list:
        return [net(x if s == 1 else F.avg_pool2d(x, (1, s)), genre) for s, net in zip(self.scales, self.nets)]


class GenreClassifier(nn.Module):
    """A small CNN genre classifier: normalised log-mel [B, 1, M, F] -> logits [B, G].

    Four (conv3x3 -> GroupNorm -> LeakyReLU -> 2x2 max-pool) stages; the features are
    averaged over time (``pooling="mean"``; ``"mean+std"`` adds their standard deviation over
    time, so the head also reads how the sound moves: hits, tremolo), flattened over
    frequency and read by a linear layer (with dropout).
    """

    def __init__(self, n_genres: int, n_mels: int, channels=(16, 32, 64, 64), dropout: float = 0.3,
                 pooling: str = "mean"):
        super().__init__()
        if pooling not in ("mean", "mean+std"):
            raise ValueError(f"GenreClassifier: pooling {pooling!r}; expected 'mean' or 'mean+std'")
        self.pooling = pooling
        layers, c_in = [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.GroupNorm(min(8, c), c), nn.LeakyReLU(0.2),
                       nn.MaxPool2d(2)]
            c_in = c
        self.body = nn.Sequential(*layers)
        rows = n_mels // 2 ** len(channels)
        if rows < 1:
            raise ValueError(f"GenreClassifier: {n_mels} mel bands cannot be halved {len(channels)} times")
        stats = 2 if pooling == "mean+std" else 1
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(stats * c_in * rows, n_genres))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        pooled = h.mean(dim=-1)
        if self.pooling == "mean+std":
            pooled = torch.cat([pooled, h.std(dim=-1, correction=0)], 1)
        return self.head(pooled.flatten(1))                                   # (B, G)


class Critics(nn.Module):
    """The discriminator and the genre classifier of one training run."""

    def __init__(self, n_genres: int, n_mels: int, scales=(1, 2, 4), channels=(32, 64, 128, 128),
                 norm: str = "spectral", classifier_pooling: str = "mean"):
        super().__init__()
        self.discriminator = MelDiscriminator(n_genres, scales, channels, norm)
        self.classifier = GenreClassifier(n_genres, n_mels, pooling=classifier_pooling)


# --------------------------------------------------------------------------- losses
def d_hinge_loss(real: list, fake: list) -> torch.Tensor:
    """Discriminator hinge loss, mean relu(1 - D(real)) + mean relu(1 + D(fake)) over scales."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for (r, _), (f, _) in zip(real, fake)) / len(real)


def g_hinge_loss(fake: list) -> torch.Tensor:
    """The generator's hinge loss, -mean D(fake) over scales."""
    return sum(-f.mean() for f, _ in fake) / len(fake)


def feature_matching_loss(real: list, fake: list) -> torch.Tensor:
    """L1 between the discriminator's features of real mels (detached) and of their paired
    reconstructions, averaged over layers and scales."""
    terms = [(fr.detach() - ff).abs().mean() for (_, rf), (_, ff_) in zip(real, fake) for fr, ff in zip(rf, ff_)]
    return sum(terms) / len(terms)
