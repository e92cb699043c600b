"""Hierarchical GRU encoder over mel frames (Roberts et al. 2018, MusicVAE; Chung et al. 2014, GRU).

The log-mel image [B, 1, M, F] is read as a sequence of F frames of M bands. The frames
are cut into segments of ``time_stride`` frames; a bidirectional *segment-level* GRU
reads the frames of each segment and its two final states summarise the segment; a
bidirectional *sequence-level* GRU then reads the segment summaries in order. Its output,
one vector per segment, feeds the shared Gaussian bottleneck, so the latent is a sequence
of F / time_stride frames, exactly what the project's mel decoder
(:class:`model.MemoryEfficientDecoder`, genre FiLM) expands back into a mel. MusicVAE
puts its hierarchy in the decoder (a "conductor" RNN); here it sits in the encoder, and
the decoder is the project's convolutional one.

    audio, cfg, _ = trainer.configs("mel-hgru", "demo")
    model = HierGRUVAE(cfg, audio)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

import trainer
from model import MelVAE, MelVAEConfig
from prepare_data import AudioConfig
from TemplateCode.experiment import preset_config
from TemplateCode.image_vae import SEQUENCE_PRESETS

HGRU_PRESETS = {"full": dict(frame_hidden=128, segment_hidden=128),
                "demo": dict(frame_hidden=64, segment_hidden=64),
                "tiny": dict(frame_hidden=8, segment_hidden=8)}


@dataclass(frozen=True)
class HierGRUConfig(MelVAEConfig):
    """The mel VAE's sizes (its decoder is reused) plus the two GRU widths. The segment
    length of the encoder is the decoder's ``time_stride``, so the two agree by design."""

    frame_hidden: int = 64            # per direction, segment-level GRU over frames
    segment_hidden: int = 64          # per direction, sequence-level GRU over segments

    def validate(self) -> None:
        super().validate()
        if self.frame_hidden < 1 or self.segment_hidden < 1:
            raise ValueError(f"HierGRUConfig: frame_hidden={self.frame_hidden} and "
                             f"segment_hidden={self.segment_hidden} must be >= 1")


def hgru_config(preset: str, audio: AudioConfig, **changes) -> HierGRUConfig:
    """The named preset ("tiny" | "demo" | "full") sized for ``audio``."""
    presets = {name: {**SEQUENCE_PRESETS[name], **sizes} for name, sizes in HGRU_PRESETS.items()}
    return preset_config(HierGRUConfig, presets, preset, dict(n_mels=audio.n_mels, n_frames=audio.frames),
                         **changes)


class HierarchicalGRUEncoder(nn.Module):
    """[B, 1, M, F] -> features [B, 2 x segment_hidden, F / time_stride]."""

    def __init__(self, cfg: HierGRUConfig):
        super().__init__()
        self.segment = cfg.time_stride
        self.frame_gru = nn.GRU(cfg.n_mels, cfg.frame_hidden, batch_first=True, bidirectional=True)
        self.sequence_gru = nn.GRU(2 * cfg.frame_hidden, cfg.segment_hidden, batch_first=True,
                                   bidirectional=True)
        self.out_channels = 2 * cfg.segment_hidden

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        b, _, m, f = mel.shape
        if f % self.segment:
            raise ValueError(f"HierarchicalGRUEncoder: {f} frames is not a multiple of the segment "
                             f"length {self.segment} (time_stride)")
        n_seg = f // self.segment
        frames = mel[:, 0].transpose(1, 2).reshape(b * n_seg, self.segment, m)   # (B*S, L, M)
        _, last = self.frame_gru(frames)                                          # (2, B*S, H1)
        summary = last.transpose(0, 1).reshape(b, n_seg, -1)                      # (B, S, 2*H1)
        seq, _ = self.sequence_gru(summary)                                       # (B, S, 2*H2)
        return seq.transpose(1, 2)                                                # (B, 2*H2, S)


class HierGRUVAE(MelVAE):
    """The mel VAE with the hierarchical GRU encoder (decoder, FiLM, adversary unchanged)."""

    family = "mel"

    def __init__(self, cfg: HierGRUConfig, audio: AudioConfig):
        super().__init__(cfg, audio, encoder=HierarchicalGRUEncoder(cfg))


trainer.register(trainer.Family("mel-hgru", HierGRUVAE, HierGRUConfig, hgru_config, trainer.EfficientLoss,
                                trainer.TRAIN_PRESETS))
