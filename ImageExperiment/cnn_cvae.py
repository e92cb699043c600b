"""CNN conditional VAE with a global latent; depth and widths are hyper-parameters
(Sohn et al. 2015, conditional VAE; Kingma & Welling 2014).

Unlike the project's mel VAE (a latent *sequence*), this model squeezes a whole segment
into one latent vector, and its encoder sees the genre as well as the decoder:

    mel [B, 1, M, F] -> residual conv stages (depth x stride 2, widths width, 2 width, ...
    capped at max_width; :class:`model.MemoryEfficientEncoder`) -> 1x1 conv to
    ``bridge_channels`` per latent frame -> flatten -> genre FiLM ("unknown" without a
    label, see :class:`TemplateCode.experiment.GenreInput`) -> Gaussian bottleneck -> z [B, D, 1]
    z -> linear -> [B, bridge_channels, F'] -> :class:`model.MemoryEfficientDecoder` told the genre

It trains on computed mels (waveform batches through the log-mel front end) or on
spectrogram pictures (``images_original``): an image batch [B, 1, M, F] passes
``prepare`` unchanged, so the trainer and genre transfer serve both.

    audio, cfg, _ = trainer.configs("cnn-cvae", "demo", model=dict(depth=3, width=16, latent_dim=32))
    model = CNNCVAE(cfg, audio)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import trainer
from model import MelVAE, MelVAEConfig, MemoryEfficientDecoder, MemoryEfficientEncoder
from prepare_data import AudioConfig
from TemplateCode.experiment import GenreInput, SeesGenre, preset_config

CNN_PRESETS = {"full": dict(depth=4, width=32, max_width=256, latent_dim=64, bridge_channels=16,
                            genre_embed_dim=64),
               "demo": dict(depth=3, width=16, max_width=128, latent_dim=32, bridge_channels=8),
               "tiny": dict(depth=2, width=4, max_width=8, latent_dim=8, bridge_channels=2,
                            genre_embed_dim=8)}


@dataclass(frozen=True)
class CNNCVAEConfig:
    """Sizes of the CNN CVAE; ``n_mels`` and ``n_frames`` come from the AudioConfig."""

    n_mels: int = 128
    n_frames: int = 128
    depth: int = 3                  # stride-2 stages, each halving bands and frames
    width: int = 16                 # channels of the first stage, doubled per stage ...
    max_width: int = 128            # ... up to this
    latent_dim: int = 32            # one latent vector per segment
    bridge_channels: int = 8        # channels per latent frame around the flat latent
    n_genres: int = 10
    genre_embed_dim: int = 16
    encode_genre: bool = True       # the encoder sees the genre (q(z | x, y))
    encoder_genre_dropout: float = 0.5   # share of training steps it is hidden ("unknown")
    adversary: bool = True          # latent genre adversary (domain confusion)
    logvar_bound: float = 8.0
    init_logvar: float = 0.0        # posterior log-variance at initialisation
    genre_dropout: float = 0.0      # share of training decodes told "no genre"
    encoder_view: str = "mel"       # the whole mel in (model.encoder_view)

    @property
    def widths(self) -> tuple:
        return tuple(min(self.width * 2 ** i, self.max_width) for i in range(self.depth))

    @property
    def time_stride(self) -> int:
        return 2 ** self.depth

    @property
    def conditional(self) -> bool:           # the decoder always sees the genre
        return True

    @property
    def latent_rows(self) -> int:            # one global vector, no frequency rows
        return 1

    @property
    def latent_channels(self) -> int:
        return self.latent_dim

    def conv_config(self) -> MelVAEConfig:
        """The convolution stacks' sizes, as the mel VAE's blocks read them."""
        return MelVAEConfig(n_mels=self.n_mels, n_frames=self.n_frames, channels=self.widths,
                            strides=((2, 2),) * self.depth, latent_dim=self.bridge_channels,
                            n_genres=self.n_genres, genre_embed_dim=self.genre_embed_dim,
                            conditional=True, adversary=False, logvar_bound=self.logvar_bound)

    def validate(self) -> None:
        if self.depth < 1 or self.width < 1 or self.max_width < 1 or self.bridge_channels < 1:
            raise ValueError(f"CNNCVAEConfig: depth={self.depth}, width={self.width}, "
                             f"max_width={self.max_width} and bridge_channels={self.bridge_channels} "
                             f"must be >= 1")
        if self.latent_dim < 2 or self.latent_dim % 2:
            raise ValueError(f"CNNCVAEConfig: latent_dim={self.latent_dim} must be even and >= 2")
        self.conv_config().validate()


def cnn_cvae_config(preset: str, audio: AudioConfig, **changes) -> CNNCVAEConfig:
    """The named preset ("tiny" | "demo" | "full") sized for ``audio``, with overrides."""
    return preset_config(CNNCVAEConfig, CNN_PRESETS, preset, dict(n_mels=audio.n_mels, n_frames=audio.frames),
                         **changes)


class GlobalEncoder(nn.Module):
    """[B, 1, M, F] -> one flat feature vector [B, bridge_channels * F', 1]: the mel VAE's
    residual conv stages, a 1x1 bridge to ``bridge_channels`` per latent frame, flattened."""

    def __init__(self, cfg: CNNCVAEConfig):
        super().__init__()
        conv = cfg.conv_config()
        self.conv = MemoryEfficientEncoder(conv)
        self.bridge = nn.Conv1d(self.conv.out_channels, cfg.bridge_channels, 1)
        self.out_channels = cfg.bridge_channels * conv.latent_frames()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.bridge(self.conv(x)))                           # (B, bridge, F')
        return h.flatten(1).unsqueeze(-1)                               # (B, bridge*F', 1)


class GlobalDecoder(nn.Module):
    """Latent [B, D, 1] (+ genre embedding) -> mel [B, 1, M, F]: a linear map back to
    ``bridge_channels`` per latent frame, then the mel VAE's decoder."""

    def __init__(self, cfg: CNNCVAEConfig):
        super().__init__()
        conv = cfg.conv_config()
        self.bridge_channels = cfg.bridge_channels
        self.expand = nn.Linear(cfg.latent_dim, cfg.bridge_channels * conv.latent_frames())
        self.conv = MemoryEfficientDecoder(conv)

    def forward(self, z: torch.Tensor, genre_embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.expand(z.flatten(1)).unflatten(1, (self.bridge_channels, -1))   # (B, bridge, F')
        return self.conv(h, genre_embedding)


class CNNCVAE(SeesGenre, MelVAE):
    """CNN CVAE with a global latent [B, D, 1]; ``encode(x, genre=None)``."""

    family = "mel"

    def __init__(self, cfg: CNNCVAEConfig, audio: AudioConfig):
        super().__init__(cfg, audio, encoder=GlobalEncoder(cfg), decoder=GlobalDecoder(cfg))
        self.genre_input = GenreInput(cfg.n_genres, cfg.genre_embed_dim, self.encoder.out_channels,
                                      cfg.encoder_genre_dropout) if cfg.encode_genre else None

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, T] -> log-mel [B, 1, M, F]; a picture batch [B, 1, M, F] passes as it is."""
        return x if x.dim() == 4 else super().prepare(x)


trainer.register(trainer.Family("cnn-cvae", CNNCVAE, CNNCVAEConfig, cnn_cvae_config, trainer.EfficientLoss,
                                trainer.TRAIN_PRESETS))
