"""The waveform VAE: a strided ResNet-1D encoder and a WaveNet decoder, genre-conditional.

The ``demo`` preset is the oscillator design with pitch rows: the encoder reads a fixed
log-pitch spectrogram of the audio, runs its strided blocks along each pitch row and keeps
one latent row per semitone (``pitch_latent``); the decoder maps each row back to its
pitches through local convolutions, and the WaveNet stack, at the oscillators' frame rate,
multiplies in a gain of its own per pitch and sets the noise bands. The sound is a bank of
sines at fixed pitches plus shaped noise (:class:`OscillatorSynth`), so the model never has
to learn a waveform's phase, nor where a note sits. What follows describes the audio-rate
design (``SAMPLE_DESIGN``; the ``tiny`` and ``full`` presets), of which that is a variant.

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
SAMPLE_DESIGN            overrides that give the audio-rate WaveNet design at a preset (experiments, benchmark)
AUDIO_PRESETS            AudioConfig overrides per preset (sample rate, segment, mel-loss sizes)
TRAIN_PRESETS            TrainConfig overrides per preset (the trainer uses them for ``--model wave``)
wave_config(preset, audio, **changes) -> WaveVAEConfig
PQMF                     pseudo-QMF filter bank: audio <-> sub-bands (the multi-band variant, ``bands`` > 1)
pqmf_filters(bands)      its analysis filters, designed once per size
pitch_grid(sr, ...)      the half-semitone pitch grid (Hz) shared by the next two
PitchFrontEnd            audio -> log-pitch spectrogram (the encoder's input with ``front="pitch"``)
PitchClasses             audio -> pitch-class profile per frame, and the loss between two (``train.chroma_weight``)
OscillatorSynth          gains per pitch and noise band -> audio (the decoder's output with ``synth="oscillators"``)
ResidualUnit             dilated conv + 1x1 conv with an identity skip
Resnet1DBlock            a strided convolution, then residual units (dilations 1, 3, 9 ...)
UpsampleBlock            its mirror: residual units, nearest-neighbour x stride, convolution
GatedResidualLayer       one WaveNet layer: causal dilated conv, gated unit, residual + skip
Encoder                  [B, 1, T] -> features [B, C, T / hop]
Decoder                  latent [B, D, T / hop] (+ genre embedding) -> audio [B, T]
CVAE                     encoder + bottleneck + decoder + adversary; family "wave"
WaveformLoss             multi-resolution STFT + log-mel L1 (+ pitch classes) + beta x KL (+ adversary), named terms
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
import torchaudio

from model import encoder_view
from prepare_data import AudioConfig, MelFrontEnd, build_mel_transform, override
from vae_parts import (GaussianBottleneck, GenreEmbedding, adversary_outputs, check_adversary_objective, kl_terms,
                       latent_adversary, total_loss, unfold_time, with_observed)


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
    front: str = "wave"                          # "wave": the encoder convolves the samples (or bands);
    #                                              "pitch": it reads a fixed log-pitch spectrogram (PitchFrontEnd)
    front_fft: int = 2048                        # pitch front-end: STFT size
    synth: str = "sample"                        # "sample": the stack outputs audio (or bands);
    #                                              "oscillators": it drives an OscillatorSynth
    control_hop: int = 64                        # oscillators: samples per control frame of the stack
    front_stride: int = 1                        # pitch front-end: its hop in control frames
    osc_low_midi: float = 28.0                   # oscillators: lowest pitch (MIDI; 28 = 41 Hz)
    osc_per_semitone: int = 2                    # oscillators: pitches per semitone
    noise_filters: int = 32                      # oscillators: mel-spaced noise bands
    pitch_latent: bool = False                   # pitch front-end: the latent keeps one row per semitone
    #                                              (latent_dim channels each); the encoder's blocks run
    #                                              along each pitch row, the decoder maps rows to pitches
    encoder_view: str = "mel"                    # pitch_latent: what the encoder reads (model.ENCODER_VIEWS)
    row_channels: int = 32                       # pitch_latent: width of the decoder's pitch-local layers
    note_film: bool = False                      # pitch_latent: the genre scales and shifts the note decoder's
    #                                              features, so a transfer can re-voice the source's harmonics
    loudness_row: bool = False                   # pitch_latent: one more latent row, read from each frame's
    #                                              mean log magnitude (dynamics and onsets, not timbre)
    cond_channels: int = 0                       # oscillators: the stack's condition width (0: channels[-1])
    timing: str = "none"                         # oscillators: "onsets": the code also carries the input's onset
    #                                              stream at the control rate (wave_onset_stream), read by the stack
    conditional: bool = True                     # the decoder sees the genre (global conditioning)
    adversary: bool = True                       # latent genre adversary
    adversary_objective: str = "reversal"        # how the encoder hides the genre from it: "reversal", "confusion"
    #                                              (vae_parts.LatentGenreAdversary)
    genre_dropout: float = 0.0                   # share of training decodes told "no genre"
    logvar_bound: float = 8.0
    init_logvar: float = -4.0                    # posterior log-variance at initialisation

    @property
    def hop_length(self) -> int:
        """Samples per latent frame: the product of the strides, times the bands (or, with the
        pitch front-end, times its hop, ``control_hop`` x ``front_stride``)."""
        return math.prod(self.strides) * (self.front_hop if self.front == "pitch" else self.bands)

    @property
    def front_hop(self) -> int:
        """Samples per frame of the pitch front-end."""
        return self.control_hop * self.front_stride

    @property
    def wavenet_dilations(self) -> tuple:
        return tuple(2 ** (i % self.dilation_cycle) for i in range(self.wavenet_layers))

    @property
    def encoder_receptive_field(self) -> int:
        """Input samples that one latent frame sees."""
        if self.front == "pitch":
            layers = [(self.front_fft, 1, self.front_hop)]
        else:
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

    @property
    def n_pitches(self) -> int:
        """Pitches of the front-end's (and the oscillators') grid."""
        return len(pitch_grid(self.sample_rate, self.osc_low_midi, self.osc_per_semitone))

    @property
    def latent_rows(self) -> int:
        """Rows of the latent: one per semitone with ``pitch_latent``, else 1."""
        return self.note_rows + int(self.loudness_row) if self.pitch_latent else 1

    @property
    def note_rows(self) -> int:
        """Latent rows that map to pitches (one per semitone of the grid)."""
        return -(-self.n_pitches // self.osc_per_semitone)

    @property
    def latent_channels(self) -> int:
        """Channels of the flattened latent sequence z [B, latent_channels, T']."""
        return self.latent_dim * self.latent_rows

    @property
    def timing_channels(self) -> int:
        """Channels of the code after the latent: the onset stream folded, one channel per control
        frame of a latent step, or 0 without ``timing``."""
        return self.hop_length // self.control_hop if self.timing == "onsets" else 0

    @property
    def code_channels(self) -> int:
        """Channels of what encode returns and decode reads: the latent, then the timing."""
        return self.latent_channels + self.timing_channels

    def latent_frames(self, n_samples: int) -> int:
        """Latent frames of a segment of ``n_samples`` (cropped to a multiple of the hop)."""
        return n_samples // self.hop_length

    def validate(self) -> None:
        check_adversary_objective(self)
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
        if self.front not in ("wave", "pitch") or (self.front == "pitch" and self.bands > 1):
            raise ValueError(f"WaveVAEConfig: front={self.front!r}; expected 'wave' or 'pitch' (the pitch "
                             f"front-end reads the whole band: bands=1)")
        if self.synth not in ("sample", "oscillators"):
            raise ValueError(f"WaveVAEConfig: synth={self.synth!r}; expected 'sample' or 'oscillators'")
        if self.synth == "oscillators" and (self.noise or self.noise_bands or self.front != "pitch"):
            raise ValueError("WaveVAEConfig: the oscillator decoder makes its own noise (noise=False, "
                             "noise_bands=False) and runs at the pitch front-end's rate (front='pitch')")
        if self.front_stride < 1 or (self.front_stride > 1 and self.front != "pitch"):
            raise ValueError(f"WaveVAEConfig: front_stride={self.front_stride} must be >= 1 (> 1 only with "
                             f"front='pitch')")
        if self.note_film and not (self.pitch_latent and self.conditional):
            raise ValueError("WaveVAEConfig: note_film conditions the pitch rows' decoder on the genre "
                             "(pitch_latent=True, conditional=True)")
        if self.pitch_latent and self.synth != "oscillators":
            raise ValueError("WaveVAEConfig: pitch_latent decodes rows to oscillator pitches (synth='oscillators')")
        if self.latent_dim < 2 or self.latent_dim % 2:
            raise ValueError(f"WaveVAEConfig: latent_dim={self.latent_dim} must be even (low/high halves)")
        if self.timing not in ("none", "onsets"):
            raise ValueError(f"WaveVAEConfig: timing={self.timing!r}; choose from ('none', 'onsets')")
        if self.timing != "none" and self.synth != "oscillators":
            raise ValueError("WaveVAEConfig: timing feeds the oscillator stack's control rate (synth='oscillators')")


WAVE_PRESETS = {
    # GPU, the seed's 5 s segments at 22050 Hz: hop 512 (43 latent frames/s), 16.6 M parameters.
    "full": {},
    # 2 CPU cores: 22.05 kHz (the judge hears 16-kHz audio as the right genre about half as often).
    # The log-pitch front-end every 256 samples; its rows run through the strided blocks one by
    # one and pool to a latent of 2 channels x 96 semitone rows x 21.5 frames/s; the decoder maps
    # the rows back to pitches (told the genre: note_film) and the stack (at the 344 frames/s of
    # the oscillators) shapes them and makes the noise; decodes about 30x faster than real time.
    "demo": dict(channels=(16, 32), strides=(4,), front_stride=4, latent_dim=2, genre_embed_dim=32,
                 cond_channels=128, residual_channels=64, skip_channels=64, wavenet_layers=10,
                 dilation_cycle=10, noise=False, front="pitch", synth="oscillators", pitch_latent=True,
                 note_film=True),
    # tests: seconds.
    "tiny": dict(channels=(4, 8, 16, 16), strides=(2, 4, 8), dilations=(1, 3), latent_dim=8,
                 genre_embed_dim=8, residual_channels=8, skip_channels=8, wavenet_layers=4,
                 dilation_cycle=4),
}

# The audio-rate WaveNet design (the stack outputs samples from white noise and the upsampled
# latent), per preset: what the demo preset was before the oscillator decoder. The experiments'
# parts (AudioExperiment, TemplateCode) build on it, and the benchmark compares it with the preset.
SAMPLE_DESIGN = {
    "full": {},
    "demo": dict(channels=(8, 32, 64, 96, 128), strides=(4, 4, 4, 4), latent_dim=16, genre_embed_dim=32,
                 residual_channels=16, skip_channels=32, wavenet_layers=10, dilation_cycle=10,
                 noise=True, front="wave", synth="sample", front_stride=1, pitch_latent=False, cond_channels=0),
    "tiny": {},
}

# Applied on top of AudioConfig.preset(preset) (trainer.configs reads them through the family).
# The STFT sizes only feed the loss (multi-resolution STFT around n_fft, mel L1 with n_mels).
AUDIO_PRESETS = {
    "full": {},
    "demo": dict(n_fft=1024, hop_length=256, n_mels=80, segment_seconds=2.048, n_segments=2),
    "tiny": dict(sample_rate=8000, n_fft=512, hop_length=128, n_mels=40,
                 segment_seconds=0.512, n_segments=2),
}

TRAIN_PRESETS = {
    # Batch 8, not 16: 20 WaveNet layers keep audio-rate activations (memory not yet measured on a GPU).
    "full": dict(batch_size=8, lr=3e-4, beta_max=0.05, beta_warmup_steps=5000, free_bits=0.02,
                 adv_weight=0.3),
    # No adversarial phase: the genre classifier's term on decodes told another genre, from
    # step 50 of the VAE phase, on half of each batch (so that 6 epochs train within 6 minutes
    # on 2 cores), with the classifier also naming those decodes' source genre and the cycle
    # term keeping the song (README design notes, "The classifier's term in the VAE phase"),
    # and the pitch-class term keeping the notes that content retrieval reads.
    "demo": dict(epochs=6, batch_size=8, lr=2e-3, warmup_steps=20, beta_max=0.005, chroma_weight=1.0,
                 beta_warmup_steps=300, free_bits=0.02, adv_weight=0.02,
                 swap_genre_weight=2.0, swap_start=50, swap_source_labels=True, swap_cycle_weight=2.5,
                 swap_fraction=0.5, snapshots=3),
    "tiny": dict(epochs=2, batch_size=4, lr=1e-3, warmup_steps=1, beta_warmup_steps=4, beta_max=0.1,
                 swap_genre_weight=1.0, swap_start=1, swap_source_labels=True, swap_cycle_weight=1.0, swap_fraction=0.5,
                 snapshots=2),
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


class OscillatorSynth(nn.Module):
    """Control frames -> audio: a bank of sinusoids at fixed equal-tempered pitches plus
    filtered noise, the two sources of a spectral-modelling synthesiser.

    The decoder then predicts *how loud* each pitch and each noise band is, frame by frame,
    never a waveform's phase: a magnitude target that a network learns in hundreds of
    steps, where an audio-rate stack needs hundreds of thousands. Pitches sit every
    1 / ``per_semitone`` semitone from MIDI ``low_midi`` up to 0.95 x Nyquist (A4 = 440 Hz),
    each with a fixed random phase; harmonics off the grid fall between two neighbours.
    Amplitudes are interpolated linearly between control frames (``hop`` samples apart).
    The noise is complex Gaussian noise in an STFT (n_fft = 4 x hop) shaped by
    ``noise_filters`` mel-spaced bands, fresh in training and seeded in eval.

    ``start`` [B] (samples) places each item on an absolute time line: windows of one clip
    decoded apart then share every oscillator's phase, so cross-fades do not cancel.
    """

    def __init__(self, sample_rate: int, hop: int, low_midi: float = 28.0, per_semitone: int = 2,
                 noise_filters: int = 32, seed: int = 0):
        super().__init__()
        self.sample_rate, self.hop, self.n_fft = sample_rate, hop, 4 * hop
        hz = pitch_grid(sample_rate, low_midi, per_semitone)
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("omega", torch.tensor(2 * np.pi * hz / sample_rate, dtype=torch.float64),
                             persistent=False)                              # rad / sample
        self.register_buffer("phase", 2 * math.pi * torch.rand(len(hz), generator=gen, dtype=torch.float64),
                             persistent=False)
        j = torch.arange(hop, dtype=torch.float64)
        within = self.omega[:, None] * j                                     # (K, hop)
        self.register_buffer("cos_within", within.cos().float(), persistent=False)
        self.register_buffer("sin_within", within.sin().float(), persistent=False)
        self.register_buffer("ramp", (j / hop).float(), persistent=False)   # interpolation weight
        fb = torchaudio.functional.melscale_fbanks(self.n_fft // 2 + 1, 0.0, sample_rate / 2, noise_filters,
                                                   sample_rate)             # (F, bands)
        fb = fb / fb.sum(-1, keepdim=True).clamp_min(1e-8)
        fb[fb.sum(-1) == 0, -1] = 1.0
        self.register_buffer("noise_bank", fb, persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.n_oscillators, self.noise_filters, self.eval_seed = len(hz), noise_filters, seed

    def harmonic(self, amps: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """Amplitudes [B, K, N] -> audio [B, N x hop]. sin(a + b) splits each sample's phase
        into a per-frame part (float64, exact at any clip length) and a within-frame part, so
        the bank is four matrix products, with no [B, K, T] tensor."""
        b, k, n = amps.shape
        frames = torch.arange(n, device=amps.device, dtype=torch.float64) * self.hop
        offset = torch.zeros(b, device=amps.device, dtype=torch.float64) if start is None \
            else torch.as_tensor(start, device=amps.device).to(torch.float64)
        a = (self.omega[None, :, None] * (frames[None, None] + offset[:, None, None])
             + self.phase[None, :, None]) % (2 * math.pi)                   # (B, K, N)
        sin_a, cos_a = a.sin().to(amps.dtype), a.cos().to(amps.dtype)
        nxt = torch.cat([amps[..., 1:], amps[..., -1:]], dim=-1)           # amplitude at the next frame
        out = 0
        for w, amp in ((1 - self.ramp, amps), (self.ramp, nxt)):
            frame = ((amp * sin_a).transpose(1, 2) @ self.cos_within.to(amps.dtype)
                     + (amp * cos_a).transpose(1, 2) @ self.sin_within.to(amps.dtype))    # (B, N, hop)
            out = out + w.to(amps.dtype) * frame
        return out.reshape(b, n * self.hop)

    def noise(self, mags: torch.Tensor) -> torch.Tensor:
        """Band magnitudes [B, bands, N] -> filtered noise [B, N x hop]."""
        b, _, n = mags.shape
        env = torch.einsum("fc,bcn->bfn", self.noise_bank.to(mags.dtype), mags)
        env = torch.cat([env, env[..., -1:]], dim=-1)                      # centred STFT: N + 1 frames
        shape = (b, env.shape[1], n + 1, 2)
        if self.training:
            white = torch.randn(shape, device=mags.device)
        else:
            white = torch.randn(shape, generator=torch.Generator().manual_seed(self.eval_seed)).to(mags.device)
        spec = torch.view_as_complex(white.float().contiguous()) * env.float()
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, length=n * self.hop).to(mags.dtype)

    def forward(self, amps: torch.Tensor, noise_mags: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(device_type=amps.device.type, enabled=False):     # a sum of 200 sines needs float32
            return self.harmonic(amps.float(), start) + self.noise(noise_mags.float())


def pitch_grid(sample_rate: int, low_midi: float, per_semitone: int) -> np.ndarray:
    """Frequencies (Hz) every 1 / ``per_semitone`` semitone from MIDI ``low_midi`` up to
    0.95 x Nyquist (A4 = 440 Hz): the pitches of :class:`OscillatorSynth` and :class:`PitchFrontEnd`."""
    top = 69 + 12 * math.log2(0.95 * sample_rate / 2 / 440.0)
    return 440.0 * 2 ** ((np.arange(low_midi, top, 1.0 / per_semitone) - 69) / 12)


HARMONIC_SECONDS = 0.2     # pitch_latent, pitch-harmonic view: the running median's window
LOG_PITCH_SCALE = 4.0      # the front-end's log magnitudes (about -9 to 4) divided by this: order one


ONSET_FFT = 512               # the onset stream's STFT: 23 ms at 22.05 kHz, short enough for a hit


def wave_onset_stream(x: torch.Tensor, hop: int) -> torch.Tensor:
    """When something starts in audio [B, 1, T]: the rise of each STFT bin's log magnitude from
    one frame to the next (every ``hop`` samples), averaged over the bins (spectral flux, as
    librosa's onset strength), [B, 1, T / hop]. One broadband number per frame: where hits and
    attacks fall, not which instruments play them."""
    frames = x.shape[-1] // hop
    with torch.autocast(device_type=x.device.type, enabled=False):
        window = torch.hann_window(ONSET_FFT, device=x.device)
        spec = torch.stft(x[:, 0].float(), ONSET_FFT, hop, window=window, return_complex=True).abs()
        logmag = torch.log(spec[..., :frames] + 1e-4)                   # (B, F, frames)
        rise = F.relu(torch.diff(logmag, dim=-1, prepend=logmag[..., :1]))
        return rise.mean(dim=1, keepdim=True)                           # (B, 1, frames)


class PitchFrontEnd(nn.Module):
    """Waveform [B, 1, T] -> log-pitch spectrogram [B, K, T / hop]: the STFT magnitude
    (hann, ``n_fft``) pooled onto the pitch grid of :func:`pitch_grid`, log-compressed.

    Pitch k pools the bins between its neighbours on the grid with triangular weights;
    where the grid is finer than the bins (low notes) it interpolates the two nearest
    bins. No weights: the encoder's first learned layer reads notes, not samples, which
    a strided convolution would take thousands of steps to learn to find.
    """

    def __init__(self, sample_rate: int, hop: int, n_fft: int, low_midi: float, per_semitone: int):
        super().__init__()
        self.hop, self.n_fft = hop, n_fft
        hz = pitch_grid(sample_rate, low_midi, per_semitone)
        bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
        edges = np.r_[hz[0] * 2 ** (-1 / (12 * per_semitone)), hz, hz[-1] * 2 ** (1 / (12 * per_semitone))]
        fb = np.zeros((len(bins), len(hz)), dtype=np.float32)
        for k in range(len(hz)):
            lo, mid, hi = edges[k], edges[k + 1], edges[k + 2]
            w = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
            if w.sum() == 0:                                   # narrower than a bin: interpolate
                pos = mid / bins[1]
                w[int(pos)], w[int(pos) + 1] = 1 - (pos - int(pos)), pos - int(pos)
            fb[:, k] = w / w.sum()
        self.register_buffer("pitch_bank", torch.from_numpy(fb), persistent=False)     # (F, K)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.n_pitches = len(hz)

    def magnitudes(self, x: torch.Tensor) -> torch.Tensor:
        """Audio [B, T] -> the pitch grid's linear magnitudes [B, K, T / hop + 1] (centred frames)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, return_complex=True).abs()
            return torch.einsum("fk,bfn->bkn", self.pitch_bank, spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1] // self.hop
        return torch.log(self.magnitudes(x[:, 0])[..., :frames] + 1e-4)     # (B, K, frames)


CHROMA_TOP_MIDI = 108      # PitchClasses fold the grid's pitches below C8, as a 7-octave chroma does


class PitchClasses(nn.Module):
    """Audio [B, T] -> the share of each of the 12 pitch classes in each frame's power,
    [B, 12, frames], and that power [B, frames] (centred frames every ``hop`` samples): the
    :class:`PitchFrontEnd`'s pitches below ``CHROMA_TOP_MIDI`` folded onto their nearest
    semitone's class.

    The STFT losses cannot hear a wrong bass or tenor note: below about 300 Hz a semitone is
    narrower than their widest bin (21.5 Hz at n_fft 1024, 22.05 kHz). This profile reads
    2048-point frames on the pitch grid, a chroma like the one content retrieval compares
    (which reads a constant-Q transform, finer still in the bass)."""

    def __init__(self, sample_rate: int, hop: int, n_fft: int = 2048, low_midi: float = 28.0, per_semitone: int = 2):
        super().__init__()
        self.front = PitchFrontEnd(sample_rate, hop, n_fft, low_midi, per_semitone)
        midi = low_midi + np.arange(self.front.n_pitches) / per_semitone
        fold = np.zeros((len(midi), 12), dtype=np.float32)
        low = midi < CHROMA_TOP_MIDI
        fold[np.flatnonzero(low), np.floor(midi[low] + 0.5).astype(int) % 12] = 1.0
        self.register_buffer("fold", torch.from_numpy(fold), persistent=False)                    # (K, 12)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=x.device.type, enabled=False):
            classes = torch.einsum("bkn,kc->bcn", self.front.magnitudes(x).pow(2), self.fold)   # (B, 12, N)
            total = classes.sum(1)
            return classes / (total[:, None] + 1e-8), total

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """L1 between the profiles of ``output`` and ``target`` [B, T] (0 to 2 per frame),
        frames weighted by the target's amplitude, so that silence does not count."""
        out, _ = self(output)
        ref, power = self(target)
        w = power.sqrt()
        w = w / (w.sum(-1, keepdim=True) + 1e-8)
        return ((out - ref).abs().sum(1) * w).sum(-1).mean()


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
    """Waveform [B, 1, T] -> features [B, channels[-1], T / hop] (T a multiple of the hop).

    With ``cfg.pitch_latent`` the strided blocks run along time on every pitch row of the
    front-end alone (rows folded into the batch, one set of weights), and a convolution over
    neighbouring rows pools each semitone: features [B, channels[-1] x rows, T / hop], C-major,
    so a note keeps its row all the way to the latent."""

    def __init__(self, cfg: WaveVAEConfig):
        super().__init__()
        self.hop_length = cfg.hop_length
        self.pqmf = PQMF(cfg.bands) if cfg.bands > 1 else None
        self.front = PitchFrontEnd(cfg.sample_rate, cfg.front_hop, cfg.front_fft, cfg.osc_low_midi,
                                   cfg.osc_per_semitone) if cfg.front == "pitch" else None
        c_in = self.front.n_pitches if self.front is not None else cfg.bands
        if cfg.pitch_latent:
            c_in = 1
        self.stem = nn.Conv1d(c_in, cfg.channels[0], cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.blocks = nn.Sequential(*[
            Resnet1DBlock(c_in, c_out, s, cfg.kernel_size, cfg.dilations)
            for c_in, c_out, s in zip(cfg.channels[:-1], cfg.channels[1:], cfg.strides)])
        self.out_channels = cfg.channels[-1]
        self.rows = None
        if cfg.pitch_latent:
            c, ps = cfg.channels[-1], cfg.osc_per_semitone
            self.rows, self.view, self.per_row = cfg.note_rows, cfg.encoder_view, ps
            self.loudness_row = cfg.loudness_row
            # the mel VAE's median window in seconds (HARMONIC_FRAMES mel frames of 512 samples)
            self.median_frames = 2 * round(HARMONIC_SECONDS * cfg.sample_rate / cfg.front_hop / 2) + 1
            self.pool_rows = nn.Conv2d(c, c, (2 * ps - 1, 1), stride=(ps, 1), padding=(ps // 2, 0))
            self.out_channels = c * cfg.latent_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[-1] % self.hop_length:
            raise ValueError(f"Encoder expects [B, 1, T] with T a multiple of hop_length={self.hop_length}, "
                             f"got {tuple(x.shape)} (use CVAE.prepare)")
        if self.pqmf is not None:
            x = self.pqmf.analysis(x)                                       # (B, bands, T / bands)
        if self.front is not None:
            x = self.front(x)                                               # (B, K, T / front_hop)
        if self.rows is None:
            return F.gelu(self.blocks(self.stem(x)))                        # (B, C, T / hop)
        return self.rows_forward(x)

    def rows_forward(self, pitch: torch.Tensor) -> torch.Tensor:
        """pitch_latent: log-pitch [B, K, N] -> features [B, C x rows, N / prod(strides)]."""
        b, k, n = pitch.shape
        x = encoder_view(pitch[:, None] / LOG_PITCH_SCALE, self.view, self.median_frames)   # (B, 1, K, N)
        h = self.blocks(self.stem(x.reshape(b * k, 1, n)))                  # (B K, C, N')
        h = h.view(b, k, h.shape[1], -1).transpose(1, 2)                   # (B, C, K, N')
        h = F.pad(h, (0, 0, 0, self.rows * self.per_row - k), mode="replicate")
        h = F.gelu(self.pool_rows(F.gelu(h)))                              # (B, C, rows, N')
        if self.loudness_row:
            loud = self.blocks(self.stem(pitch.mean(1, keepdim=True) / LOG_PITCH_SCALE))    # (B, C, N')
            h = torch.cat([h, F.gelu(loud)[:, :, None]], dim=2)
        return h.flatten(1, 2)                                              # (B, C rows, N')


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
        self.synth = None
        if cfg.synth == "oscillators":        # one upsampling step to the front-end's (control) rate
            # (an upsampler mirroring each stride left the demo's fit near the mean spectrum:
            # validation loss 3.75 after 150 steps against 3.05 with one step)
            cond = cfg.cond_channels or chans[-1]
            self.inp = nn.Conv1d(cfg.latent_channels, cond, 3, padding=1)
            self.upsample = UpsampleBlock(cond, cond, cfg.hop_length // cfg.control_hop, cfg.kernel_size,
                                          cfg.dilations)
            self.synth = OscillatorSynth(cfg.sample_rate, cfg.control_hop, cfg.osc_low_midi, cfg.osc_per_semitone,
                                         cfg.noise_filters)
        else:                                 # the encoder's strides mirrored up to the audio (or bands') rate
            cond = chans[0]
            self.inp = nn.Conv1d(cfg.latent_channels, chans[-1], 3, padding=1)
            self.upsample = nn.Sequential(*[
                UpsampleBlock(c_in, c_out, s, cfg.kernel_size, cfg.dilations)
                for c_in, c_out, s in zip(chans[:0:-1], chans[-2::-1], cfg.strides[::-1])])
        self.start = nn.Linear(cond + int(cfg.noise), cfg.residual_channels)
        embed = cfg.genre_embed_dim if cfg.conditional else None
        self.layers = nn.ModuleList([
            GatedResidualLayer(cfg.residual_channels, cfg.skip_channels, cond, embed, cfg.wavenet_kernel, d)
            for d in cfg.wavenet_dilations])
        n_out = cfg.bands if self.synth is None else self.synth.n_oscillators + self.synth.noise_filters
        # GELU before the gains: with ReLU the oscillator head died (every skip sum negative, a
        # constant output, the genre unheard) once the note rows carried the reconstruction.
        act = nn.ReLU if self.synth is None else nn.GELU
        self.out = nn.Sequential(act(), nn.Linear(cfg.skip_channels, cfg.skip_channels),
                                 act(), nn.Linear(cfg.skip_channels, n_out))
        if self.synth is not None:            # every source starts quiet (about -55 dB each)
            nn.init.constant_(self.out[-1].bias, -3.0)
        self.noise_gain = nn.Linear(cfg.skip_channels, cfg.bands) if cfg.noise_bands else None
        self.pqmf = PQMF(cfg.bands) if cfg.bands > 1 else None
        # pitch_latent: the notes, decoded row by row (local in pitch and time) into a log-gain
        # for the pitches of each row, which the stack's gains multiply.
        # The oscillator stack's condition is layer-normalised per frame: unnormalised, the
        # upsampler's residual units grew it to thousands, every gate saturated and the stack's
        # output stopped depending on the genre (and on training).
        self.cond_norm = nn.LayerNorm(cond) if self.synth is not None else None
        # timing: the onset stream (control rate) joins the stack's condition, frame by frame.
        self.timing = nn.Conv1d(1, cond, 3, padding=1) if cfg.timing_channels else None
        self.notes = None
        if cfg.pitch_latent:
            c = cfg.row_channels
            self.notes = nn.Sequential(nn.Conv2d(cfg.latent_dim, c, 3, padding=1), nn.GELU(),
                                       nn.Conv2d(c, c, 3, padding=1), nn.GELU(),
                                       nn.Conv2d(c, cfg.osc_per_semitone, 3, padding=1))
        # note_film: without it the rows' harmonics (the source's colour) reach the oscillators
        # whatever the genre. Zero at initialisation: every genre starts with the same notes.
        self.note_film = None
        if cfg.pitch_latent and cfg.note_film:
            self.note_film = nn.Linear(cfg.genre_embed_dim, 2 * cfg.row_channels)
            nn.init.zeros_(self.note_film.weight)
            nn.init.zeros_(self.note_film.bias)

    def note_logits(self, z: torch.Tensor, frames: int, genre_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Latent rows [B, D x rows, T'] -> a logit per pitch [B, K, frames] (control rate); with
        ``note_film`` the genre embedding [B, E] scales and shifts the first layer's features."""
        b, _, t = z.shape
        rows = self.cfg.note_rows
        z = z.view(b, self.cfg.latent_dim, self.cfg.latent_rows, t)[:, :, :rows]
        h = self.notes[0](z)                                                # (B, row_channels, rows, T')
        if self.note_film is not None:
            scale, shift = self.note_film(genre_embedding)[:, :, None, None].chunk(2, dim=1)
            h = h * (1.0 + scale) + shift
        y = self.notes[1:](h)                                               # (B, per semitone, rows, T')
        y = y.transpose(1, 2).reshape(b, -1, t)[:, :self.synth.n_oscillators]
        return F.interpolate(y, size=frames, mode="linear", align_corners=False)

    def condition(self, z: torch.Tensor) -> torch.Tensor:
        """Latent [B, D, T'] -> the stack's condition [B, channels[0], T' x prod(strides)]: at the
        audio rate, the bands' rate, or (oscillators) the control rate."""
        h = self.upsample(self.inp(z))
        if self.cond_norm is not None:
            h = self.cond_norm(h.transpose(1, 2)).transpose(1, 2)
        return F.gelu(h)

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
        if self.synth is not None:                                          # control frames
            return self.out(skips).transpose(1, 2)                          # (B, K + noise filters, N)
        y = torch.tanh(self.out(skips))                                     # (B, T, bands)
        if self.pqmf is None:
            return y.squeeze(-1)
        if self.noise_gain is not None:                                     # starts nearly silent
            y = y + F.softplus(self.noise_gain(skips) - 4.0) * self.noise_like(cond, self.cfg.bands)
        return y.transpose(1, 2)                                            # (B, bands, T)

    def forward(self, z: torch.Tensor, genre_embedding: torch.Tensor | None = None,
                start: torch.Tensor | None = None) -> torch.Tensor:
        """``start`` [B]: each item's first sample on the clip's time line (oscillators only)."""
        cond = None
        if self.timing is not None:                                         # the code's last channels
            z, onsets = z[:, :self.cfg.latent_channels], unfold_time(z[:, self.cfg.latent_channels:])
            cond = self.condition(z)
            cond = cond + self.timing(onsets[..., :cond.shape[-1]].to(cond.dtype))
        y = self.wavenet(self.condition(z) if cond is None else cond, genre_embedding)
        if self.notes is not None:
            k = self.synth.n_oscillators
            y = torch.cat([y[:, :k] + self.note_logits(z, y.shape[-1], genre_embedding), y[:, k:]], dim=1)
        if self.synth is not None:
            # exp-sigmoid, as DDSP: positive, smooth, and up to 2 without exploding gradients.
            gains = 2.0 * torch.sigmoid(y) ** math.log(10.0) + 1e-7
            k = self.synth.n_oscillators
            return self.synth(gains[:, :k], gains[:, k:], start)
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
                                             cfg.init_logvar, rows=cfg.latent_rows)
        self.genre_embedding = GenreEmbedding(cfg.n_genres, cfg.genre_embed_dim, cfg.genre_dropout)
        self.decoder = decoder if decoder is not None else Decoder(cfg)
        self.adversary = latent_adversary(cfg)
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
        """[B, 1, T] -> (z, mu, logvar), each [B, D, T / hop] (D = ``cfg.code_channels``). With
        ``timing`` the last channels of each are the input's onset stream at the control rate,
        folded (the same in z and mu, 0 in logvar: observed; losses and diagnostics read the
        first ``cfg.latent_channels``)."""
        z, mu, logvar = self.bottleneck(self.encoder(x))
        if not self.cfg.timing_channels:
            return z, mu, logvar
        stream = wave_onset_stream(x, self.cfg.control_hop)[..., :z.shape[-1] * self.cfg.timing_channels]
        return with_observed(z, mu, logvar, stream, self.cfg.timing_channels)

    def decode(self, z: torch.Tensor, genre: torch.Tensor | None = None,
               genre_emb: torch.Tensor | None = None, start: torch.Tensor | None = None) -> torch.Tensor:
        """Latent [B, D, T'] and genre indices [B] (or embeddings [B, E]) -> audio [B, T' x hop];
        ``start`` [B], each window's first sample in its clip (the oscillator decoder's phase)."""
        if getattr(self.decoder, "synth", None) is None:      # a decoder with no time line of its own
            start = None
        at = {} if start is None else {"start": start}
        if not self.cfg.conditional:
            return self.decoder(z, None, **at)
        if genre_emb is None:
            if genre is None:
                raise ValueError("this waveform CVAE is genre-conditional: decode(z, genre) needs genre "
                                 "indices [B] or decode(z, genre_emb=...) an embedding [B, E]")
            genre_emb = self.genre_embedding(genre)
        if genre_emb.shape != (z.shape[0], self.cfg.genre_embed_dim):
            raise ValueError(f"genre embedding of shape {tuple(genre_emb.shape)}; expected "
                             f"({z.shape[0]}, {self.cfg.genre_embed_dim})")
        return self.decoder(z, genre_emb, **at)

    def forward(self, x: torch.Tensor, genre: torch.Tensor) -> dict:
        z, mu, logvar = self.encode(x)
        k = self.cfg.latent_channels                  # the latent; any channels after it are observed
        out = {"recon": self.decode(z, genre), "target": x.squeeze(1), "z": z, "mu": mu, "logvar": logvar,
               "latent_channels": k}
        out.update(adversary_outputs(self.adversary, mu[:, :k]))
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
    """Multi-resolution STFT (spectral convergence + log-magnitude L1 at ``FFT_FACTORS`` x the
    AudioConfig's n_fft) + log-mel L1 (+ ``chroma_weight`` x :meth:`PitchClasses.loss`) +
    beta x KL (+ adv_weight x the adversary's cross-entropy). Returns named terms; ``recon``
    is the weighted reconstruction part.

    Parameters
    ----------
    cfg : trainer.TrainConfig (KL weights, free bits, adversary weight)
    audio : AudioConfig of the model (sample rate, n_fft, n_mels, dB floor)
    """

    WEIGHTS = {"sc": 1.0, "log_mag": 1.0, "mel": 1.0}
    # STFT sizes as multiples of the AudioConfig's n_fft (adding 2 and 4, bins fine enough for the
    # bass's semitones, did not bring the oscillator decoder's chroma closer in the demo's budget).
    FFT_FACTORS = (0.25, 0.5, 1)

    def __init__(self, cfg, audio: AudioConfig):
        super().__init__()
        self.cfg = cfg
        self.resolutions = tuple((n, max(1, n // 4)) for n in (int(audio.n_fft * f) for f in self.FFT_FACTORS))
        for n, _ in self.resolutions:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)
        self.mel = build_mel_transform(audio)
        # The dB floor of the AudioConfig, as a power: keeps the log finite and smooth near silence.
        self.floor = 10.0 ** (audio.db_min / 10.0)
        self.pitch_classes = PitchClasses(audio.sample_rate, audio.hop_length) if cfg.chroma_weight > 0 else None

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
        k = out.get("latent_channels")                # the latent (a code may carry observed channels after it)
        terms.update(kl_terms(out["mu"][:, :k], out["logvar"][:, :k], self.cfg))
        terms["recon"] = sum(w * terms[k] for k, w in self.WEIGHTS.items())
        if self.pitch_classes is not None:
            terms["chroma"] = self.pitch_classes.loss(out["recon"], out["target"])
            terms["recon"] = terms["recon"] + self.cfg.chroma_weight * terms["chroma"]
        return total_loss(terms, out, genre, beta, self.cfg)
