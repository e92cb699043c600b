"""Encoder with residual blocks (He et al. 2016), on raw audio.

The waveform VAE's own encoder: a stem, then per stage residual units with growing
dilations (1, 3, 9, ...) and a strided convolution (:class:`Resnet1DBlock`). As a variant
it replaces the template's plain strided convolutions and keeps the template's plain
decoder, so its row measures what the residual units add to the encoder alone.
"""
from __future__ import annotations

from audio_resnet_encoder_wavenet_decoder import Encoder
from TemplateCode.experiment import Variant


def residual_encoder(cfg):
    """[B, 1, T] -> [B, channels[-1], T / hop] through ``Resnet1DBlock`` stages."""
    return Encoder(cfg)


VARIANT = Variant("residual_encoder", "wave-exp", "wave",
                  "ResNet-1D encoder (dilated residual units per stage), plain decoder",
                  "He et al. 2016 (residual networks)", model=dict(encoder="resnet", decoder="plain"))
