"""The plain waveform VAE a newcomer starts from (Kingma & Welling 2014, made conditional).

Encoder: a stem and one strided convolution per stage (the project's ``Resnet1DBlock``
with no residual units). Decoder: nearest-neighbour upsampling and a convolution per
stage (``UpsampleBlock`` with no residual units), each stage modulated by the genre
(``GenreFiLM``), then a 1-channel convolution and tanh. Bottleneck, genre embedding,
adversary, ``prepare``/``encode``/``decode``/``forward`` are the waveform CVAE's: this
class only passes it the plain decoder instead of the WaveNet one.

    audio, cfg, _ = trainer.configs("template-wave", "demo")
    model = PlainWaveVAE(cfg, audio)
    out = model(model.prepare(wave), genre)      # {"recon", "target", "z", "mu", "logvar", ...}

The configuration is the waveform VAE's ``WaveVAEConfig``: ``channels``/``strides`` size
both halves and ``dilations`` adds residual units to every stage (the plain preset has
none); the WaveNet fields are not used by this decoder.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import audio_resnet_encoder_wavenet_decoder as wave
import trainer
from audio_resnet_encoder_wavenet_decoder import SAMPLE_DESIGN, CVAE, UpsampleBlock, WaveVAEConfig, wave_config
from prepare_data import AudioConfig
from vae_parts import GenreFiLM


def plain_wave_config(preset: str, audio: AudioConfig, **changes) -> WaveVAEConfig:
    """The waveform VAE's ``preset`` sized for ``audio``, without residual units."""
    return wave_config(preset, audio, **{**SAMPLE_DESIGN.get(preset, {}), "dilations": (), **changes})


class PlainWaveDecoder(nn.Module):
    """Latent [B, D, T'] (+ genre embedding [B, E]) -> audio [B, T' x hop] in (-1, 1)."""

    def __init__(self, cfg: WaveVAEConfig):
        super().__init__()
        chans = cfg.channels                                          # stem first, deepest last
        self.inp = nn.Conv1d(cfg.latent_dim, chans[-1], 3, padding=1)
        pairs = list(zip(chans[:0:-1], chans[-2::-1], cfg.strides[::-1]))
        self.stages = nn.ModuleList([UpsampleBlock(c_in, c_out, s, cfg.kernel_size, cfg.dilations)
                                     for c_in, c_out, s in pairs])
        self.films = nn.ModuleList([GenreFiLM(cfg.n_genres, cfg.genre_embed_dim, c_out)
                                    for _, c_out, _ in pairs]) if cfg.conditional else None
        self.out = nn.Conv1d(chans[0], 1, cfg.kernel_size, padding=cfg.kernel_size // 2)

    def forward(self, z: torch.Tensor, genre_embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(z)                                               # (B, C_last, T')
        for i, up in enumerate(self.stages):
            h = up(h)                                                 # (B, C, T' x stride)
            if self.films is not None and genre_embedding is not None:
                h = self.films[i](h, genre_embedding)
        return torch.tanh(self.out(F.gelu(h))).squeeze(1)            # (B, T)


class PlainWaveVAE(CVAE):
    """The waveform CVAE with the plain decoder (and, by its preset, a plain encoder)."""

    family = "wave"

    def __init__(self, cfg: WaveVAEConfig, audio: AudioConfig):
        super().__init__(cfg, audio, decoder=PlainWaveDecoder(cfg))


trainer.register(trainer.Family("template-wave", PlainWaveVAE, WaveVAEConfig, plain_wave_config, wave.WaveformLoss,
                                wave.TRAIN_PRESETS, wave.AUDIO_PRESETS))
