"""One waveform VAE whose encoder and decoder are picked by name: every audio variant.

:class:`WaveExperimentConfig` is the waveform VAE's :class:`WaveVAEConfig` plus the
choice of parts and their sizes; :class:`ComposedWaveVAE` is the waveform ``CVAE`` with
those parts passed in (bottleneck, genre embedding, adversary, ``prepare``, ``decode`` are
the CVAE's). Parts:

    encoder  "plain"     strided convs, no residual units (the template's)
             "resnet"    ResNet-1D blocks                  (residual_encoder)
             "attention" plain convs + self-attention      (self_attention_encoder)
             "wav2vec2"  torchaudio's wav2vec 2.0          (wav2vec2_encoder)
    decoder  "plain"     upsampling convs + genre FiLM     (the template's)
             "wavenet"   upsampler + WaveNet stack         (wavenet_decoder)
    encode_genre         the encoder sees the genre too    (genre_encoded_cvae)

    audio, cfg, _ = trainer.configs("wave-exp", "demo", model=dict(encoder="attention"))
    model = ComposedWaveVAE(cfg, audio)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import audio_resnet_encoder_wavenet_decoder as wave
import trainer
from audio_resnet_encoder_wavenet_decoder import SAMPLE_DESIGN, CVAE, Encoder, WaveVAEConfig, wave_config
from AudioExperiment.residual_encoder import residual_encoder
from AudioExperiment.self_attention_encoder import SelfAttentionEncoder
from AudioExperiment.wav2vec2_encoder import Wav2Vec2Encoder
from AudioExperiment.wavenet_decoder import wavenet_decoder
from prepare_data import AudioConfig
from TemplateCode.audio_vae import PlainWaveDecoder
from TemplateCode.experiment import GenreInput, SeesGenre, preset_config


def _plain(cfg):
    """Without residual units: the template's plain stages."""
    return dataclasses.replace(cfg, dilations=())


ENCODERS = {"plain": lambda cfg: Encoder(_plain(cfg)), "resnet": residual_encoder,
            "attention": SelfAttentionEncoder, "wav2vec2": Wav2Vec2Encoder}
DECODERS = {"plain": lambda cfg: PlainWaveDecoder(_plain(cfg)), "wavenet": wavenet_decoder}

PART_PRESETS = {
    "tiny": dict(attention_layers=1, attention_heads=2, w2v_dim=16, w2v_layers=1, w2v_heads=2, w2v_ff=32,
                 w2v_pos_kernel=4, w2v_pos_groups=2),
    "demo": dict(attention_layers=2, attention_heads=4, w2v_dim=64, w2v_layers=2, w2v_heads=4, w2v_ff=128,
                 w2v_pos_kernel=16, w2v_pos_groups=4),
    "full": dict(attention_layers=4, attention_heads=8, w2v_dim=256, w2v_layers=4, w2v_heads=8, w2v_ff=1024,
                 w2v_pos_kernel=64, w2v_pos_groups=16),
}


@dataclass(frozen=True)
class WaveExperimentConfig(WaveVAEConfig):
    """The waveform VAE's sizes plus the parts. ``dilations`` gives the residual units of
    the "resnet" encoder and of the WaveNet decoder's upsampler; plain parts use none."""

    encoder: str = "plain"
    decoder: str = "plain"
    encode_genre: bool = False
    encoder_genre_dropout: float = 0.5  # share of training examples whose genre the encoder does not see
    attention_layers: int = 2
    attention_heads: int = 4            # must divide channels[-1]
    w2v_dim: int = 64                   # wav2vec 2.0 Transformer width (must be divisible by w2v_heads)
    w2v_layers: int = 2
    w2v_heads: int = 4
    w2v_ff: int = 128
    w2v_pos_kernel: int = 16            # relative position convolution
    w2v_pos_groups: int = 4
    w2v_kernels: tuple = ()             # feature-extractor kernels; () = 2 x stride
    w2v_layer_norm_first: bool = True
    w2v_weights: str = ""               # local state-dict file of the wav2vec 2.0 module ("" = random)

    def validate(self) -> None:
        super().validate()
        if self.encoder not in ENCODERS:
            raise ValueError(f"WaveExperimentConfig: encoder={self.encoder!r}; choose from {sorted(ENCODERS)}")
        if self.decoder not in DECODERS:
            raise ValueError(f"WaveExperimentConfig: decoder={self.decoder!r}; choose from {sorted(DECODERS)}")
        if not 0.0 <= self.encoder_genre_dropout <= 1.0:
            raise ValueError(f"WaveExperimentConfig: encoder_genre_dropout={self.encoder_genre_dropout} must lie in [0, 1]")
        if self.encoder == "attention" and (self.attention_layers < 1 or self.channels[-1] % self.attention_heads):
            raise ValueError(f"WaveExperimentConfig: attention_heads={self.attention_heads} must divide "
                             f"channels[-1]={self.channels[-1]} and attention_layers={self.attention_layers} be >= 1")
        if self.encoder == "wav2vec2" and (self.w2v_dim % self.w2v_heads or self.w2v_dim % self.w2v_pos_groups):
            raise ValueError(f"WaveExperimentConfig: w2v_dim={self.w2v_dim} must be divisible by "
                             f"w2v_heads={self.w2v_heads} and w2v_pos_groups={self.w2v_pos_groups}")


def wave_experiment_config(preset: str, audio: AudioConfig, **changes) -> WaveExperimentConfig:
    """The waveform VAE's ``preset`` sized for ``audio``, the parts' sizes of ``preset``, then ``changes``."""
    base = dataclasses.asdict(wave_config(preset, audio, **SAMPLE_DESIGN.get(preset, {})))
    return preset_config(WaveExperimentConfig, PART_PRESETS, preset, base, **changes)


class ComposedWaveVAE(SeesGenre, CVAE):
    """The waveform CVAE with the configured encoder and decoder (and genre-aware encoder)."""

    family = "wave"

    def __init__(self, cfg: WaveExperimentConfig, audio: AudioConfig):
        super().__init__(cfg, audio, encoder=ENCODERS[cfg.encoder](cfg), decoder=DECODERS[cfg.decoder](cfg))
        self.genre_input = GenreInput(cfg.n_genres, cfg.genre_embed_dim, self.encoder.out_channels,
                                      cfg.encoder_genre_dropout) if cfg.encode_genre else None


trainer.register(trainer.Family("wave-exp", ComposedWaveVAE, WaveExperimentConfig, wave_experiment_config,
                                wave.WaveformLoss, wave.TRAIN_PRESETS, wave.AUDIO_PRESETS))
