"""Audio in and out: reading and resampling files, the mel vocoder, WAVs, figures, players.

The vocoder turns the mel VAE's normalised log-mel back into a waveform, batched and in
torch on the mel's device (GPU when there is one):

    normalised mel [B, M, F] --norm_to_db--> power mel (the floor, -1, is exact silence)
      --NNLS over window lobes (pseudo-inverse start + diagonally scaled FISTA)--> power
      spectrogram [B, F, K] --sqrt--> magnitude
      --fast Griffin-Lim (momentum 0.99, seeded random phase)--> waveform [B, T]

The mel inversion sets most of the error, so it is solved carefully: the power spectrum is
modelled as non-negative window main lobes on a half-bin grid (what sinusoids and smooth
noise look like through a Hann window) and fitted to the mel by accelerated projected-
gradient steps. It replaces the seed's ``librosa.feature.inverse.mel_to_audio``; ``make
bench`` compares the two. A long mel is vocoded piece by piece (``VOCODER_CHUNK_FRAMES``,
each piece continuing the audio of the one before), so time and memory grow with its length.

Public API
----------
read_audio_file(path)                          any file -> (float32 [C, T], its sample rate)
resample(audio, sr_from, sr_to)                [..., T] -> [..., T'] (torchaudio's windowed sinc)
high_quality_mel_to_audio(mel_norm, cfg, n_iter, length)   normalised mel -> waveform
mel_channels_to_audio(mel_norm, cfg, length)  one recording's channels [C, M, F] -> [C, T], one phase
vocoder_pieces(n_frames) / vocoder_progress(callback)       its pieces; a progress hook per piece
mel_to_linear_power(power_mel, cfg, n_iter)    [B, M, F] power mel -> [B, K, F] power spectrogram
griffin_lim(magnitude, cfg, n_iter, momentum, length, seed)  [B, K, F] -> [B, T]
save_wav(path, audio, sr)                      atomic 16-bit PCM WAV
plot_mel(ax, mel, cfg, title)                  one log-mel on a matplotlib axes
mel_grid_figure(rows, cfg, png, title)         a grid of log-mels of waveforms, one row per clip
crossfade_concat(chunks, overlap)              join clips with raised-cosine cross-fades
enhanced_visualize_and_play(original, reconstruction, transfer, cfg, ...)
lerp(a, b, t) / slerp(a, b, t)                 latent paths
interpolate_latent_space(decode, z_a, z_b, steps, mode, cfg, out_dir, name)
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import math
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from prepare_data import AudioConfig, db_to_norm, mel_db, mel_filterbank, norm_to_db, power_to_db
from SlicingDataLoading import BadAudioError, atomic_write, read_file

__all__ = [
    "read_audio_file", "resample", "high_quality_mel_to_audio", "mel_channels_to_audio", "vocoder_pieces",
    "vocoder_progress", "mel_to_linear_power", "griffin_lim",
    "save_wav", "plot_mel", "mel_grid_figure", "crossfade_concat",
    "enhanced_visualize_and_play", "lerp", "slerp", "interpolate_latent_space",
]

DEFAULT_GL_ITER = 32      # Griffin-Lim iterations (the seed used 100)
DEFAULT_NNLS_ITER = 128   # FISTA iterations of the mel inversion
NNLS_COLUMNS = 256        # frames the mel inversion solves together on a CPU: 2 MB iterates, in cache
# A long mel is vocoded in pieces of this many frames (about 18 s at 22050 Hz, hop 512): the
# working tensors of a stereo piece (about 14 MB each) are reused by the C allocator, where
# larger ones are mapped afresh for every operation, and page faults cost as much as the sums.
VOCODER_CHUNK_FRAMES = 768
# Frames of context on either side of a piece: Griffin-Lim couples frames n_fft / hop apart
# (4 here); 32 lets a piece's edge settle before the audio that is kept.
VOCODER_CONTEXT_FRAMES = 32
_PROGRESS: contextvars.ContextVar = contextvars.ContextVar("vocoder_progress", default=None)
ROLES = ("original", "reconstruction", "transfer")


# --------------------------------------------------------------------------- operators
LOBE_TAPS = 7    # half-bin offsets -1.5 .. 1.5 bins: the Hann main lobe (the next tap is -32 dB)


def _lobe_kernel(window: torch.Tensor) -> torch.Tensor:
    """Power spectrum of the window at offsets of -1.5, -1, ..., 1.5 bins, [LOBE_TAPS] float64;
    scaled so that an atom on a bin puts unit power into the bins."""
    n_fft = window.numel()
    offsets = (torch.arange(LOBE_TAPS, dtype=torch.float64) - LOBE_TAPS // 2) / 2.0
    n = torch.arange(n_fft, dtype=torch.float64)
    taps = (window.double() * torch.exp(-2j * math.pi * offsets[:, None] * n / n_fft)).sum(-1).abs() ** 2
    return taps / taps[LOBE_TAPS // 2 % 2::2].sum()                    # taps on whole bins sum to 1


@functools.lru_cache(maxsize=16)
def _operators(cfg: AudioConfig, device: str) -> dict:
    """Everything the vocoder needs that depends only on ``cfg`` and the device.

    The mel inversion solves for non-negative *lobes* u [J] on a half-bin grid
    (J = 2 K - 1) rather than for bins: the power spectrum is s = G u, G [K, J] a sum of
    window main lobes (``taps``), as for sinusoids and smooth noise, and the mel is
    A u = fb G u. ``pinv`` [J, M] is A's pseudo-inverse (the start); ``step`` [J, 1] the
    diagonal FISTA step 1 / ((A^T A) 1), a valid majoriser since A >= 0 (0 where A is 0).
    A [M, J] and A^T [J, M] are kept as sparse CSR matrices: A is under 2 % non-zero (about
    2.3 bands per lobe), so a product with it costs half of applying G (7 taps) and then fb
    (2 bands per bin), and a dense one 50 times more. ``window`` [N] is the periodic Hann of
    the front-end.
    """
    window = torch.hann_window(cfg.n_fft, dtype=torch.float64)
    fb64 = mel_filterbank(cfg, "cpu").double()                        # (M, K)
    n_mels, n_bins = fb64.shape

    taps = _lobe_kernel(window)
    n_lobes = 2 * n_bins - 1
    G = torch.zeros(n_bins, n_lobes + LOBE_TAPS - 1, dtype=torch.float64)   # on the padded grid
    rows = torch.arange(n_bins)
    for d in range(LOBE_TAPS):
        G[rows, 2 * rows + d] = taps[d]
    A = fb64 @ G[:, LOBE_TAPS // 2:LOBE_TAPS // 2 + n_lobes]          # (M, J)
    row = A.T @ (A @ torch.ones(n_lobes, dtype=torch.float64))
    step = torch.where(row > 1e-12 * row.max(), 1.0 / row.clamp_min(1e-300), torch.zeros_like(row))
    dev = torch.device(device)
    with warnings.catch_warnings():                                   # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        A_csr, At_csr = A.float().to_sparse_csr().to(dev), A.T.float().contiguous().to_sparse_csr().to(dev)
    return {"pinv": torch.linalg.pinv(A).float().to(dev), "n_mels": n_mels, "n_bins": n_bins,
            "A": A_csr, "At": At_csr, "taps": taps.tolist(), "step": step.float().unsqueeze(-1).to(dev),
            "window": window.float().to(dev)}


def _lobes_forward(u: torch.Tensor, ops: dict) -> torch.Tensor:
    """G u: lobes [J, C] -> power spectrum [K, C] (s_k = sum_d taps_d u_{2k + d - 3})."""
    n_bins, half = ops["n_bins"], LOBE_TAPS // 2
    padded = F.pad(u, (0, 0, half, half))                             # (J + 6, C)
    out = padded[0:2 * n_bins - 1:2] * ops["taps"][0]
    for d in range(1, LOBE_TAPS):
        out.add_(padded[d:d + 2 * n_bins - 1:2], alpha=ops["taps"][d])
    return out


def _as_mel_batch(mel_norm, cfg: AudioConfig) -> tuple[torch.Tensor, bool]:
    """Check a normalised mel and return it as float32 [B, M, F] and whether it was one item.

    [M, F] and [1, M, F] (one item of the model's [B, 1, M, F] batch) are one item;
    [B, M, F] with B > 1 and [B, 1, M, F] are batches.
    """
    mel = torch.as_tensor(mel_norm)
    if not (mel.is_floating_point() or mel.dtype in (torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"mel must be real-valued, got dtype {mel.dtype}")
    mel = mel.float()
    shape = tuple(mel.shape)
    if mel.dim() == 4 and shape[1] != 1:
        raise ValueError(f"mel of shape {shape}: a 4-D mel must be [B, 1, n_mels, frames]")
    if mel.dim() not in (2, 3, 4):
        raise ValueError(f"mel of shape {shape}: expected [M, F], [1, M, F], [B, M, F] or [B, 1, M, F]")
    if shape[-2] != cfg.n_mels:
        raise ValueError(f"mel of shape {shape} has {shape[-2]} mel bands but cfg.n_mels={cfg.n_mels}")
    if shape[-1] < 2:
        raise ValueError(f"mel of shape {shape}: need at least 2 frames")
    bad = ~torch.isfinite(mel)
    if bool(bad.any()):
        raise ValueError(f"mel of shape {shape} contains {int(bad.sum())} non-finite value(s) "
                         f"(NaN or inf), e.g. {mel[bad].flatten()[0].item()}")
    single = mel.dim() == 2 or (mel.dim() == 3 and shape[0] == 1)
    return mel.reshape(-1, shape[-2], shape[-1]), single


def _norm_to_power(mel: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Normalised mel -> power mel; the floor (-1: silence and padding) becomes exact 0."""
    power = torch.pow(10.0, norm_to_db(mel, cfg) / 10.0)
    return torch.where(mel <= -1.0, torch.zeros_like(power), power)


# --------------------------------------------------------------------------- mel inversion
def _fista(P: torch.Tensor, ops: dict, n_iter: int) -> torch.Tensor:
    """Lobes u [J, C] >= 0 minimising ||A u - p||^2 for each column p of P [M, C]: the
    pseudo-inverse start clamped at 0, then FISTA with the diagonal step."""
    x = (ops["pinv"] @ P).clamp_min_(0.0)                             # (J, C)
    y, t = x, 1.0
    for _ in range(n_iter):
        residual = torch.sparse.mm(ops["A"], y).sub_(P)               # A y - p      (M, C)
        gradient = torch.sparse.mm(ops["At"], residual)               # A^T (A y - p) (J, C)
        x_next = torch.addcmul(y, ops["step"], gradient, value=-1.0).clamp_min_(0.0)
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        y = torch.lerp(x_next, x, -(t - 1.0) / t_next)                # x_next + c (x_next - x)
        x, t = x_next, t_next
    return x


def _invert_mel(power_fm: torch.Tensor, ops: dict, n_iter: int) -> torch.Tensor:
    """Non-negative least squares ``min ||fb G u - p||^2, u >= 0`` for every frame, and
    s = G u. [B, F, M] power mel -> [B, F, K] power spectrum.

    All frames of all items are the columns of one [J, B * F] problem. Each column is its
    own problem (FISTA's momentum schedule does not depend on the data), so on a CPU the
    columns are solved ``NNLS_COLUMNS`` at a time, whose iterates stay in the cache, with
    the same result as all at once.
    """
    B, n_frames, M = power_fm.shape
    P = power_fm.reshape(B * n_frames, M).T.contiguous()              # (M, BF)
    block = NNLS_COLUMNS if P.device.type == "cpu" else P.shape[1]
    u = torch.cat([_fista(P[:, i:i + block].contiguous(), ops, n_iter) for i in range(0, P.shape[1], block)],
                  dim=1)                                              # (J, BF)
    return _lobes_forward(u, ops).T.reshape(B, n_frames, -1)          # (B, F, K)


def mel_to_linear_power(power_mel: torch.Tensor, cfg: AudioConfig,
                        n_iter: int = DEFAULT_NNLS_ITER) -> torch.Tensor:
    """Invert the mel filterbank: non-negative least squares over window lobes, batched.

    Solves ``min ||fb G u - p||^2, u >= 0`` frame by frame, where ``G u`` places a Hann main
    lobe of power u_j at every half bin j / 2, and returns ``G u``. Starts from the
    pseudo-inverse clamped at 0 and runs ``n_iter`` FISTA iterations with a diagonal step.

    Parameters
    ----------
    power_mel : Tensor [M, F] or [B, M, F], mel power (not dB, not normalised), >= 0
    cfg : AudioConfig
    n_iter : FISTA iterations (0: clamped pseudo-inverse only)

    Returns
    -------
    Tensor [K, F] or [B, K, F], K = n_fft // 2 + 1, power spectrogram >= 0, on the input's
    device.
    """
    power_mel = torch.as_tensor(power_mel, dtype=torch.float32)
    single = power_mel.dim() == 2
    P = power_mel.reshape(-1, *power_mel.shape[-2:])
    if P.shape[-2] != cfg.n_mels:
        raise ValueError(f"power mel of shape {tuple(power_mel.shape)} has {P.shape[-2]} bands "
                         f"but cfg.n_mels={cfg.n_mels}")
    ops = _operators(cfg, str(P.device))
    S = _invert_mel(P.transpose(1, 2), ops, n_iter).transpose(1, 2)   # (B, K, F)
    return S[0] if single else S


# --------------------------------------------------------------------------- Griffin-Lim
def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add [B, F, N] frames at ``hop`` -> [B, (F - 1) * hop + N]."""
    B, n_frames, N = frames.shape
    if N % hop == 0:                                                  # N/hop shifted block sums
        r = N // hop
        blocks = frames.reshape(B, n_frames, r, hop)
        out = frames.new_zeros(B, n_frames + r - 1, hop)
        for j in range(r):
            out[:, j:j + n_frames] += blocks[:, :, j]
        return out.reshape(B, -1)
    length = (n_frames - 1) * hop + N
    return F.fold(frames.transpose(1, 2), (1, length), (1, N), stride=(1, hop)).reshape(B, length)


def _fast_griffin_lim(mag: torch.Tensor, cfg: AudioConfig, n_iter: int, momentum: float,
                      inside: tuple[int, int], seed: int, fixed: tuple[int, torch.Tensor] | None = None
                      ) -> torch.Tensor:
    """Fast Griffin-Lim on [B, F, K] magnitudes -> the centre-padded signal [B, (F - 1) hop + n_fft].

    Works in the padded signal domain: synthesis = irfft, window, overlap-add, divide by the
    window envelope and zero outside ``inside`` = (first, end) sample of the signal (as
    ``pad_mode='constant'``); analysis = frame, window, rfft. ``fixed`` = (first sample,
    samples [B, n]) holds that span of the signal at given values (the audio a previous piece
    already produced), so the frames that overlap it continue it. Momentum as librosa /
    torchaudio (Perraudin et al. 2013).
    """
    B, n_frames, K = mag.shape
    N, hop = cfg.n_fft, cfg.hop_length
    window = _operators(cfg, str(mag.device))["window"]
    envelope = _overlap_add(window.square().expand(1, n_frames, N), hop)[0]
    mask = torch.zeros(envelope.shape[0], device=mag.device)
    mask[inside[0]:inside[1]] = 1.0
    scale = mask / envelope.clamp_min(1e-8 * float(envelope.max()))   # (L_pad,)

    def synthesis(spec):                                              # (B, F, K) -> (B, L_pad)
        signal = _overlap_add(torch.fft.irfft(spec, n=N, dim=-1) * window, hop) * scale
        if fixed is not None:
            signal[:, fixed[0]:fixed[0] + fixed[1].shape[-1]] = fixed[1]
        return signal

    def analysis(signal):                                             # (B, L_pad) -> (B, F, K)
        return torch.fft.rfft(signal.unfold(-1, N, hop) * window, dim=-1)

    gen = torch.Generator().manual_seed(seed)                         # same start on any device
    phase = 2.0 * math.pi * torch.rand(n_frames, K, generator=gen).to(mag.device)
    spec = torch.polar(mag, phase)                                    # (B, F, K) complex
    alpha = momentum / (1.0 + momentum)
    previous = None
    for _ in range(n_iter):
        rebuilt = analysis(synthesis(spec))
        if previous is None:
            update = rebuilt.clone()
        else:                                                         # rebuilt - alpha previous, in place
            update = previous.mul_(-alpha).add_(rebuilt)
        previous = rebuilt
        parts = torch.view_as_real(update)                            # |.|^2 from re, im: faster than abs()
        re, im = parts[..., 0], parts[..., 1]
        gain = torch.addcmul(re * re, im, im).add_(1e-30).rsqrt_().mul_(mag)   # mag / |update|
        spec = update.mul_(gain)
    return synthesis(spec)


def _fit_length(audio: torch.Tensor, length: int | None) -> torch.Tensor:
    if length is None or audio.shape[-1] == length:
        return audio
    if audio.shape[-1] > length:
        return audio[..., :length]
    return F.pad(audio, (0, length - audio.shape[-1]))


def _loop_length(n_frames: int, hop: int, length: int | None) -> int:
    """Samples Griffin-Lim works on: ``length`` if it has ``n_frames`` frames, else the nearest."""
    natural = (n_frames - 1) * hop
    return natural if length is None else min(max(int(length), natural), n_frames * hop - 1)


def griffin_lim(magnitude: torch.Tensor, cfg: AudioConfig, n_iter: int = DEFAULT_GL_ITER,
                momentum: float = 0.99, length: int | None = None, seed: int = 0) -> torch.Tensor:
    """Fast Griffin-Lim phase reconstruction, batched, on the input's device.

    Parameters
    ----------
    magnitude : Tensor [K, F] or [B, K, F], K = n_fft // 2 + 1, STFT magnitude
        (centred frames, periodic Hann window of n_fft, cfg.hop_length)
    cfg : AudioConfig
    n_iter : iterations
    momentum : 0.99 as Perraudin et al.; 0 is plain Griffin-Lim
    length : output samples (default (F - 1) * hop)
    seed : the random initial phase; the same for every item, so a batch equals its items

    Returns
    -------
    Tensor float32 [T] or [B, T]
    """
    magnitude = torch.as_tensor(magnitude, dtype=torch.float32)
    single = magnitude.dim() == 2
    mag = magnitude.reshape(-1, *magnitude.shape[-2:])
    if mag.shape[-2] != cfg.n_fft // 2 + 1:
        raise ValueError(f"magnitude of shape {tuple(magnitude.shape)}: expected "
                         f"{cfg.n_fft // 2 + 1} frequency bins for n_fft={cfg.n_fft}")
    loop_len = _loop_length(mag.shape[-1], cfg.hop_length, length)
    half = cfg.n_fft // 2
    out = _fast_griffin_lim(mag.transpose(1, 2), cfg, n_iter, momentum, (half, half + loop_len), seed)
    out = out[:, half:half + loop_len]
    out = _fit_length(out, length)
    return out[0] if single else out


def vocoder_pieces(n_frames: int, chunk_frames: int = VOCODER_CHUNK_FRAMES) -> list[tuple[int, int]]:
    """The (first, end) frames of the pieces :func:`high_quality_mel_to_audio` vocodes one at
    a time: one piece up to ``chunk_frames`` frames, else pieces of ``chunk_frames``."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive number of frames, got {chunk_frames}")
    return [(a, min(a + chunk_frames, n_frames)) for a in range(0, n_frames, chunk_frames)]


@contextlib.contextmanager
def vocoder_progress(callback: Callable[[int], None]):
    """Within the block, :func:`high_quality_mel_to_audio` calls ``callback(1)`` after each
    piece it vocodes (see :func:`vocoder_pieces`): a progress bar's ``update``."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def high_quality_mel_to_audio(mel_norm, cfg: AudioConfig | None = None, n_iter: int = DEFAULT_GL_ITER,
                              length: int | None = None, *, nnls_iter: int = DEFAULT_NNLS_ITER,
                              momentum: float = 0.99, seed: int = 0,
                              chunk_frames: int = VOCODER_CHUNK_FRAMES) -> torch.Tensor:
    """Vocode a normalised log-mel: NNLS mel inversion + fast Griffin-Lim, batched, in torch.

    A mel longer than ``chunk_frames`` is vocoded in pieces of that many frames, so that time
    and memory grow with its length and no more: each piece is solved with
    ``VOCODER_CONTEXT_FRAMES`` frames of context on either side; on its left the context
    audio is held at what the previous piece produced (Griffin-Lim then continues that
    audio's phase), and the pieces meet with an n_fft-sample raised-cosine cross-fade. A mel
    of at most ``chunk_frames`` frames is one piece.

    Parameters
    ----------
    mel_norm : Tensor or ndarray, [M, F], [1, M, F], [B, M, F] or [B, 1, M, F] in [-1, 1]
        (M = cfg.n_mels; values outside are clipped; -1, silence and padding, vocodes to 0).
        [1, M, F] is read as one item with its channel axis.
    cfg : AudioConfig the mel was made with (saved in the checkpoint; default ``AudioConfig()``)
    n_iter : Griffin-Lim iterations
    length : trim / zero-pad the output to this many samples (default (F - 1) * hop)
    nnls_iter : FISTA iterations of the mel inversion
    momentum, seed : Griffin-Lim momentum and initial-phase seed
    chunk_frames : frames vocoded at once (a piece); the same pieces for every item, so a
        batch equals its items

    Returns
    -------
    Tensor float32 [T] for one item, [B, T] for a batch, on the mel's device; not clipped.

    Raises
    ------
    ValueError on a wrong shape, an n_mels that differs from cfg, or NaN / inf values.
    """
    cfg = cfg if cfg is not None else AudioConfig()
    mel, single = _as_mel_batch(mel_norm, cfg)                        # (B, M, F)
    ops = _operators(cfg, str(mel.device))
    N, hop = cfg.n_fft, cfg.hop_length
    n_frames = mel.shape[-1]
    loop_len = _loop_length(n_frames, hop, length)
    pieces = vocoder_pieces(n_frames, chunk_frames)
    progress = _PROGRESS.get()
    audio = mel.new_zeros(mel.shape[0], loop_len)                     # (B, T)
    tail = None                        # the previous piece's audio past its end, to cross-fade with
    with torch.no_grad(), torch.autocast(device_type=mel.device.type, enabled=False):
        for k, (a, b) in enumerate(pieces):
            context = VOCODER_CONTEXT_FRAMES if len(pieces) > 1 else 0
            lo, hi = max(0, a - context), min(n_frames, b + context)
            power = _norm_to_power(mel[..., lo:hi], cfg).transpose(1, 2)  # (B, F', M)
            magnitude = _invert_mel(power, ops, nnls_iter).sqrt()     # (B, F', K)
            origin = lo * hop - N // 2                                # clip sample at the piece's index 0
            padded = (hi - lo - 1) * hop + N
            inside = (max(0, -origin), min(padded, loop_len - origin))
            first, end = a * hop, (b * hop if b < n_frames else loop_len)   # the samples this piece gives
            held = None
            if a > 0:                                                 # hold the audio already made
                start = max(0, origin)
                held = (start - origin, audio[:, start:first])
            signal = _fast_griffin_lim(magnitude, cfg, n_iter, momentum, inside, seed + k, held)
            new = signal[:, first - origin:end - origin]              # (B, end - first)
            if tail is not None:                                      # cross-fade over the joint
                n = min(tail.shape[-1], new.shape[-1])
                ramp = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(n, device=new.device) + 0.5) / n)
                new[:, :n] = tail[:, :n] * (1.0 - ramp) + new[:, :n] * ramp
            audio[:, first:end] = new
            tail = signal[:, end - origin:end - origin + N].clone() if b < n_frames else None
            if progress is not None:
                progress(1)
    audio = _fit_length(audio, length)                                # (B, T)
    return audio[0] if single else audio


def mel_channels_to_audio(mel_norm, cfg: AudioConfig | None = None, length: int | None = None,
                          **vocoder) -> torch.Tensor:
    """The channels of one recording, normalised log-mels [C, M, F] (or [C, 1, M, F]) ->
    audio [C, T], vocoded with one phase for all channels.

    The vocoder (:func:`high_quality_mel_to_audio`, ``vocoder`` its keywords) runs once, on
    the channels' mean power (the mid); each channel is then the mid's spectrum scaled, bin
    by bin, by the square root of that channel's share of the power in the mel bands that
    cover the bin. The channels keep their levels band by band, and so where they differ;
    they share a phase, as a stereo mix of the same instruments does, instead of each
    drawing its own from Griffin-Lim (which smears the stereo image); and the vocoder's
    cost does not grow with the channels. Equal channels give the one-channel vocoding up to
    float rounding.
    """
    cfg = cfg if cfg is not None else AudioConfig()
    mel, _ = _as_mel_batch(mel_norm, cfg)                             # (C, M, F)
    if mel.shape[0] == 1:
        return high_quality_mel_to_audio(mel, cfg, length=length, **vocoder)[None]
    with torch.no_grad(), torch.autocast(device_type=mel.device.type, enabled=False):
        power = _norm_to_power(mel, cfg)                              # (C, M, F)
        mid = power.mean(0)                                           # (M, F)
        audio = high_quality_mel_to_audio(db_to_norm(power_to_db(mid, cfg), cfg), cfg, length=length,
                                          **vocoder)                  # (T,)
        share = torch.where(mid > 0, power / mid.clamp_min(1e-30), torch.ones_like(power))   # (C, M, F)
        fb = mel_filterbank(cfg, mel.device)                          # (M, K)
        cover = fb.sum(0)                                             # (K,) a bin's weight over bands
        weight = fb / cover.clamp_min(1e-30)
        gain = torch.einsum("mk,cmf->ckf", weight, share)             # (C, K, F)
        gain = torch.where(cover[None, :, None] > 0, gain, torch.ones_like(gain)).sqrt()
        window = _operators(cfg, str(mel.device))["window"]
        spec = torch.stft(audio, cfg.n_fft, cfg.hop_length, window=window, center=True, pad_mode="constant",
                          return_complex=True)                        # (K, F')
        frames = min(spec.shape[-1], gain.shape[-1])
        spec = spec[None].repeat(mel.shape[0], 1, 1)
        spec[..., :frames] *= gain[..., :frames]
        return torch.istft(spec, cfg.n_fft, cfg.hop_length, window=window, center=True, length=audio.shape[-1])


# --------------------------------------------------------------------------- files
def read_audio_file(path) -> tuple[np.ndarray, int]:
    """Decode a file keeping its channels and rate: (audio float32 [C, T], sample rate).

    Raises SlicingDataLoading.BadAudioError (a ValueError) naming the file and the reason:
    missing, empty, unreadable (not a recognised audio format), truncated, non-finite.
    """
    path = Path(path)
    data, sr = read_file(path)                                        # (T, C)
    if data.shape[0] == 0:
        raise BadAudioError(path, "empty", "0 samples")
    if not np.isfinite(data).all():
        raise BadAudioError(path, "non-finite", f"{int((~np.isfinite(data)).sum())} NaN/inf samples")
    return np.ascontiguousarray(data.T), int(sr)


def resample(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """[..., T] at sr_from -> [..., T'] at sr_to (torchaudio's windowed sinc)."""
    if sr_from == sr_to:
        return np.asarray(audio).astype(np.float32)
    import torchaudio.functional as AF
    return AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), sr_from, sr_to).numpy()


def _to_numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def save_wav(path, audio, sr: int) -> Path:
    """Write a 16-bit PCM WAV atomically (temporary file + ``os.replace``).

    Parameters
    ----------
    path : str or Path; missing folders are created
    audio : ndarray or Tensor, [T] mono or [C, T] (C <= 16) channels first
    sr : sample rate

    Returns
    -------
    Path written. Samples are clipped to [-1, 1]; non-finite audio is a ValueError; a path
    that cannot be written (a full disk, a read-only folder) a cli.OutputError naming it.
    """
    import soundfile as sf

    path = Path(path)
    data = _to_numpy(audio).astype(np.float32)
    if data.ndim == 2 and data.shape[0] <= 16 and data.shape[0] < data.shape[1]:
        data = data.T                                                 # (T, C) for soundfile
    elif data.ndim != 1:
        raise ValueError(f"save_wav {path}: audio of shape {data.shape}, expected [T] or [C, T]")
    if not np.isfinite(data).all():
        raise ValueError(f"save_wav {path}: audio contains NaN or inf")
    # Encode in memory, then write the bytes: soundfile writing into a file object meets a full
    # disk inside a C callback (a traceback on stderr); a plain write raises the OSError here.
    encoded = io.BytesIO()
    sf.write(encoded, np.clip(data, -1.0, 1.0), int(sr), subtype="PCM_16", format="WAV")
    return atomic_write(path, lambda f: f.write(encoded.getbuffer()))


def crossfade_concat(chunks: Sequence, overlap: int):
    """Concatenate 1-D clips, each joint a raised-cosine cross-fade of ``overlap`` samples.

    The two gains sum to 1 at every sample, so a constant signal stays constant.

    Parameters
    ----------
    chunks : sequence of ndarray or Tensor [T_i] (all numpy or all torch)
    overlap : samples shared by neighbouring clips (0: plain concatenation)

    Returns
    -------
    same type as the chunks, [sum(T_i) - overlap * (len(chunks) - 1)]
    """
    if len(chunks) == 0:
        raise ValueError("crossfade_concat: no chunks")
    as_numpy = not torch.is_tensor(chunks[0])
    parts = [torch.as_tensor(np.asarray(c) if not torch.is_tensor(c) else c).float().reshape(-1)
             for c in chunks]
    overlap = int(overlap)
    shortest = min(p.numel() for p in parts)
    if overlap < 0 or (len(parts) > 1 and overlap > shortest):
        raise ValueError(f"crossfade_concat: overlap {overlap} must be in [0, {shortest}] "
                         f"(the shortest chunk)")
    out = parts[0]
    if overlap > 0:
        ramp = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(overlap, device=out.device) + 0.5) / overlap)
    for p in parts[1:]:
        p = p.to(out.device)
        if overlap == 0:
            out = torch.cat([out, p])
            continue
        joint = out[-overlap:] * (1.0 - ramp) + p[:overlap] * ramp
        out = torch.cat([out[:-overlap], joint, p[overlap:]])
    return out.cpu().numpy() if as_numpy else out


# --------------------------------------------------------------------------- figures
def _mel_to_db_array(mel, cfg: AudioConfig, kind: str = "auto") -> np.ndarray:
    """A log-mel [M, F] in dB from a dB or normalised mel ([M, F], [1, M, F], [1, 1, M, F])."""
    m = torch.as_tensor(_to_numpy(mel), dtype=torch.float32)
    while m.dim() > 2 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 2:
        raise ValueError(f"plot_mel: mel of shape {tuple(torch.as_tensor(_to_numpy(mel)).shape)}, "
                         f"expected [M, F]")
    if kind == "auto":
        kind = "norm" if float(m.min()) >= -1.0 and float(m.max()) <= 1.0 else "db"
    if kind not in ("norm", "db"):
        raise ValueError(f"plot_mel: kind must be 'auto', 'norm' or 'db', got {kind!r}")
    return (norm_to_db(m, cfg) if kind == "norm" else m).numpy()


def plot_mel(ax, mel_db_or_norm, cfg: AudioConfig, title: str = "", kind: str = "auto",
             colorbar: bool = True):
    """Draw one log-mel on ``ax``: time in seconds, mel bands labelled in Hz, dB colour bar.

    Parameters
    ----------
    ax : matplotlib Axes
    mel_db_or_norm : ndarray or Tensor [M, F] (or [1, M, F]), in dB or normalised [-1, 1]
    cfg : AudioConfig (sample rate, hop, mel range, dB range)
    title : axes title
    kind : "auto" (normalised when every value lies in [-1, 1]), "norm" or "db"
    colorbar : add a dB colour bar beside the axes

    Returns
    -------
    the AxesImage
    """
    import librosa

    db = _mel_to_db_array(mel_db_or_norm, cfg, kind)                  # (M, F)
    n_mels, n_frames = db.shape
    seconds = n_frames * cfg.hop_length / cfg.sample_rate
    image = ax.imshow(db, origin="lower", aspect="auto", interpolation="nearest", cmap="magma",
                      vmin=cfg.db_min, vmax=cfg.db_max, extent=(0.0, seconds, 0.0, n_mels))
    centres = librosa.mel_frequencies(n_mels + 2, fmin=cfg.fmin, fmax=cfg.f_max)[1:-1]
    ticks = np.linspace(0, n_mels - 1, 6).round().astype(int)
    ax.set_yticks(ticks + 0.5)
    ax.set_yticklabels([f"{centres[i] / 1000:.1f}k" if centres[i] >= 1000 else f"{centres[i]:.0f}"
                        for i in ticks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band (Hz)")
    ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, format="%+.0f dB")
    return image


def _new_figure(n_rows: int, n_cols: int, size: tuple[float, float]):
    """A figure on the Agg canvas, outside pyplot: nothing global, nothing to leak."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, axes


def _save_figure(fig, png, dpi: int) -> Path:
    """Write ``fig`` as a PNG through :func:`atomic_write` (folders created)."""
    return atomic_write(Path(png), lambda f: fig.savefig(f, dpi=dpi, format="png"))


def mel_grid_figure(rows: Sequence[Sequence[tuple]], cfg: AudioConfig, png, title: str = "") -> Path:
    """A grid of log-mels, one row per clip: ``rows[i]`` is a list of (waveform [T] at
    ``cfg.sample_rate``, panel title). Drawn on the Agg canvas; parent folders are created.

    Returns
    -------
    Path of the PNG
    """
    n_cols = max(len(r) for r in rows)
    fig, axes = _new_figure(len(rows), n_cols, (4.2 * n_cols, 2.3 * len(rows) + 0.5))
    for i, row in enumerate(rows):
        for j, (audio, name) in enumerate(row):
            db = mel_db(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), cfg)
            plot_mel(axes[i, j], db.numpy(), cfg, name, kind="db", colorbar=j == n_cols - 1)
            if j:
                axes[i, j].set_ylabel("")
    if title:
        fig.suptitle(title)
    return _save_figure(fig, png, dpi=80)


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _to_audio_and_mel(x, cfg: AudioConfig, role: str) -> tuple[np.ndarray, np.ndarray]:
    """A waveform ([T], [1, T]) or normalised mel ([M, F], [1, M, F], [1, 1, M, F]) ->
    (waveform [T], log-mel dB [M, F]) on the CPU; mels are vocoded (on their device),
    waveforms analysed."""
    t = x.detach().float() if torch.is_tensor(x) else torch.as_tensor(np.asarray(x), dtype=torch.float32)
    is_wave = t.dim() == 1 or (t.dim() == 2 and t.shape[0] == 1 and cfg.n_mels != 1)
    if is_wave:
        wave = t.reshape(-1).cpu()
        if not bool(torch.isfinite(wave).all()):
            raise ValueError(f"{role}: waveform contains NaN or inf")
        return wave.numpy(), mel_db(wave, cfg).numpy()
    mel = t
    while mel.dim() > 2 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2:
        raise ValueError(f"{role}: shape {tuple(t.shape)} is neither a waveform [T] nor one "
                         f"normalised mel [{cfg.n_mels}, F] / [1, {cfg.n_mels}, F]")
    wave = high_quality_mel_to_audio(mel, cfg)                        # checks n_mels, NaN
    return wave.cpu().numpy(), norm_to_db(mel, cfg).cpu().numpy()


def enhanced_visualize_and_play(original, reconstruction=None, transfer=None,
                                cfg: AudioConfig | None = None, title: str = "",
                                out_dir="audio_results", name: str = "clip",
                                play: bool = True) -> dict:
    """Stacked log-mel figure (PNG) and WAVs for an original and its reconstruction / transfer.

    Parameters
    ----------
    original, reconstruction, transfer : waveform ([T], ndarray or Tensor) or normalised mel
        ([M, F] or [1, M, F]; vocoded with :func:`high_quality_mel_to_audio`); the last two
        may be None
    cfg : AudioConfig (default ``AudioConfig()``)
    title : figure title
    out_dir : folder for ``{name}.png`` and ``{name}_{role}.wav`` (created)
    name : file stem
    play : inside IPython / Jupyter, show the figure and ``IPython.display.Audio`` players

    Returns
    -------
    dict role -> Path: "figure" and one of "original", "reconstruction", "transfer" per input.
    """
    cfg = cfg if cfg is not None else AudioConfig()
    out_dir = Path(out_dir)
    items = [(role, x) for role, x in zip(ROLES, (original, reconstruction, transfer)) if x is not None]
    if not items:
        raise ValueError("enhanced_visualize_and_play: nothing to show (original is None)")
    converted = [(role, *_to_audio_and_mel(x, cfg, role)) for role, x in items]

    paths = {}
    fig, axes = _new_figure(len(converted), 1, (10.0, 2.8 * len(converted) + 0.4))
    for ax, (role, _, db) in zip(axes[:, 0], converted):
        plot_mel(ax, db, cfg, role, kind="db")
    if title:
        fig.suptitle(title)
    paths["figure"] = _save_figure(fig, out_dir / f"{name}.png", dpi=100)
    for role, wave, _ in converted:
        paths[role] = save_wav(out_dir / f"{name}_{role}.wav", wave, cfg.sample_rate)

    if play and _in_ipython():
        from IPython.display import Audio, Image, display

        display(Image(filename=str(paths["figure"])))
        for role, _, _ in converted:
            print(role)
            display(Audio(filename=str(paths[role])))
    return paths


# --------------------------------------------------------------------------- latent paths
def _endpoints(a, b, t, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """(a, b) as tensors of one shape, the weights t as a vector [S], and whether t was a scalar."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    return a, b, t.reshape(-1), t.dim() == 0


def lerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """Straight line ``(1 - t) a + t b``.

    Parameters
    ----------
    a, b : Tensor [D...], same shape
    t : float or Tensor [S]

    Returns
    -------
    Tensor [D...] for a float ``t``, [S, D...] for a vector.
    """
    a, b, w, scalar = _endpoints(a, b, t, "lerp")
    w = w.reshape(-1, *([1] * a.dim()))
    out = (1.0 - w) * a.unsqueeze(0) + w * b.unsqueeze(0)             # exact at t = 0 and t = 1
    return out[0] if scalar else out


def slerp(a: torch.Tensor, b: torch.Tensor, t, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation: the direction moves along the great circle from a to b at
    constant angular speed, the norm goes linearly from |a| to |b|.

    Near-parallel directions (sin of the angle below ``eps``) and zero vectors fall back to
    :func:`lerp`. The whole tensor is one vector (flattened).

    Parameters
    ----------
    a, b : Tensor [D...], same shape
    t : float or Tensor [S], 0 gives a, 1 gives b

    Returns
    -------
    Tensor [D...] for a float ``t``, [S, D...] for a vector.
    """
    a, b, w, scalar = _endpoints(a, b, t, "slerp")
    va, vb = a.reshape(-1).double(), b.reshape(-1).double()
    na, nb = va.norm(), vb.norm()
    if float(na) == 0.0 or float(nb) == 0.0:
        return lerp(a, b, t)
    ua, ub = va / na, vb / nb
    omega = torch.arccos((ua @ ub).clamp(-1.0, 1.0))
    if float(torch.sin(omega)) < eps:
        return lerp(a, b, t)
    wd = w.double()[:, None]                                          # (S, 1)
    direction = (torch.sin((1.0 - wd) * omega) * ua + torch.sin(wd * omega) * ub) / torch.sin(omega)
    norm = (1.0 - wd) * na + wd * nb
    out = (direction * norm).to(a.dtype).reshape(-1, *a.shape)
    out[w == 0] = a                                                   # exact endpoints
    out[w == 1] = b
    return out[0] if scalar else out


def interpolate_latent_space(decode: Callable[[torch.Tensor], torch.Tensor], z_a, z_b,
                             steps: int = 8, mode: str = "linear", cfg: AudioConfig | None = None,
                             out_dir="audio_results", name: str = "interpolation",
                             crossfade_seconds: float = 0.05) -> dict:
    """Decode a path between two latents; save the mels side by side and the audio.

    Parameters
    ----------
    decode : callable, latents [S, D...] -> normalised mels [S, 1, M, F] (or [S, M, F]) or
        waveforms [S, T]; called under ``torch.no_grad()``
    z_a, z_b : Tensor [D...] or [1, D...], the endpoints
    steps : points on the path, endpoints included (>= 2)
    mode : "linear" (:func:`lerp`) or "slerp" (:func:`slerp`)
    cfg : AudioConfig (default ``AudioConfig()``)
    out_dir, name : ``{name}.png``, ``{name}_path.wav`` (all steps joined with
        ``crossfade_seconds`` raised-cosine cross-fades) and ``{name}_step{i:02d}.wav``
    crossfade_seconds : overlap between neighbouring steps in the joined WAV

    Returns
    -------
    dict t [S], latents [S, D...], audio [S, T] (Tensors, CPU), paths {"figure", "path",
    "steps": [Path] * S}.
    """
    cfg = cfg if cfg is not None else AudioConfig()
    if mode not in ("linear", "slerp"):
        raise ValueError(f"interpolate_latent_space: mode must be 'linear' or 'slerp', got {mode!r}")
    if steps < 2:
        raise ValueError(f"interpolate_latent_space: steps must be >= 2, got {steps}")
    z_a, z_b = torch.as_tensor(z_a), torch.as_tensor(z_b)
    if z_a.shape != z_b.shape:
        raise ValueError(f"interpolate_latent_space: z_a {tuple(z_a.shape)} and z_b "
                         f"{tuple(z_b.shape)} differ")
    if z_a.dim() > 1 and z_a.shape[0] == 1:
        z_a, z_b = z_a[0], z_b[0]
    t = torch.linspace(0.0, 1.0, steps)
    latents = (lerp if mode == "linear" else slerp)(z_a, z_b, t)      # (S, D...)
    with torch.no_grad():
        decoded = torch.as_tensor(decode(latents)).detach().float()
    if decoded.shape[0] != steps:
        raise ValueError(f"decode returned shape {tuple(decoded.shape)} for {steps} latents")
    if decoded.dim() == 2:                                            # waveforms (S, T)
        audio = decoded.cpu()
        mels_db = mel_db(audio, cfg)                                  # (S, M, F)
    else:                                                             # mels (S, 1, M, F) / (S, M, F)
        mels, _ = _as_mel_batch(decoded, cfg)                         # (S, M, F), checked
        audio = high_quality_mel_to_audio(mels, cfg).cpu()            # (S, T), S >= 2
        mels_db = norm_to_db(mels.cpu(), cfg)

    out_dir = Path(out_dir)
    fig, axes = _new_figure(1, steps, (2.0 * steps + 1.0, 3.2))
    for i, ax in enumerate(axes[0]):
        image = plot_mel(ax, mels_db[i], cfg, f"t = {float(t[i]):.2f}", kind="db", colorbar=False)
        if i:
            ax.set_ylabel("")
            ax.set_yticklabels([])
    fig.colorbar(image, ax=list(axes[0]), format="%+.0f dB")
    fig.suptitle(f"{name}: {mode} interpolation")
    paths = {"figure": _save_figure(fig, out_dir / f"{name}.png", dpi=100)}
    paths["steps"] = [save_wav(out_dir / f"{name}_step{i:02d}.wav", audio[i], cfg.sample_rate)
                      for i in range(steps)]
    overlap = min(int(round(crossfade_seconds * cfg.sample_rate)), audio.shape[-1])
    paths["path"] = save_wav(out_dir / f"{name}_path.wav", crossfade_concat(list(audio), overlap),
                             cfg.sample_rate)
    return {"t": t, "latents": latents.detach().cpu(), "audio": audio, "paths": paths}
