"""Encoder with self-attention (Vaswani et al. 2017) over the latent frames.

The template's plain strided-conv encoder turns audio into one feature vector per
latent frame; a depthwise convolution adds relative position (as wav2vec 2.0 does, so
any segment length works), then ``attention_layers`` pre-norm Transformer layers let
every frame attend to every other before the bottleneck. The decoder stays the
template's, so the row measures what global context adds to the encoder.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from audio_resnet_encoder_wavenet_decoder import Encoder
from TemplateCode.experiment import Variant


class SelfAttentionEncoder(nn.Module):
    """[B, 1, T] -> [B, channels[-1], T / hop]: plain conv stages, then self-attention over frames."""

    def __init__(self, cfg):
        super().__init__()
        self.conv = Encoder(dataclasses.replace(cfg, dilations=()))
        width = self.conv.out_channels
        self.position = nn.Conv1d(width, width, cfg.kernel_size, padding=cfg.kernel_size // 2, groups=width)
        layer = nn.TransformerEncoderLayer(width, cfg.attention_heads, dim_feedforward=2 * width, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.attention = nn.TransformerEncoder(layer, cfg.attention_layers, enable_nested_tensor=False)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)                                                  # (B, C, T')
        h = h + self.position(h)
        return self.attention(h.transpose(1, 2)).transpose(1, 2)          # (B, C, T')


VARIANT = Variant("self_attention_encoder", "wave-exp", "wave",
                  "plain conv encoder + Transformer self-attention over latent frames, plain decoder",
                  "Vaswani et al. 2017 (self-attention)", model=dict(encoder="attention", decoder="plain"))
