"""Genre transfer for every model family, from Python and from the command line.

    python transfer.py --checkpoint vae_logs/best.pt --input song.wav --target reggae \
        [--source blues] [--method shift|conditional] [--strength 1.0] --out audio_results

Two methods:
- ``shift`` (the seed's attribute vectors): z' = z + alpha * (mean mu of the target genre -
  mean mu of the source genre); the means are stored in the checkpoint (over the training
  split). A conditional decoder is told the source genre, so the shift alone moves the genre.
- ``conditional``: decode z with the target genre; ``strength`` alpha blends the source and
  target genre embeddings ((1 - alpha) e_src + alpha e_tgt), so both methods sweep alike.

Any file libsndfile reads (WAV, AIFF, AU, FLAC, Ogg Vorbis / Opus, MP3), any sample rate,
mono or stereo, any length: the model works window by window with 50 % overlap and a
raised-cosine cross-fade, in its input domain (mel frames or samples). Every channel's
windows go through the encoder and decoder together, ``WINDOW_BATCH`` at a time, and the
mel family's vocoder runs once for all channels, in pieces along time, so time and memory
grow with the file's length; a transfer that runs longer than ``PROGRESS_AFTER_S`` shows a
progress bar. The output has the input's sample rate, channels and duration. An ``--out``
that cannot be written (a file, a read-only folder, a full disk) is one line naming it.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from audio_io import (mel_channels_to_audio, mel_grid_figure, read_audio_file, resample, save_wav, vocoder_pieces,
                      vocoder_progress)
from cli import ArgumentParser, InputError, OutputError, finite_float, one_line, run
from evaluation import GenreJudge
from listening_page import record_outputs, write_report
from prepare_data import enhanced_audio_to_mel, fit_frames
from SlicingDataLoading import GENRES, clip_reader, output_folder
from trainer import load_model
from vae_parts import transfer_code

METHODS = ("shift", "conditional")
MAX_CHANNELS = 8
MAX_STRENGTH = 8.0          # beyond this both methods leave anything the decoder was trained on
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".aiff", ".aif", ".aifc")
# Windows through the encoder / decoder at once: memory bounded at any length, and small enough
# that the convolutions' buffers are reused rather than mapped afresh (page faults) every batch.
WINDOW_BATCH = 8
MEL_PIECE_FRAMES = 4096     # a long clip's log-mel is computed this many frames (95 s at 22050 Hz) at a time
PROGRESS_AFTER_S = 3.0      # a transfer that runs longer than this shows a progress bar


# --------------------------------------------------------------------------- windows
def clip_mel(wave: torch.Tensor, audio) -> torch.Tensor:
    """Normalised log-mel of whole clips [C, T] -> [C, 1, M, T // hop + 1], as
    ``enhanced_audio_to_mel(wave, audio, fit=False)`` gives it, computed ``MEL_PIECE_FRAMES``
    frames at a time (each piece with the samples its frames reach, n_fft / 2 either side)
    so that a long clip's STFT is never in memory whole."""
    hop, n_samples = audio.hop_length, wave.shape[-1]
    n_frames = n_samples // hop + 1
    if n_frames <= MEL_PIECE_FRAMES:
        return enhanced_audio_to_mel(wave, audio, fit=False)
    reach = -(-(audio.n_fft // 2) // hop)                        # frames whose samples a frame reaches
    pieces = []
    for f0 in range(0, n_frames, MEL_PIECE_FRAMES):
        f1 = min(f0 + MEL_PIECE_FRAMES, n_frames)
        s0 = max(0, f0 - reach) * hop                            # a frame boundary: piece frame g = frame g + s0 / hop
        s1 = min(n_samples, (f1 - 1 + reach) * hop)
        mel = enhanced_audio_to_mel(wave[:, s0:s1], audio, fit=False)             # (C, 1, M, F')
        pieces.append(mel[..., f0 - s0 // hop:f1 - s0 // hop])
    return torch.cat(pieces, dim=-1)


def window_starts(total: int, size: int, hop: int) -> list[int]:
    """Start indices of windows of ``size`` every ``hop`` covering [0, total)."""
    if total <= size:
        return [0]
    starts = list(range(0, total - size + 1, hop))
    if starts[-1] + size < total:
        starts.append(starts[-1] + hop)
    return starts


class OverlapAdd:
    """Cross-fades windows [..., size] into clips [C, ..., total], a batch at a time.

    A raised-cosine weight (never exactly 0) is normalised by the sum of weights, so
    overlapping windows blend smoothly and a single window comes back unchanged. Memory is
    the output's, however many windows are added.
    """

    def __init__(self, shape: tuple, starts: list[int], total: int, size: int, device=None):
        self.starts, self.total, self.size = list(starts), total, size
        self.weight = torch.hann_window(size + 2, periodic=False, device=device)[1:-1]   # (size,)
        length = max(total, self.starts[-1] + size)
        self.acc = torch.zeros(*shape, length, device=device)                           # (C, ..., length)
        self.norm = torch.zeros(length, device=device)
        for s in self.starts:
            self.norm[s:s + size] += self.weight

    def add(self, chunks: torch.Tensor, items: range) -> None:
        """Windows [N, ..., size]; ``items`` their indices c * len(starts) + w (channel c, window w)."""
        n = len(self.starts)
        for chunk, k in zip(chunks, items):
            s = self.starts[k % n]
            self.acc[k // n, ..., s:s + self.size].add_(chunk * self.weight)

    def result(self) -> torch.Tensor:
        """The clips [C, ..., total]."""
        return (self.acc / self.norm.clamp_min(1e-8))[..., :self.total]


def overlap_add(chunks: list[torch.Tensor], starts: list[int], total: int, size: int) -> torch.Tensor:
    """Cross-fade windows [..., size] placed at ``starts`` into [..., total] (see :class:`OverlapAdd`)."""
    joined = OverlapAdd((1, *chunks[0].shape[:-1]), starts, total, size, chunks[0].device)
    joined.add(torch.stack(list(chunks)), range(len(starts)))
    return joined.result()[0]


@dataclass
class Windows:
    """Clips cut into model inputs, window by window, for every channel.

    ``seq`` [C, 1, M, L] (log-mels) or [C, 1, L] (samples) holds each channel in the model's
    input domain, padded with silence to cover its last window; windows of ``size`` start at
    ``starts`` and cover the clip's ``total`` frames or samples. Item k is channel
    k // len(starts), window k % len(starts); :meth:`inputs` cuts items i..j-1 when needed,
    so a long clip never sits in memory as one batch of windows.
    """
    seq: torch.Tensor
    starts: list
    size: int
    total: int
    to_input: Callable                   # cut windows [N, 1, ..., size] -> the encoder's input

    def __len__(self) -> int:
        return self.seq.shape[0] * len(self.starts)

    def inputs(self, i: int, j: int) -> torch.Tensor:
        """Model inputs of items i..j-1: mel [N, 1, M, F] or audio [N, 1, size]."""
        n = len(self.starts)
        cut = torch.stack([self.seq[k // n, ..., self.starts[k % n]:self.starts[k % n] + self.size]
                           for k in range(i, j)])                     # (N, 1, M, size) | (N, 1, size)
        return self.to_input(cut)

    def batches(self, size: int | None = None) -> list[range]:
        """The items in batches of at most ``size`` (default ``WINDOW_BATCH``) windows of one
        channel, each starting at a multiple of ``size`` within it: a window has the same place
        in its batch whether its channel is transferred alone or with others (the waveform
        decoder seeds its noise by that place), so each channel's output is its output alone."""
        size, n = size or WINDOW_BATCH, len(self.starts)
        return [range(c * n + i, c * n + min(i + size, n)) for c in range(self.seq.shape[0]) for i in range(0, n, size)]


# --------------------------------------------------------------------------- transfer
class GenreTransfer:
    """Transfers audio between genres with a trained VAE of either family.

    Parameters
    ----------
    model : a model from :func:`trainer.load_model` (``prepare``, ``encode``, ``decode``,
        ``output_to_audio``, ``genre_embedding``, ``family``)
    state : its checkpoint dict (genres and per-genre latent means)
    judge : optional evaluation.GenreJudge, used when the source genre is not given
    """

    def __init__(self, model, state: dict, judge=None, device="cpu"):
        self.model, self.state, self.judge = model.eval(), state, judge
        self.device = torch.device(device)
        self.audio = model.audio
        self.genres = list(state["genres"])
        means = state.get("genre_means")
        self.genre_means = means.float() if isinstance(means, torch.Tensor) and means.numel() else None

    @classmethod
    def from_checkpoint(cls, path, device="cpu", judge_path=None) -> "GenreTransfer":
        model, state = load_model(path, device=device)
        judge = None
        judge_path = Path(judge_path) if judge_path else Path(path).parent / "judge.npz"
        if judge_path.is_file():
            judge = GenreJudge.from_file(judge_path)
        return cls(model, state, judge, device)

    # ---- genres
    def genre_index(self, name: str) -> int:
        if name not in self.genres:
            raise InputError(f"unknown genre {name!r}; choose one of: {', '.join(self.genres)}")
        return self.genres.index(name)

    def predict_genre(self, audio: np.ndarray) -> str:
        """The judge's genre for mono audio [T] at the model's rate."""
        if self.judge is None:
            raise InputError("no source genre given and no judge available: pass source_genre "
                             "(--source) or a judge file (--judge, written by the demo / evaluation)")
        return self.genres[int(self.judge.predict([audio], self.audio.sample_rate)[0])]

    # ---- windows
    def window_size(self) -> int:
        """Mel frames or samples of one window: a training segment, cropped to a whole
        number of latent frames."""
        if self.model.family == "mel":
            size = min(self.audio.natural_frames, self.audio.frames)
            return size - size % self.model.cfg.time_stride
        size = self.audio.segment_samples
        return size - size % self.model.cfg.hop_length

    def windows(self, wave: torch.Tensor, hop_fraction: float = 0.5, whole_only: bool = False) -> Windows:
        """Audio [T] or [C, T] -> the model's inputs, window by window, channel by channel.

        The clip goes to the model's input domain first (the whole log-mel, or the waveform),
        is padded with silence to cover the last window, and is cut every ``hop_fraction``
        x size. ``whole_only`` leaves out a last window that would be mostly padding (a clip
        shorter than one window keeps it).
        """
        mel = self.model.family == "mel"
        chans = wave[None] if wave.dim() == 1 else wave                                    # (C, T)
        seq = clip_mel(chans, self.audio) if mel else chans[:, None]                      # (C, 1, M, F) | (C, 1, T)
        total, size = seq.shape[-1], self.window_size()
        starts = window_starts(total, size, max(1, int(size * hop_fraction)))
        if whole_only and len(starts) > 1 and starts[-1] + size > total:
            starts = starts[:-1]
        padded = fit_frames(seq, starts[-1] + size, -1.0 if mel else 0.0)                 # silence past the end
        if mel:
            def to_input(cut):                                  # (N, 1, M, size) -> (N, 1, M, frames)
                return fit_frames(cut, self.audio.frames)
        else:
            def to_input(cut):                                  # (N, 1, size), size a multiple of the hop
                return self.model.prepare(cut[:, 0])
        return Windows(padded, starts, size, total, to_input)

    def _encode(self, win: Windows, bar=None) -> torch.Tensor:
        """mu of every window [N, D, T'], ``WINDOW_BATCH`` windows at a time."""
        mus = []
        for items in win.batches():
            mus.append(self.model.encode(win.inputs(items.start, items.stop))[1])
            if bar is not None:
                bar.update(1)
        return torch.cat(mus)

    # ---- latent ops
    def _edit_and_decode(self, z: torch.Tensor, src: int, tgt: int, method: str, strength: float,
                         starts: list[int] | None = None) -> torch.Tensor:
        """Latent windows [W, D, T'] -> decoded windows (mel [W, 1, M, F] or audio [W, T]);
        ``starts``, the windows' first samples, place a waveform decoder's windows on the clip's
        time line."""
        n = z.shape[0]
        at = {} if starts is None or self.model.family == "mel" else {"start": torch.tensor(starts, device=z.device)}
        src_idx = torch.full((n,), src, device=z.device, dtype=torch.long)
        tgt_idx = torch.full((n,), tgt, device=z.device, dtype=torch.long)
        if tgt != src:                                                # e.g. the source's hits fade
            z = transfer_code(self.model, z, strength, src_idx, tgt_idx)
        if method == "shift":
            if self.genre_means is None:
                raise InputError("this checkpoint stores no per-genre latent means; use --method conditional")
            delta = (self.genre_means[tgt] - self.genre_means[src]).to(z.device)    # (D,)
            z = z + strength * delta.view(1, -1, *([1] * (z.dim() - 2)))
            return self.model.decode(z, src_idx, **at)
        if method == "conditional":
            emb = self.model.genre_embedding
            mix = (1.0 - strength) * emb(src_idx) + strength * emb(tgt_idx)
            return self.model.decode(z, genre_emb=mix, **at)
        raise InputError(f"unknown method {method!r}; choose from {METHODS}")

    def _decode(self, mu: torch.Tensor, win: Windows, src: int, tgt: int, method: str, strength: float,
                length: int, bar=None) -> torch.Tensor:
        """Edit and decode the windows a batch at a time, cross-fade them into each channel
        and turn that into audio [C, length] (the mel family's vocoder runs once, on the
        channels' mid, each channel keeping its own band levels: audio_io.mel_channels_to_audio)."""
        n = len(win.starts)
        joined = None
        for items in win.batches():
            starts = [win.starts[k % n] for k in items]
            decoded = self._edit_and_decode(mu[items.start:items.stop], src, tgt, method, strength,
                                            starts)[..., :win.size]          # (N, 1, M, size) | (N, size)
            if joined is None:
                joined = OverlapAdd((win.seq.shape[0], *decoded.shape[1:-1]), win.starts, win.total, win.size,
                                    decoded.device)
            joined.add(decoded, items)
            if bar is not None:
                bar.update(1)
        with vocoder_progress(bar.update if bar is not None else (lambda n: None)):
            if self.model.family == "mel":                              # one phase for all channels
                return mel_channels_to_audio(joined.result(), self.audio, length)
            return self.model.output_to_audio(joined.result(), length)      # (C, length)

    def _steps(self, win: Windows, decodes: int) -> int:
        """Progress steps of a transfer: window batches through the encoder and ``decodes``
        times through the decoder, and the vocoder's pieces (mel family)."""
        pieces = len(vocoder_pieces(win.total)) if self.model.family == "mel" else 0
        return len(win.batches()) * (1 + decodes) + decodes * pieces

    @torch.no_grad()
    def transfer_channels(self, audio: np.ndarray, source_genre: str, target_genre: str,
                          method: str = "conditional", strength: float = 1.0,
                          return_reconstruction: bool = False, desc: str | None = None):
        """Audio [C, T] at the model's rate -> transferred audio [C, T].

        Every channel's windows go through the encoder and decoder together, ``WINDOW_BATCH``
        at a time, and the mel family's vocoder runs once, on the channels' mid (in pieces
        along time), so time and memory grow with the clip's length and barely with its
        channels; each channel keeps its own level in every mel band, and equal channels give
        the one-channel transfer up to float rounding. With ``desc`` a progress bar so named shows
        once the transfer has run ``PROGRESS_AFTER_S`` seconds. With ``return_reconstruction``
        also returns the plain reconstruction (no edit), [C, T].
        """
        src, tgt = self.genre_index(source_genre), self.genre_index(target_genre)
        check_strength(method, strength)
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=self.device)
        if wave.dim() != 2:
            raise InputError(f"audio of shape {tuple(wave.shape)}: expected channels x samples [C, T]")
        length = wave.shape[-1]
        win = self.windows(wave)
        decodes = 2 if return_reconstruction else 1
        with tqdm(total=self._steps(win, decodes), desc=desc, unit="step", delay=PROGRESS_AFTER_S,
                  leave=False, disable=desc is None) as bar:
            mu = self._encode(win, bar)                                           # (C W, D, T')
            out = self._decode(mu, win, src, tgt, method, strength, length, bar).float().cpu().numpy()
            if return_reconstruction:
                rec = self._decode(mu, win, src, src, "conditional", 0.0, length, bar)
                return out, rec.float().cpu().numpy()
        return out

    def transfer_mono(self, audio: np.ndarray, source_genre: str, target_genre: str,
                      method: str = "conditional", strength: float = 1.0,
                      return_reconstruction: bool = False):
        """Mono audio [T] at the model's rate -> transferred audio [T] (same length).

        With ``return_reconstruction`` also returns the plain reconstruction (no edit).
        """
        out = self.transfer_channels(np.asarray(audio, dtype=np.float32)[None], source_genre, target_genre,
                                     method, strength, return_reconstruction)
        return (out[0][0], out[1][0]) if return_reconstruction else out[0]

    @torch.no_grad()
    def encode_clip(self, audio: np.ndarray, partial: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of each window of mono audio [T]: time-averaged (mu, logvar), each [W, D].

        Windows are one training segment each, back to back. ``partial=False`` leaves out a
        last window that would be mostly padding (a clip shorter than one window keeps it).
        """
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=self.device)
        win = self.windows(wave, hop_fraction=1.0, whole_only=not partial)
        posts = [self.model.encode(win.inputs(items.start, items.stop))[1:] for items in win.batches()]
        k = getattr(self.model.cfg, "latent_channels", None)      # the latent; observed channels after it
        mu, logvar = torch.cat([p[0] for p in posts])[:, :k], torch.cat([p[1] for p in posts])[:, :k]
        return (mu.flatten(2).mean(-1).float().cpu().numpy(), logvar.flatten(2).mean(-1).float().cpu().numpy())

    @torch.no_grad()
    def decoder_use(self, audios: list, labels: list) -> dict:
        """How much the decoder listens to the latent and to the genre.

        Each clip's first segment is encoded (z = mu) and decoded three ways: as is, with the
        next clip's latent in place of its own, and told another genre. The changes are mean
        absolute differences of normalised log-mels (the waveform family's output goes
        through the mel front end), divided by how much the clips' own log-mels differ.
        ``latent_use`` near 0 means the decoder ignores z (it draws the same output whatever
        the clip); near 1 or above, swapping z changes the output as much as changing the
        clip does. ``genre_use`` is the same for the genre.

        Parameters
        ----------
        audios : at least two mono clips [T] at the model's rate
        labels : their genre indices
        """
        if len(audios) < 2:
            raise ValueError(f"decoder_use needs at least two clips, got {len(audios)}")
        from prepare_data import MelFrontEnd
        size = self.audio.segment_samples
        wave = torch.stack([torch.nn.functional.pad(torch.as_tensor(np.asarray(a[:size], np.float32)),
                                                    (0, max(0, size - len(a)))) for a in audios]).to(self.device)
        genre = torch.as_tensor(labels, device=self.device)
        x = self.model.prepare(wave)              # mel [B, 1, M, F], or audio [B, 1, T] cropped to the hop
        _, mu, _ = self.model.encode(x)
        mel = self.model.family == "mel"
        to_mel = (lambda y: y.float()) if mel else MelFrontEnd(self.audio).to(self.device)
        own = to_mel(self.model.decode(mu, genre))
        other_z = to_mel(self.model.decode(torch.roll(mu, 1, dims=0), genre))
        other_genre = to_mel(self.model.decode(mu, (genre + len(self.genres) // 2) % len(self.genres)))
        target = to_mel(x if mel else x[:, 0])
        spread = float((target - torch.roll(target, 1, dims=0)).abs().mean())
        latent_swap = float((own - other_z).abs().mean())
        genre_swap = float((own - other_genre).abs().mean())
        return {"latent_swap_change": latent_swap, "genre_swap_change": genre_swap, "clip_difference": spread,
                "latent_use": latent_swap / max(spread, 1e-8), "genre_use": genre_swap / max(spread, 1e-8),
                "latent_use_clips": len(audios)}

    # ---- any audio, files
    def transfer_array(self, audio: np.ndarray, sr: int, target_genre: str, source_genre: str | None = None,
                       method: str = "conditional", strength: float = 1.0,
                       desc: str | None = "transfer") -> tuple[np.ndarray, str]:
        """Any-rate audio -> (transferred audio, same shape and rate; source genre).

        ``audio`` is [T] or [C, T] (channels first, as :func:`audio_io.read_audio_file` gives
        them). An array [T, C] with 1 <= C <= 8 channels and T > 64 x C frames, as soundfile
        and librosa return a file, is read as frames x channels: transposed for the transfer
        and returned as [T, C]. Anything else that is not [T] or [C, T] is an InputError
        naming the shape. All channels are transferred together (:meth:`transfer_channels`);
        ``desc`` names the progress bar a long transfer shows (None: no bar).
        """
        audio = np.asarray(audio, dtype=np.float32)
        frames_first = audio.ndim == 2 and 1 <= audio.shape[1] <= MAX_CHANNELS and audio.shape[0] > 64 * audio.shape[1]
        if audio.ndim not in (1, 2) or (audio.ndim == 2 and audio.shape[0] > MAX_CHANNELS and not frames_first):
            raise InputError(f"audio of shape {audio.shape}: expected [T] or [C, T] with at most "
                             f"{MAX_CHANNELS} channels (or soundfile's [T, C])")
        if not np.isfinite(audio).all():
            raise InputError(f"audio of shape {audio.shape} holds {int((~np.isfinite(audio)).sum())} NaN or "
                             "infinite samples")
        if frames_first:
            out, genre = self.transfer_array(audio.T, sr, target_genre, source_genre, method, strength, desc)
            return out.T, genre
        mono_in = audio.ndim == 1
        chans = audio[None] if mono_in else audio
        if chans.shape[-1] < self.audio.hop_length * sr / self.audio.sample_rate:
            raise InputError(f"audio of shape {audio.shape} at {sr} Hz is shorter than one analysis frame")
        at_model = resample(chans, sr, self.audio.sample_rate)
        if source_genre is None:
            source_genre = self.predict_genre(at_model.mean(0))
        out = self.transfer_channels(at_model, source_genre, target_genre, method, strength, desc=desc)
        out = resample(out, self.audio.sample_rate, sr)
        out = _fit_length(out, chans.shape[-1])
        return (out[0] if mono_in else out), source_genre

    def transfer_file(self, path, target_genre: str, out_dir, source_genre: str | None = None,
                      method: str = "conditional", strength: float = 1.0, figure: bool = True) -> Path:
        """Transfer one file; write the WAV, a before/after figure, and a manifest row.

        ``out_dir`` is created and checked writable before any work (a cli.OutputError naming
        it otherwise); a long file shows a progress bar named after it.
        """
        self.genre_index(target_genre)
        if source_genre is not None:
            self.genre_index(source_genre)
        out_dir = output_folder(out_dir)
        audio, sr = read_audio_file(path)
        out, source_genre = self.transfer_array(audio, sr, target_genre, source_genre, method, strength,
                                                desc=Path(path).name)
        stem = output_stem(Path(path).stem, source_genre, target_genre, method, strength)
        wav_path = save_wav(out_dir / f"{stem}.wav", out, sr)                     # [C, T]
        if figure:
            rows = [[(resample(a, sr, self.audio.sample_rate), name)]
                    for a, name in ((audio.mean(0), "before"), (out.mean(0) if out.ndim == 2 else out, "after"))]
            mel_grid_figure(rows, self.audio, out_dir / f"{stem}.png", f"{Path(path).name}: {source_genre} -> "
                            f"{target_genre} ({method}, strength {strength:g})")
        record_outputs(out_dir, [{"source_file": str(path), "source_genre": source_genre, "target_genre": target_genre,
                                  "method": method, "strength": strength, "output_file": wav_path.name}])
        return wav_path


def output_stem(name: str, source_genre: str, target_genre: str, method: str, strength: float) -> str:
    """File stem of a transfer: ``<clip>__<source>_to_<target>__<method>_<strength>``."""
    return f"{name}__{source_genre}_to_{target_genre}__{method}_{strength:g}"


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])


# --------------------------------------------------------------------------- a few dataset clips
@dataclass
class ClipTransfers:
    """A few clips and their transfers, all mono float32 at ``sr`` (see :func:`transfer_clips`).

    ``outputs[method][i]`` is the transfer of ``sources[i]`` (same length);
    ``reconstructions[i]`` its plain reconstruction (no genre change), or None.
    """
    records: list
    target_genre: str
    strength: float
    sr: int
    audio: object                                    # the model's AudioConfig
    sources: list
    outputs: dict
    reconstructions: list | None = None
    max_seconds: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def source_genres(self) -> list[str]:
        return [r.genre for r in self.records]

    def figure(self, png) -> Path:
        """One grid of log-mels: a row per clip, the original then each method's transfer."""
        rows = [[(src, f"{rec.name} ({rec.genre})")]
                + [(self.outputs[m][i], f"{m} -> {self.target_genre}") for m in self.outputs]
                for i, (rec, src) in enumerate(zip(self.records, self.sources))]
        return mel_grid_figure(rows, self.audio, png, f"original vs transferred (strength {self.strength:g})")

    def save(self, out_dir) -> list[Path]:
        """Write every transfer as a WAV under ``out_dir`` (named as :meth:`GenreTransfer.transfer_file`
        names them) and list it in ``out_dir/manifest.csv``; a re-run replaces its own rows.

        Returns
        -------
        the WAV paths, method by method, clip by clip
        """
        out_dir = Path(out_dir)
        written, rows = [], []
        for method, outs in self.outputs.items():
            for rec, audio in zip(self.records, outs):
                stem = output_stem(rec.name, rec.genre, self.target_genre, method, self.strength)
                written.append(save_wav(out_dir / f"{stem}.wav", audio, self.sr))
                rows.append({"source_file": str(rec.path), "source_genre": rec.genre,
                             "target_genre": self.target_genre, "method": method,
                             "strength": self.strength, "output_file": written[-1].name})
        record_outputs(out_dir, rows)
        return written


def transfer_clips(tr: GenreTransfer, records, target_genre: str, methods=("conditional",),
                   strength: float = 1.0, cache=None, max_seconds: float | None = None,
                   reconstruct: bool = True) -> ClipTransfers:
    """Transfer a few dataset clips to ``target_genre`` with each method.

    Parameters
    ----------
    tr : GenreTransfer of the model
    records : FileRecords (e.g. from :func:`SlicingDataLoading.pick_clips`); each clip's
        source genre is its record's
    target_genre : a genre of the checkpoint
    methods : any of METHODS ("shift", "conditional"); a single name is accepted
    strength : alpha of both methods (0 = reconstruction, 1 = full transfer)
    cache : SlicingDataLoading.AudioCache to read the clips from (default: the data folder's)
    max_seconds : use the first seconds of each clip only (None: whole clips)
    reconstruct : also decode each clip without a genre change (for the reconstruction error)

    Returns
    -------
    ClipTransfers; every output has its source's sample count at ``tr.audio.sample_rate``.
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    if not methods:
        raise ValueError(f"methods: give at least one of {METHODS}")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {METHODS}")
    records = list(records)
    if not records:
        raise ValueError("records: no clips to transfer")
    tr.genre_index(target_genre)
    for r in records:
        tr.genre_index(r.genre)
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds}")
    sr = tr.audio.sample_rate
    load = clip_reader(records, sr, cache, max_seconds)
    sources = [load(r) for r in records]
    outputs = {m: [tr.transfer_mono(a, r.genre, target_genre, m, strength)
                   for a, r in zip(tqdm(sources, desc=f"{m} -> {target_genre}", leave=False), records)]
               for m in methods}
    recs = None
    if reconstruct:     # conditional decoding at strength 0 is the plain reconstruction
        recs = [tr.transfer_mono(a, r.genre, r.genre, "conditional", 0.0) for a, r in zip(sources, records)]
    return ClipTransfers(records, target_genre, float(strength), sr, tr.audio, sources, outputs, recs,
                         max_seconds, {"family": tr.model.family, "checkpoint_epoch": tr.state.get("epoch")})


# --------------------------------------------------------------------------- command line
def list_inputs(path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise InputError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {path}")
        return files
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path} (expected an audio file or a folder of them)")
    return [path]


def genre_name(text: str) -> str:
    """argparse type: one of GENRES."""
    if text not in GENRES:
        raise argparse.ArgumentTypeError(f"unknown genre {text!r}; choose one of: {', '.join(GENRES)}")
    return text


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Turn music of one genre into another with a trained VAE.",
                       epilog="With a folder as --input every audio file in it is transferred; a file that "
                              "cannot be read is skipped and named, with its reason, in a summary at the end, "
                              "and the exit status is 1 when any file failed (0 when all were written).")
    p.add_argument("--checkpoint", required=True, help="best.pt or latest.pt written by trainer.py")
    p.add_argument("--input", required=True, help="an audio file or a folder of them")
    p.add_argument("--target", required=True, type=genre_name, help=f"target genre: {', '.join(GENRES)}")
    p.add_argument("--source", type=genre_name, help="source genre (default: predicted by the judge)")
    p.add_argument("--method", choices=METHODS, default="conditional")
    p.add_argument("--strength", type=finite_float, default=1.0,
                   help=f"0: reconstruction, 1: full transfer; at most {MAX_STRENGTH:g} (negative only with shift)")
    p.add_argument("--judge", help="judge file (default: judge.npz beside the checkpoint)")
    p.add_argument("--out", default="audio_results")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--report", action="store_true",
                   help="also write each input's reconstruction and <out>/index.html, a listening page")
    return p


def check_strength(method: str, strength: float) -> float:
    """``strength`` if it is finite and sensible for ``method``, else an InputError."""
    if not math.isfinite(strength) or abs(strength) > MAX_STRENGTH:
        raise InputError(f"strength {strength!r}: expected a finite number in [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]")
    if strength < 0 and method != "shift":
        raise InputError(f"strength {strength:g}: a negative strength means something only for the shift "
                         f"(it moves away from the target genre); conditional decoding takes 0 to {MAX_STRENGTH:g}")
    return strength


def main(argv=None) -> list[Path]:
    p = build_parser()
    args = p.parse_args(argv)
    check_strength(args.method, args.strength)
    inputs = list_inputs(args.input)
    if args.judge and not Path(args.judge).is_file():
        raise FileNotFoundError(f"judge file not found: {args.judge}")
    tr = GenreTransfer.from_checkpoint(args.checkpoint, args.device, args.judge)
    written, failed = [], []
    for f in inputs:
        try:
            written.append(tr.transfer_file(f, args.target, args.out, args.source, args.method, args.strength))
            if args.report and args.strength != 0:
                tr.transfer_file(f, args.target, args.out, args.source, args.method, 0.0)    # reconstruction
        except OutputError:                 # the output cannot be written: every other input would fail too
            raise
        except InputError as exc:           # a bad input file: name it, go on with the others
            if len(inputs) == 1:
                raise
            failed.append(f"{f}: {one_line(exc)}")
            print(f"skipped {failed[-1]}", file=sys.stderr)
            continue
        print(f"{f} -> {written[-1]}")
    if args.report and written:
        info = {"family": tr.model.family, "preset": tr.state.get("preset"), "checkpoint": str(args.checkpoint),
                "epoch": tr.state.get("epoch")}
        print(f"listening page: {write_report(args.out, info=info, judge=tr.judge)}")
    if failed:
        raise InputError(f"{len(failed)} of {len(inputs)} inputs failed, {len(written)} written: " + "; ".join(failed))
    return written


if __name__ == "__main__":
    run(main)
