"""Transformer encoder in the style of wav2vec 2.0 (Baevski et al. 2020), random weights.

torchaudio's ``wav2vec2_model`` architecture: a convolutional feature extractor (group
norm in its first layer) and a Transformer with a convolutional relative position
embedding. Its conv layers are derived from the variant's ``channels`` and ``strides``
(kernel 2 x stride, or ``w2v_kernels``), so one latent frame covers the same hop as every
other waveform variant; the input is padded by the extractor's overlap so a segment of
N x hop samples gives exactly N frames. The decoder is the template's.

Nothing is downloaded. The weights are random unless ``w2v_weights`` names a local file
holding the ``state_dict()`` of a torchaudio ``Wav2Vec2Model`` of the same architecture;
:data:`WAV2VEC2_BASE` holds the overrides that reproduce wav2vec 2.0 Base (16 kHz audio,
hop 320, 95 M parameters), e.g. for a file saved elsewhere with
``torch.save(torchaudio.pipelines.WAV2VEC2_BASE.get_model().state_dict(), "w2v_base.pt")``:

    Variant("wav2vec2_base", "wave-exp", "wave", "...", "Baevski et al. 2020",
            model=dict(WAV2VEC2_BASE, w2v_weights="w2v_base.pt"))
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from TemplateCode.experiment import Variant

WAV2VEC2_BASE = dict(encoder="wav2vec2", channels=(512,) * 8, strides=(5, 2, 2, 2, 2, 2, 2),
                     w2v_kernels=(10, 3, 3, 3, 3, 2, 2), w2v_dim=768, w2v_layers=12, w2v_heads=12, w2v_ff=3072,
                     w2v_pos_kernel=128, w2v_pos_groups=16, w2v_layer_norm_first=False)


def extractor_layers(cfg) -> list[tuple[int, int, int]]:
    """(channels, kernel, stride) of each feature-extractor layer."""
    kernels = tuple(cfg.w2v_kernels) or tuple(2 * s if s > 1 else 3 for s in cfg.strides)
    if len(kernels) != len(cfg.strides):
        raise ValueError(f"w2v_kernels={cfg.w2v_kernels} needs one kernel per stride {cfg.strides}")
    return [(int(c), int(k), int(s)) for c, k, s in zip(cfg.channels[1:], kernels, cfg.strides)]


class Wav2Vec2Encoder(nn.Module):
    """[B, 1, T] (T a multiple of the hop) -> [B, w2v_dim, T / hop] through torchaudio's wav2vec 2.0."""

    def __init__(self, cfg):
        super().__init__()
        import torchaudio
        layers = extractor_layers(cfg)
        self.model = torchaudio.models.wav2vec2_model(
            extractor_mode="group_norm", extractor_conv_layer_config=layers, extractor_conv_bias=False,
            encoder_embed_dim=cfg.w2v_dim, encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=cfg.w2v_pos_kernel, encoder_pos_conv_groups=cfg.w2v_pos_groups,
            encoder_num_layers=cfg.w2v_layers, encoder_num_heads=cfg.w2v_heads, encoder_attention_dropout=0.0,
            encoder_ff_interm_features=cfg.w2v_ff, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
            encoder_layer_norm_first=cfg.w2v_layer_norm_first, encoder_layer_drop=0.0, aux_num_out=None)
        # An input of N x hop + overlap samples gives exactly N frames through valid convolutions.
        self.overlap = sum((k - s) * math.prod(cfg.strides[:i]) for i, (_, k, s) in enumerate(layers))
        self.out_channels = cfg.w2v_dim
        if cfg.w2v_weights:
            self.load_weights(cfg.w2v_weights)

    def load_weights(self, path) -> None:
        """Load a torchaudio ``Wav2Vec2Model`` state dict from a local file (no download)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"wav2vec 2.0 weights not found: {path} (w2v_weights names a local "
                                    f"file; nothing is downloaded)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            self.model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{path} does not fit this wav2vec 2.0 architecture (check w2v_dim, w2v_layers, "
                             f"w2v_heads, w2v_ff, channels, strides, w2v_kernels): {err}") from err

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wave = F.pad(x[:, 0], (self.overlap // 2, self.overlap - self.overlap // 2))   # (B, T + overlap)
        h, _ = self.model(wave)                                                        # (B, T', E)
        return h.transpose(1, 2)                                                       # (B, E, T')


VARIANT = Variant("wav2vec2_encoder", "wave-exp", "wave",
                  "wav2vec 2.0 architecture (conv feature extractor + Transformer, random weights), plain decoder",
                  "Baevski et al. 2020 (wav2vec 2.0)", model=dict(encoder="wav2vec2", decoder="plain"))
