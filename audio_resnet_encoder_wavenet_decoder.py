"""The waveform VAE: a strided ResNet-1D encoder and a WaveNet decoder, genre-conditional.

The model reads raw audio. The encoder turns a segment of any length into a latent
*sequence* (``latent_dim`` channels, one frame every ``hop_length`` samples, where the hop
is the product of the encoder's strides). The decoder upsamples that sequence back to the
audio rate (nearest-neighbour repetition + convolution, mirroring the strides) and runs a
stack of dilated causal convolutions with gated tanh x sigmoid units, residual and skip
paths, conditioned locally on the upsampled latent and globally on a genre embedding (the
embedding is projected into every gate, as in WaveNet's global conditioning), with white
noise as the stack's input (as in Parallel WaveNet; seeded in eval mode, so decoding is
deterministic). The decoder is not autoregressive: every output sample is computed at
once, so decoding is a handful of convolutions over the clip and runs faster than real
time on a CPU at the demo preset.

Nothing in the model depends on the segment length: every layer is a convolution, and the
genre enters through per-channel vectors. The bottleneck (bounded log-variance) and the
latent genre adversary are the shared pieces from :mod:`vae_parts`.

Public API
----------
WaveVAEConfig            sizes of the model (frozen dataclass, saved in every checkpoint)
WAVE_PRESETS             model overrides per preset: ``tiny`` (tests), ``demo`` (CPU), ``full`` (GPU)
AUDIO_PRESETS            AudioConfig overrides per preset (sample rate, segment, mel-loss sizes)
TRAIN_PRESETS            TrainConfig overrides per preset (the trainer uses them for ``--model wave``)
wave_config(preset, audio, **changes) -> WaveVAEConfig
PQMF                     pseudo-QMF filter bank: audio <-> sub-bands (the multi-band variant, ``bands`` > 1)
pqmf_filters(bands)      its analysis filters, designed once per size
ResidualUnit             dilated conv + 1x1 conv with an identity skip
Resnet1DBlock            a strided convolution, then residual units (dilations 1, 3, 9 ...)
UpsampleBlock            its mirror: residual units, nearest-neighbour x stride, convolution
GatedResidualLayer       one WaveNet layer: causal dilated conv, gated unit, residual + skip
Encoder                  [B, 1, T] -> features [B, C, T / hop]
Decoder                  latent [B, D, T / hop] (+ genre embedding) -> audio [B, T]
CVAE                     encoder + bottleneck + decoder + adversary; family "wave"
WaveformLoss             multi-resolution STFT + log-mel L1 + beta x KL (+ adversary), named terms
receptive_field(layers)  samples seen by a chain of (kernel, dilation, stride) layers
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from prepare_data import AudioConfig, MelFrontEnd, build_mel_transform, override
from vae_parts import GaussianBottleneck, GenreEmbedding, LatentGenreAdversary, kl_terms, total_loss


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class WaveVAEConfig:
    """Sizes of the waveform VAE. ``sample_rate`` and ``segment_samples`` come from the
    AudioConfig; the hop (samples per latent frame) is derived from ``strides``."""

    sample_rate: int = AudioConfig.sample_rate
    segment_samples: int = 110250                # training segment (any length >= hop works)
    n_genres: int = 10
    channels: tuple = (32, 64, 128, 256, 384)    # encoder stem, then the output of each stride
    strides: tuple = (2, 4, 8, 8)                # encoder downsampling; the decoder mirrors it
    kernel_size: int = 7                         # residual units of encoder and upsampler
    dilations: tuple = (1, 3, 9)                 # one residual unit per dilation, every stage
    latent_dim: int = 32                         # channels of the latent sequence
    genre_embed_dim: int = 64
    residual_channels: int = 64                  # WaveNet stack
    skip_channels: int = 128
    wavenet_layers: int = 20
    dilation_cycle: int = 10                     # dilations 1, 2, 4, ... 2**(cycle-1), repeated
    wavenet_kernel: int = 2
    noise: bool = True                           # white noise into the WaveNet stack (see Decoder)
    bands: int = 1                               # PQMF sub-bands (1: the model runs at the audio rate)
    noise_bands: bool = False                    # multi-band: a filtered-noise branch beside the stack
    conditional: bool = True                     # the decoder sees the genre (global conditioning)
    adversary: bool = True                       # latent genre adversary (domain confusion)
    genre_dropout: float = 0.0                   # share of training decodes told "no genre"
    logvar_bound: float = 8.0
    init_logvar: float = -4.0                    # posterior log-variance at initialisation

    @property
    def hop_length(self) -> int:
        """Samples per latent frame: the product of the strides (times the bands)."""
        return math.prod(self.strides) * self.bands

    @property
    def wavenet_dilations(self) -> tuple:
        return tuple(2 ** (i % self.dilation_cycle) for i in range(self.wavenet_layers))

    @property
    def encoder_receptive_field(self) -> int:
        """Input samples that one latent frame sees."""
        layers = [(PQMF.TAPS_PER_BAND * self.bands + 1, 1, self.bands)] if self.bands > 1 else []
        layers.append((self.kernel_size, 1, 1))                             # stem
        for s in self.strides:
            layers.append((_down_kernel(s), 1, s))
            layers += [(self.kernel_size, d, 1) for d in self.dilations]
        return receptive_field(layers)

    @property
    def wavenet_receptive_field(self) -> int:
        """Past samples of the upsampled latent that one output sample sees (itself included)."""
        return receptive_field([(self.wavenet_kernel, d, 1) for d in self.wavenet_dilations])

    def latent_frames(self, n_samples: int) -> int:
        """Latent frames of a segment of ``n_samples`` (cropped to a multiple of the hop)."""
        return n_samples // self.hop_length

    def validate(self) -> None:
        if len(self.channels) != len(self.strides) + 1:
            raise ValueError(f"WaveVAEConfig: channels={self.channels} needs one entry more than "
                             f"strides={self.strides} (the stem, then one per stride)")
        if any(int(s) < 1 for s in self.strides):
            raise ValueError(f"WaveVAEConfig: strides must be >= 1, got {self.strides}")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"WaveVAEConfig: kernel_size={self.kernel_size} must be odd and >= 3 "
                             f"(a real receptive field with 'same' padding)")
        if self.wavenet_kernel < 2:
            raise ValueError(f"WaveVAEConfig: wavenet_kernel={self.wavenet_kernel} must be >= 2")
        if self.wavenet_layers < 1 or self.dilation_cycle < 1:
            raise ValueError(f"WaveVAEConfig: wavenet_layers={self.wavenet_layers} and "
                             f"dilation_cycle={self.dilation_cycle} must be >= 1")
        if self.segment_samples < self.hop_length:
            raise ValueError(f"WaveVAEConfig: segment_samples={self.segment_samples} is shorter than "
                             f"one latent frame (hop_length={self.hop_length} = product of strides "
                             f"{self.strides})")
        if self.bands < 1 or (self.bands > 1 and self.noise):
            raise ValueError(f"WaveVAEConfig: bands={self.bands} must be >= 1, and a multi-band decoder "
                             f"reads its latent, not white noise (noise=False; noise_bands for textures)")
        if self.noise_bands and self.bands == 1:
            raise ValueError("WaveVAEConfig: noise_bands needs the multi-band decoder (bands > 1)")
        if self.latent_dim < 2 or self.latent_dim % 2:
            raise ValueError(f"WaveVAEConfig: latent_dim={self.latent_dim} must be even (low/high halves)")


WAVE_PRESETS = {
    # GPU, the seed's 5 s segments at 22050 Hz: hop 512 (43 latent frames/s), 16.6 M parameters.
    "full": {},
    # 2 CPU cores: 16 kHz, hop 256 (62.5 latent frames/s); decodes faster than real time.
    "demo": dict(channels=(8, 32, 64, 96, 128), strides=(4, 4, 4, 4), latent_dim=16,
                 genre_embed_dim=32, residual_channels=16, skip_channels=32, wavenet_layers=10,
                 dilation_cycle=10),
    # tests: seconds.
    "tiny": dict(channels=(4, 8, 16, 16), strides=(2, 4, 8), dilations=(1, 3), latent_dim=8,
                 genre_embed_dim=8, residual_channels=8, skip_channels=8, wavenet_layers=4,
                 dilation_cycle=4),
}

# Applied on top of AudioConfig.preset(preset) (trainer.configs reads them through the family).
# The STFT sizes only feed the loss (multi-resolution STFT around n_fft, mel L1 with n_mels).
AUDIO_PRESETS = {
    "full": {},
    "demo": dict(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=80,
                 segment_seconds=2.048, n_segments=2),
    "tiny": dict(sample_rate=8000, n_fft=512, hop_length=128, n_mels=40,
                 segment_seconds=0.512, n_segments=2),
}

TRAIN_PRESETS = {
    # Batch 8, not 16: 20 WaveNet layers keep audio-rate activations (memory not yet measured on a GPU).
    "full": dict(batch_size=8, lr=3e-4, beta_max=0.05, beta_warmup_steps=5000, free_bits=0.02,
                 adv_weight=0.3),
    "demo": dict(epochs=3, batch_size=8, lr=1e-3, warmup_steps=20, beta_max=0.05,
                 beta_warmup_steps=300, free_bits=0.02, adv_weight=0.3),
    "tiny": dict(epochs=2, batch_size=4, lr=1e-3, warmup_steps=1, beta_warmup_steps=4, beta_max=0.1),
}


def wave_config(preset: str, audio: AudioConfig, **changes) -> WaveVAEConfig:
    """The named preset sized for ``audio`` (sample rate and segment derived, not typed).

    Parameters
    ----------
    preset : "tiny" | "demo" | "full"
    audio : the AudioConfig of the data (``trainer.configs("wave", preset)`` builds both)
    changes : WaveVAEConfig overrides; unknown keys or wrong types are an error

    Returns
    -------
    WaveVAEConfig, validated
    """
    if preset not in WAVE_PRESETS:
        raise KeyError(f"unknown waveform VAE preset {preset!r}; choose from {sorted(WAVE_PRESETS)}")
    cfg = WaveVAEConfig(sample_rate=audio.sample_rate, segment_samples=audio.segment_samples)
    cfg = override(override(cfg, **WAVE_PRESETS[preset]), **changes)
    cfg.validate()
    return cfg


def receptive_field(layers) -> int:
    """Samples of the input seen by one output of a chain of 1-D layers.

    Parameters
    ----------
    layers : iterable of (kernel, dilation, stride), input side first

    Returns
    -------
    int, the receptive field in input samples
    """
    field, jump = 1, 1
    for kernel, dilation, stride in layers:
        field += (kernel - 1) * dilation * jump
        jump *= stride
    return field


def _down_kernel(stride: int) -> int:
    # Kernel 2s overlaps neighbouring frames by half a frame on each side (s = 1: a plain 3-tap).
    return 2 * stride if stride > 1 else 3


# --------------------------------------------------------------------------- blocks
@functools.lru_cache(maxsize=None)
def pqmf_filters(bands: int, taps_per_band: int = 8, beta: float = 9.0) -> np.ndarray:
    """The analysis filters [bands, taps + 1] of a pseudo-QMF bank (see :class:`PQMF`),
    designed once per size: the encoder and the decoder share them."""
    from scipy.signal import firwin                   # scipy comes with librosa
    n, taps = bands, taps_per_band * bands
    half = 0.5 / n                                    # pi / 2N as a fraction of Nyquist, doubled
    freqs = np.linspace(0.0, 1.0, 4097)               # of Nyquist
    band = freqs <= 2 * half

    def mismatch(cutoff):
        power = np.abs(np.fft.rfft(firwin(taps + 1, cutoff, window=("kaiser", beta)), 8192)) ** 2
        return np.abs(power[band] + np.interp(2 * half - freqs[band], freqs, power) - 1).max()

    cutoff = min(np.linspace(0.6 * 2 * half, 1.4 * 2 * half, 200), key=mismatch)
    proto = firwin(taps + 1, cutoff, window=("kaiser", beta))
    k, t = np.arange(n)[:, None], np.arange(taps + 1)[None] - taps / 2
    arg, phase = (2 * k + 1) * np.pi / (2 * n) * t, (-1.0) ** k * np.pi / 4
    filters = 2 * proto * np.cos(arg + phase)
    filters.setflags(write=False)
    return filters


class PQMF(nn.Module):
    """Pseudo-QMF filter bank: audio [B, 1, T] <-> ``bands`` critically sampled sub-bands
    [B, bands, T / bands], near-perfect reconstruction (about -44 dB error at 4 and 16 bands).

    Cosine modulation of one Kaiser-windowed low-pass prototype (8 taps per band); its
    cut-off is the one whose power response is closest to complementary around pi / 2N, the
    condition under which neighbouring bands' aliasing cancels. Every convolution of a model
    that works on the bands runs at 1 / bands of the audio rate.
    """

    TAPS_PER_BAND = 8

    def __init__(self, bands: int, beta: float = 9.0):
        super().__init__()
        analysis = pqmf_filters(bands, self.TAPS_PER_BAND, beta)
        self.bands, self.taps = bands, analysis.shape[-1] - 1
        # conv1d correlates: the analysis filters go in reversed; the synthesis filter of
        # each band is the analysis filter reversed, so it goes in as it is.
        self.register_buffer("analysis_filters", torch.tensor(analysis[:, None, ::-1].copy(), dtype=torch.float32),
                             persistent=False)
        self.register_buffer("synthesis_filters", torch.tensor(analysis[None].copy(), dtype=torch.float32),
                             persistent=False)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, T] (T a multiple of bands) -> [B, bands, T / bands]."""
        pad = self.taps // 2
        return F.conv1d(F.pad(x, (pad, pad)), self.analysis_filters.to(x.dtype), stride=self.bands)

    def synthesis(self, y: torch.Tensor) -> torch.Tensor:
        """[B, bands, T'] -> [B, 1, T' x bands]."""
        up = torch.zeros(*y.shape[:2], y.shape[-1] * self.bands, device=y.device, dtype=y.dtype)
        up[..., ::self.bands] = y
        pad = self.taps // 2
        return self.bands * F.conv1d(F.pad(up, (pad, pad)), self.synthesis_filters.to(y.dtype))


class ResidualUnit(nn.Module):
    """x + conv1x1(GELU(conv_k,dilated(GELU(x)))): 'same' length, (k - 1) x d samples of context."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                              padding=(kernel_size - 1) * dilation // 2)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.gelu(self.conv(F.gelu(x))))                  # (B, C, T)


class Resnet1DBlock(nn.Module):
    """A strided convolution from ``c_in`` to ``c_out`` channels, then residual units with
    growing dilations: [B, c_in, T] -> [B, c_out, T / stride] (T divisible by the stride).

    The units work after the downsampling, at the lower rate, where the same kernels see
    ``stride`` times more audio for the same cost."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel_size: int = 7, dilations=(1, 3, 9)):
        super().__init__()
        k = _down_kernel(stride)
        self.down = nn.Conv1d(c_in, c_out, k, stride=stride, padding=(k - stride + 1) // 2)
        self.units = nn.Sequential(*[ResidualUnit(c_out, kernel_size, d) for d in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(self.down(F.gelu(x)))


class UpsampleBlock(nn.Module):
    """The mirror of :class:`Resnet1DBlock`: residual units at ``c_in`` channels, then
    nearest-neighbour repetition x stride and a convolution to ``c_out`` channels:
    [B, c_in, T] -> [B, c_out, T x stride]. Repetition + convolution, unlike a transposed
    convolution, leaves no checkerboard pattern (a tone at sr / stride in audio)."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel_size: int = 7, dilations=(1, 3, 9)):
        super().__init__()
        self.stride = stride
        self.units = nn.Sequential(*[ResidualUnit(c_in, kernel_size, d) for d in dilations])
        self.conv = nn.Conv1d(c_in, c_out, 2 * stride + 1, padding=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.units(x))
        if self.stride > 1:
            h = F.interpolate(h, scale_factor=self.stride, mode="nearest")
        return self.conv(h)


class GatedResidualLayer(nn.Module):
    """One WaveNet layer. A causal dilated convolution of the residual stream, plus the local
    condition (a 1x1 of the upsampled latent) and the global one (the projected genre
    embedding), feed a tanh x sigmoid gate; 1x1 convolutions of the gate give the residual
    update and the skip output.

    Tensors are time-major, [B, T, C]: a kernel-k dilated convolution is then one matrix
    product of k shifted copies of the stream concatenated with the condition, which on a
    CPU runs about twice as fast as conv1d at these channel counts (same arithmetic).

    Parameters
    ----------
    channels, skip_channels, cond_channels : widths of the residual stream, the skip output
        and the audio-rate condition
    embed_dim : genre embedding width (None: no global conditioning)
    kernel_size, dilation : of the causal convolution
    """

    def __init__(self, channels: int, skip_channels: int, cond_channels: int, embed_dim: int | None,
                 kernel_size: int, dilation: int):
        super().__init__()
        self.channels, self.skip_channels = channels, skip_channels
        self.kernel_size, self.dilation = kernel_size, dilation
        self.gate_in = nn.Linear(kernel_size * channels + cond_channels, 2 * channels)
        self.globl = nn.Linear(embed_dim, 2 * channels, bias=False) if embed_dim else None
        self.gate_out = nn.Linear(channels, channels + skip_channels)      # residual | skip

    def forward(self, x: torch.Tensor, cond: torch.Tensor,
                genre_embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, C], cond [B, T, C_cond], genre_embedding [B, E] -> ([B, T, C], skip [B, T, S])."""
        t = x.shape[1]
        reach = (self.kernel_size - 1) * self.dilation                     # causal: only the past
        past = F.pad(x, (0, 0, reach, 0))                                  # (B, reach + T, C)
        taps = [past[:, i * self.dilation:i * self.dilation + t] for i in range(self.kernel_size)]
        h = self.gate_in(torch.cat(taps + [cond], dim=-1))                # (B, T, 2C)
        if self.globl is not None:
            if genre_embedding is None:
                raise ValueError("this WaveNet layer is genre-conditional: pass a genre embedding [B, E]")
            h = h + self.globl(genre_embedding).unsqueeze(1)
        filt, gate = h.chunk(2, dim=-1)
        res, skip = self.gate_out(torch.tanh(filt) * torch.sigmoid(gate)).split(
            [self.channels, self.skip_channels], dim=-1)
        # sqrt(1/2) keeps the residual stream's variance from growing with depth.
        return (x + res) * math.sqrt(0.5), skip


# --------------------------------------------------------------------------- encoder / decoder
class Encoder(nn.Module):
    """Waveform [B, 1, T] -> features [B, channels[-1], T / hop] (T a multiple of the hop)."""

    def __init__(self, cfg: WaveVAEConfig):
        super().__init__()
        self.hop_length = cfg.hop_length
        self.pqmf = PQMF(cfg.bands) if cfg.bands > 1 else None
        self.stem = nn.Conv1d(cfg.bands, cfg.channels[0], cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.blocks = nn.Sequential(*[
            Resnet1DBlock(c_in, c_out, s, cfg.kernel_size, cfg.dilations)
            for c_in, c_out, s in zip(cfg.channels[:-1], cfg.channels[1:], cfg.strides)])
        self.out_channels = cfg.channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[-1] % self.hop_length:
            raise ValueError(f"Encoder expects [B, 1, T] with T a multiple of hop_length={self.hop_length}, "
                             f"got {tuple(x.shape)} (use CVAE.prepare)")
        if self.pqmf is not None:
            x = self.pqmf.analysis(x)                                       # (B, bands, T / bands)
        return F.gelu(self.blocks(self.stem(x)))                            # (B, C, T / hop)


class Decoder(nn.Module):
    """Latent [B, D, T'] (+ genre embedding [B, E]) -> audio [B, T' x hop] in (-1, 1).

    The upsampler (non-causal convolutions at every rate) turns the latent into an
    audio-rate condition [B, channels[0], T]; the WaveNet stack on top is causal in that
    condition: output sample t depends on condition samples <= t only.

    With ``cfg.noise`` the stack's input is white noise beside the condition (as in
    Parallel WaveNet): a decoder trained on spectral magnitudes must make noise-like
    textures (cymbals, breath, distortion) somehow, and without a source of its own it
    learns to use the posterior's sampling noise, which pushes the latent's variance above
    the prior's and leaves decoding from the mean (transfer, validation) much worse than
    decoding from samples. In training the noise is fresh; in eval mode it is drawn from a
    fixed seed, so decoding is deterministic.

    With ``cfg.bands`` > 1 (as RAVE) the upsampler stops at the sub-band rate, the stack
    reads only the latent's condition and outputs the PQMF bands, and the filter bank
    joins them: every layer runs at 1 / bands of the audio rate. Noise then enters only
    through ``noise_bands``: white noise in each band times a gain the stack computes (the
    noise's spectral envelope at the bands' resolution), so textures need no latent noise.
    """

    eval_noise_seed = 0

    def __init__(self, cfg: WaveVAEConfig):
        super().__init__()
        self.cfg = cfg
        chans = cfg.channels
        self.inp = nn.Conv1d(cfg.latent_dim, chans[-1], 3, padding=1)
        self.upsample = nn.Sequential(*[
            UpsampleBlock(c_in, c_out, s, cfg.kernel_size, cfg.dilations)
            for c_in, c_out, s in zip(chans[:0:-1], chans[-2::-1], cfg.strides[::-1])])
        cond = chans[0]
        self.start = nn.Linear(cond + int(cfg.noise), cfg.residual_channels)
        embed = cfg.genre_embed_dim if cfg.conditional else None
        self.layers = nn.ModuleList([
            GatedResidualLayer(cfg.residual_channels, cfg.skip_channels, cond, embed, cfg.wavenet_kernel, d)
            for d in cfg.wavenet_dilations])
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(cfg.skip_channels, cfg.skip_channels),
                                 nn.ReLU(), nn.Linear(cfg.skip_channels, cfg.bands))
        self.noise_gain = nn.Linear(cfg.skip_channels, cfg.bands) if cfg.noise_bands else None
        self.pqmf = PQMF(cfg.bands) if cfg.bands > 1 else None

    def condition(self, z: torch.Tensor) -> torch.Tensor:
        """Latent [B, D, T'] -> audio-rate condition [B, channels[0], T' x hop]."""
        return F.gelu(self.upsample(self.inp(z)))

    def noise_like(self, cond: torch.Tensor, width: int = 1) -> torch.Tensor:
        """White noise [B, T, width] for a time-major condition [B, T, C]: fresh in training,
        seeded in eval."""
        shape = (cond.shape[0], cond.shape[1], width)
        if self.training:
            return torch.randn(shape, device=cond.device, dtype=cond.dtype)
        gen = torch.Generator(device=cond.device).manual_seed(self.eval_noise_seed)
        return torch.randn(shape, generator=gen, device=cond.device).to(cond.dtype)

    def wavenet(self, cond: torch.Tensor, genre_embedding: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """Condition [B, C, T] (+ noise [B, T, 1]) -> audio [B, T], or with bands the band
        signals [B, bands, T]; causal in both."""
        cond = cond.transpose(1, 2)                                         # (B, T, C) time-major
        inp = cond
        if self.cfg.noise:
            noise = self.noise_like(cond) if noise is None else noise
            inp = torch.cat([cond, noise.to(cond.dtype)], dim=-1)
        x = self.start(inp)                                                 # (B, T, R)
        skips = 0
        for layer in self.layers:
            x, skip = layer(x, cond, genre_embedding)
            skips = skips + skip                                            # (B, T, S)
        skips = skips * math.sqrt(1.0 / len(self.layers))
        y = torch.tanh(self.out(skips))                                     # (B, T, bands)
        if self.pqmf is None:
            return y.squeeze(-1)
        if self.noise_gain is not None:                                     # starts nearly silent
            y = y + F.softplus(self.noise_gain(skips) - 4.0) * self.noise_like(cond, self.cfg.bands)
        return y.transpose(1, 2)                                            # (B, bands, T)

    def forward(self, z: torch.Tensor, genre_embedding: torch.Tensor | None = None) -> torch.Tensor:
        y = self.wavenet(self.condition(z), genre_embedding)
        return y if self.pqmf is None else self.pqmf.synthesis(y)[:, 0]


# --------------------------------------------------------------------------- the VAE
class CVAE(nn.Module):
    """Conditional waveform VAE: ResNet-1D encoder -> Gaussian latent sequence -> WaveNet
    decoder told the genre; optional latent genre adversary. ``forward(x, genre)`` returns
    a dict of named outputs, as :class:`model.MelVAE` does. ``encoder`` and ``decoder``
    default to :class:`Encoder` and :class:`Decoder`; an experiment passes its own."""

    family = "wave"

    def __init__(self, cfg: WaveVAEConfig, audio: AudioConfig, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None):
        super().__init__()
        cfg.validate()
        if cfg.sample_rate != audio.sample_rate:
            raise ValueError(f"WaveVAEConfig.sample_rate={cfg.sample_rate} differs from the "
                             f"AudioConfig's sample_rate={audio.sample_rate}; build it with wave_config")
        self.cfg, self.audio = cfg, audio
        self.encoder = encoder if encoder is not None else Encoder(cfg)
        self.bottleneck = GaussianBottleneck(self.encoder.out_channels, cfg.latent_dim, cfg.logvar_bound,
                                             cfg.init_logvar)
        self.genre_embedding = GenreEmbedding(cfg.n_genres, cfg.genre_embed_dim, cfg.genre_dropout)
        self.decoder = decoder if decoder is not None else Decoder(cfg)
        self.adversary = LatentGenreAdversary(cfg.latent_dim, cfg.n_genres) if cfg.adversary else None
        self.front_end = MelFrontEnd(audio)          # the mel of an output, for the critics (no weights)

    def prepare(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform batch [B, T] -> model input [B, 1, T'], T' = T cropped to a multiple of the hop."""
        if wave.dim() != 2:
            raise ValueError(f"prepare expects a waveform batch [B, T], got shape {tuple(wave.shape)}")
        hop = self.cfg.hop_length
        usable = wave.shape[-1] - wave.shape[-1] % hop
        if usable == 0:
            raise ValueError(f"a segment of {wave.shape[-1]} samples is shorter than one latent frame "
                             f"(hop_length={hop})")
        return wave[:, None, :usable].float()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, 1, T] -> (z, mu, logvar), each [B, latent_dim, T / hop]."""
        return self.bottleneck(self.encoder(x))

    def decode(self, z: torch.Tensor, genre: torch.Tensor | None = None,
               genre_emb: torch.Tensor | None = None) -> torch.Tensor:
        """Latent [B, D, T'] and genre indices [B] (or embeddings [B, E]) -> audio [B, T' x hop]."""
        if not self.cfg.conditional:
            return self.decoder(z, None)
        if genre_emb is None:
            if genre is None:
                raise ValueError("this waveform CVAE is genre-conditional: decode(z, genre) needs genre "
                                 "indices [B] or decode(z, genre_emb=...) an embedding [B, E]")
            genre_emb = self.genre_embedding(genre)
        if genre_emb.shape != (z.shape[0], self.cfg.genre_embed_dim):
            raise ValueError(f"genre embedding of shape {tuple(genre_emb.shape)}; expected "
                             f"({z.shape[0]}, {self.cfg.genre_embed_dim})")
        return self.decoder(z, genre_emb)

    def forward(self, x: torch.Tensor, genre: torch.Tensor) -> dict:
        z, mu, logvar = self.encode(x)
        out = {"recon": self.decode(z, genre), "target": x.squeeze(1), "z": z, "mu": mu, "logvar": logvar}
        if self.adversary is not None:
            out["adv_logits"] = self.adversary(mu)
        return out

    def mel_view(self, y: torch.Tensor) -> torch.Tensor:
        """The normalised log-mel [B, 1, M, F] the critics read, of an input [B, 1, T] or a decode [B, T]."""
        return self.front_end(y[:, 0] if y.dim() == 3 else y)

    def as_input(self, decoded: torch.Tensor) -> torch.Tensor:
        """A decode [B, T] as the encoder's input [B, 1, T] (re-encoding a transfer)."""
        return decoded[:, None]

    def output_to_audio(self, recon: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Decoded audio [B, T] is already a waveform; crop or zero-pad to ``length``."""
        if length is None or recon.shape[-1] == length:
            return recon
        if recon.shape[-1] > length:
            return recon[..., :length]
        return F.pad(recon, (0, length - recon.shape[-1]))


# --------------------------------------------------------------------------- loss
class WaveformLoss(nn.Module):
    """Multi-resolution STFT (spectral convergence + log-magnitude L1 at n_fft / 4, n_fft / 2
    and n_fft of the AudioConfig) + log-mel L1 + beta x KL (+ adv_weight x the adversary's
    cross-entropy). Returns named terms; ``recon`` is the weighted reconstruction part.

    Parameters
    ----------
    cfg : trainer.TrainConfig (KL weights, free bits, adversary weight)
    audio : AudioConfig of the model (sample rate, n_fft, n_mels, dB floor)
    """

    WEIGHTS = {"sc": 1.0, "log_mag": 1.0, "mel": 1.0}

    def __init__(self, cfg, audio: AudioConfig):
        super().__init__()
        self.cfg = cfg
        self.resolutions = tuple((n, max(1, n // 4)) for n in (audio.n_fft // 4, audio.n_fft // 2, audio.n_fft))
        for n, _ in self.resolutions:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)
        self.mel = build_mel_transform(audio)
        # The dB floor of the AudioConfig, as a power: keeps the log finite and smooth near silence.
        self.floor = 10.0 ** (audio.db_min / 10.0)

    def _stft_mag(self, x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
        spec = torch.stft(x, n_fft, hop, window=getattr(self, f"window_{n_fft}"), return_complex=True)
        return (spec.real.pow(2) + spec.imag.pow(2) + self.floor).sqrt()      # (B, F, N)

    def spectral_terms(self, recon: torch.Tensor, target: torch.Tensor) -> dict:
        """Spectral convergence, log-magnitude L1 (averaged over resolutions) and log-mel L1."""
        sc, log_mag = 0.0, 0.0
        for n_fft, hop in self.resolutions:
            r, t = self._stft_mag(recon, n_fft, hop), self._stft_mag(target, n_fft, hop)
            sc = sc + torch.linalg.vector_norm(t - r, dim=(-2, -1)).div(
                torch.linalg.vector_norm(t, dim=(-2, -1))).mean()
            log_mag = log_mag + (t.log() - r.log()).abs().mean()
        mel = (torch.log(self.mel(recon) + self.floor) - torch.log(self.mel(target) + self.floor)).abs().mean()
        k = len(self.resolutions)
        return {"sc": sc / k, "log_mag": log_mag / k, "mel": mel}

    def forward(self, out: dict, genre: torch.Tensor, beta: float) -> dict:
        with torch.autocast(device_type=out["recon"].device.type, enabled=False):
            terms = self.spectral_terms(out["recon"].float(), out["target"].float())
        terms.update(kl_terms(out["mu"], out["logvar"], self.cfg))
        terms["recon"] = sum(w * terms[k] for k, w in self.WEIGHTS.items())
        return total_loss(terms, out, genre, beta, self.cfg)
