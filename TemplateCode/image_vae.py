"""The plain spectrogram-image VAE a newcomer starts from (Kingma & Welling 2014, conditional).

The input is the project's normalised log-mel "image" [B, 1, M, F] in [-1, 1] (the
model's ``prepare`` computes it from waveforms on the device). Encoder: one strided
convolution + GELU per stage, no residual blocks; the frequency axis is folded into
channels, so the latent is a *sequence* over time [B, D, F / time stride], as in the
project's mel VAE. Decoder: per stage nearest-neighbour upsampling, a convolution, GELU
and a genre FiLM; a last convolution gives the mel, clamped to [-1, 1] with a straight-
through gradient. Bottleneck, genre embedding, ``prepare``/``encode``/``decode``/
``forward`` are :class:`model.MelVAE`'s: this class passes it the plain encoder/decoder.

    audio, cfg, _ = trainer.configs("template-mel", "demo")
    model = PlainMelVAE(cfg, audio)

The configuration is :class:`model.MelVAEConfig` (``channels`` and ``strides`` per stage).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import trainer
from model import MelVAE, MelVAEConfig, mel_config
from prepare_data import AudioConfig
from vae_parts import GenreFiLM

# The latent as a plain sequence (no frequency rows, the whole mel in): the encoders of
# this template and of the hierarchical GRU fold the frequency axis into channels.
SEQUENCE_PRESETS = {
    # 1 x 128 x 512 input -> latent 16 x 32 = 512 numbers per segment.
    "full": dict(channels=(32, 64, 128, 256), strides=((2, 2), (2, 2), (2, 2), (2, 2)), latent_dim=16),
    # 1 x 128 x 128 input -> latent 16 x 16 = 256 numbers.
    "demo": dict(channels=(16, 32, 64, 64), strides=((2, 2), (2, 2), (2, 2), (2, 1)),
                 latent_dim=16, genre_embed_dim=32),
    "tiny": dict(channels=(8, 16), strides=((4, 2), (4, 2)), latent_dim=8, genre_embed_dim=8),
}


def plain_mel_config(preset: str, audio: AudioConfig, **changes) -> MelVAEConfig:
    """The mel VAE's sequence-latent ``preset`` (the whole mel in, no frequency rows) sized
    for ``audio``, without the latent adversary."""
    return mel_config(preset, audio, SEQUENCE_PRESETS, **{"adversary": False, **changes})


def _odd_kernel(stride) -> tuple:
    """Kernel 2s + 1 with padding s: a stride-s convolution that divides the size by s."""
    return tuple(2 * s + 1 for s in stride), tuple(stride)


class PlainMelEncoder(nn.Module):
    """[B, 1, M, F] -> features [B, C_last * M', F'] (frequency folded into channels)."""

    def __init__(self, cfg: MelVAEConfig):
        super().__init__()
        layers, c_in = [], 1
        for c_out, stride in zip(cfg.channels, cfg.strides):
            kernel, pad = _odd_kernel(stride)
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=tuple(stride), padding=pad), nn.GELU()]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in * cfg.latent_freq

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.net(mel)                                             # (B, C, M', F')
        return h.flatten(1, 2)                                        # (B, C*M', F')


class PlainMelDecoder(nn.Module):
    """Latent [B, D, F'] (+ genre embedding [B, E]) -> mel [B, 1, M, F] in [-1, 1]."""

    def __init__(self, cfg: MelVAEConfig):
        super().__init__()
        self.top, self.freq = cfg.channels[-1], cfg.latent_freq
        self.inp = nn.Conv1d(cfg.latent_dim, self.top * self.freq, 1)
        outs = list(cfg.channels[-2::-1]) + [cfg.channels[0]]          # mirror the encoder
        ins = [self.top] + outs[:-1]
        self.stages = nn.ModuleList([
            nn.Sequential(nn.Upsample(scale_factor=tuple(s), mode="nearest"), nn.Conv2d(i, o, 3, padding=1))
            for i, o, s in zip(ins, outs, reversed(cfg.strides))])
        self.films = nn.ModuleList([GenreFiLM(cfg.n_genres, cfg.genre_embed_dim, o) for o in outs]) \
            if cfg.conditional else None
        self.out = nn.Conv2d(outs[-1], 1, 3, padding=1)

    def forward(self, z: torch.Tensor, genre_embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(z).unflatten(1, (self.top, self.freq))             # (B, C, M', F')
        for i, stage in enumerate(self.stages):
            h = F.gelu(stage(h))                                        # (B, C, M*s, F*s)
            if self.films is not None and genre_embedding is not None:
                h = self.films[i](h, genre_embedding)
        y = self.out(h)                                                 # (B, 1, M, F)
        return y + (y.clamp(-1.0, 1.0) - y).detach()                    # straight-through clamp


class PlainMelVAE(MelVAE):
    """The mel VAE with the plain encoder and decoder."""

    family = "mel"

    def __init__(self, cfg: MelVAEConfig, audio: AudioConfig):
        super().__init__(cfg, audio, encoder=PlainMelEncoder(cfg), decoder=PlainMelDecoder(cfg))


trainer.register(trainer.Family("template-mel", PlainMelVAE, MelVAEConfig, plain_mel_config, trainer.EfficientLoss,
                                trainer.TRAIN_PRESETS))
