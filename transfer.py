"""Genre transfer for every model family, from Python and from the command line.

    python transfer.py --checkpoint vae_logs/best.pt --input song.wav --target reggae \
        [--source blues] [--method shift|conditional] [--strength 1.0] --out audio_results

Two methods:
- ``shift`` (the seed's attribute vectors): z' = z + alpha * (mean mu of the target genre -
  mean mu of the source genre); the means are stored in the checkpoint (over the training
  split). A conditional decoder is told the source genre, so the shift alone moves the genre.
- ``conditional``: decode z with the target genre; ``strength`` alpha blends the source and
  target genre embeddings ((1 - alpha) e_src + alpha e_tgt), so both methods sweep alike.

Any input the decoders read (WAV, FLAC, OGG; MP3 where libsndfile reads it), any sample
rate, mono or stereo (channels are transferred one by one), any length: the model works
window by window with 50 % overlap and a raised-cosine cross-fade; the mel family
cross-fades in the mel domain and vocodes the whole clip at once. The output has the
input's sample rate, channels and duration.
"""
from __future__ import annotations

import argparse
import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from SlicingDataLoading import GENRES

METHODS = ("shift", "conditional")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".au", ".aiff", ".aif")


# --------------------------------------------------------------------------- audio in / out
def read_audio_file(path) -> tuple[np.ndarray, int]:
    """Decode a file keeping its channels and rate: (audio float32 [C, T], sample rate)."""
    import soundfile as sf
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        audio = data.T
    except Exception:  # noqa: BLE001 - fall back to librosa's decoders (.au, odd MP3s)
        import librosa
        try:
            audio, sr = librosa.load(str(path), sr=None, mono=False)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"cannot read {path} as audio: {exc}") from exc
        audio = np.atleast_2d(audio).astype(np.float32)
    if audio.shape[1] == 0:
        raise ValueError(f"{path} holds no audio samples")
    if not np.isfinite(audio).all():
        raise ValueError(f"{path} contains NaN or infinite samples")
    return audio, int(sr)


def resample(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """[..., T] at sr_from -> [..., T'] at sr_to (torchaudio's windowed sinc)."""
    if sr_from == sr_to:
        return audio.astype(np.float32)
    import torchaudio.functional as AF
    return AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), sr_from, sr_to).numpy()


# --------------------------------------------------------------------------- windows
def window_starts(total: int, size: int, hop: int) -> list[int]:
    """Start indices of windows of ``size`` every ``hop`` covering [0, total)."""
    if total <= size:
        return [0]
    starts = list(range(0, total - size + 1, hop))
    if starts[-1] + size < total:
        starts.append(starts[-1] + hop)
    return starts


def overlap_add(chunks: list[torch.Tensor], starts: list[int], total: int, size: int) -> torch.Tensor:
    """Cross-fade windows [..., size] placed at ``starts`` into [..., total].

    A raised-cosine weight (never exactly 0) is normalised by the sum of weights, so
    overlapping windows blend smoothly and a single window is returned unchanged.
    """
    weight = torch.hann_window(size + 2, periodic=False, device=chunks[0].device)[1:-1]
    shape = chunks[0].shape[:-1]
    length = max(total, starts[-1] + size)
    acc = torch.zeros(*shape, length, device=chunks[0].device)
    norm = torch.zeros(length, device=chunks[0].device)
    for chunk, s in zip(chunks, starts):
        acc[..., s:s + size] += chunk * weight
        norm[s:s + size] += weight
    return (acc / norm.clamp_min(1e-8))[..., :total]


# --------------------------------------------------------------------------- transfer
class GenreTransfer:
    """Transfers audio between genres with a trained VAE of either family.

    Parameters
    ----------
    model : a model from :func:`trainer.load_model` (``prepare``, ``encode``, ``decode``,
        ``genre_embedding``, ``family``)
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
        from trainer import load_model
        model, state = load_model(path, device=device)
        judge = None
        judge_path = Path(judge_path) if judge_path else Path(path).parent / "judge.npz"
        if judge_path.is_file():
            from evaluation import GenreJudge
            judge = GenreJudge.from_file(judge_path)
        return cls(model, state, judge, device)

    # ---- genres
    def genre_index(self, name: str) -> int:
        if name not in self.genres:
            raise ValueError(f"unknown genre {name!r}; choose one of: {', '.join(self.genres)}")
        return self.genres.index(name)

    def predict_genre(self, audio: np.ndarray) -> str:
        """The judge's genre for mono audio [T] at the model's rate."""
        if self.judge is None:
            raise ValueError("no source genre given and no judge available: pass source_genre "
                             "(--source) or a judge file (--judge, written by the demo / evaluation)")
        return self.genres[int(self.judge.predict([audio], self.audio.sample_rate)[0])]

    # ---- latent ops
    def _edit_and_decode(self, z: torch.Tensor, src: int, tgt: int, method: str, strength: float) -> torch.Tensor:
        """Latent windows [W, D, T'] -> decoded windows (mel [W, 1, M, F] or audio [W, T])."""
        n = z.shape[0]
        src_idx = torch.full((n,), src, device=z.device, dtype=torch.long)
        tgt_idx = torch.full((n,), tgt, device=z.device, dtype=torch.long)
        if method == "shift":
            if self.genre_means is None:
                raise ValueError("this checkpoint stores no per-genre latent means; use --method conditional")
            delta = (self.genre_means[tgt] - self.genre_means[src]).to(z.device)    # (D,)
            z = z + strength * delta.view(1, -1, *([1] * (z.dim() - 2)))
            return self.model.decode(z, src_idx)
        if method == "conditional":
            emb = self.model.genre_embedding
            mix = (1.0 - strength) * emb(src_idx) + strength * emb(tgt_idx)
            return self.model.decode(z, genre_emb=mix)
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")

    @torch.no_grad()
    def transfer_mono(self, audio: np.ndarray, source_genre: str, target_genre: str,
                      method: str = "conditional", strength: float = 1.0,
                      return_reconstruction: bool = False):
        """Mono audio [T] at the model's rate -> transferred audio [T] (same length).

        With ``return_reconstruction`` also returns the plain reconstruction (no edit).
        """
        src, tgt = self.genre_index(source_genre), self.genre_index(target_genre)
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=self.device)
        total = wave.shape[-1]
        if self.model.family == "mel":
            out, rec = self._transfer_mel(wave, src, tgt, method, strength, return_reconstruction)
        else:
            out, rec = self._transfer_wave(wave, src, tgt, method, strength, return_reconstruction)
        out = out[:total].float().cpu().numpy()
        if return_reconstruction:
            return out, rec[:total].float().cpu().numpy()
        return out

    def _transfer_mel(self, wave, src, tgt, method, strength, with_rec):
        from audio_io import high_quality_mel_to_audio
        from prepare_data import enhanced_audio_to_mel, fit_frames
        cfg = self.audio
        mel = enhanced_audio_to_mel(wave, cfg, fit=False)[0]                       # (1, M, F_total)
        total = mel.shape[-1]
        size = min(cfg.natural_frames, cfg.frames)
        size -= size % self.model.cfg.time_stride or 0
        starts = window_starts(total, size, max(1, size // 2))
        padded = fit_frames(mel, starts[-1] + size)                                 # silence past the end
        windows = torch.stack([fit_frames(padded[..., s:s + size], cfg.frames) for s in starts])
        _, mu, _ = self.model.encode(windows)                                       # (W, D, T')
        decoded = self._edit_and_decode(mu, src, tgt, method, strength)[..., :size]
        out_mel = overlap_add(list(decoded), starts, total, size)                   # (1, M, F_total)
        length = wave.shape[-1]
        out = high_quality_mel_to_audio(out_mel, cfg, length=length)
        rec = None
        if with_rec:
            idx = torch.full((len(starts),), src, dtype=torch.long, device=mu.device)
            rec_mel = overlap_add(list(self.model.decode(mu, idx)[..., :size]), starts, total, size)
            rec = high_quality_mel_to_audio(rec_mel, cfg, length=length)
        return out, rec

    def _transfer_wave(self, wave, src, tgt, method, strength, with_rec):
        size = self.audio.segment_samples
        size -= size % self.model.cfg.hop_length
        starts = window_starts(wave.shape[-1], size, size // 2)
        padded = torch.nn.functional.pad(wave, (0, max(0, starts[-1] + size - wave.shape[-1])))
        windows = torch.stack([padded[s:s + size] for s in starts])                 # (W, size)
        _, mu, _ = self.model.encode(self.model.prepare(windows))
        out = overlap_add(list(self._edit_and_decode(mu, src, tgt, method, strength)), starts,
                          wave.shape[-1], size)
        rec = None
        if with_rec:
            idx = torch.full((len(starts),), src, dtype=torch.long, device=mu.device)
            rec = overlap_add(list(self.model.decode(mu, idx)), starts, wave.shape[-1], size)
        return out, rec

    @torch.no_grad()
    def encode_clip(self, audio: np.ndarray, partial: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of each window of mono audio [T]: time-averaged (mu, logvar), each [W, D].

        Windows are one training segment each, back to back. ``partial=False`` leaves out a
        last window that would be mostly padding (a clip shorter than one window keeps it).
        """
        def whole(starts: list, size: int, total: int) -> list:
            return starts[:-1] if not partial and len(starts) > 1 and starts[-1] + size > total else starts

        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=self.device)
        if self.model.family == "mel":
            from prepare_data import enhanced_audio_to_mel, fit_frames
            cfg = self.audio
            mel = enhanced_audio_to_mel(wave, cfg, fit=False)[0]
            size = min(cfg.natural_frames, cfg.frames)
            starts = whole(window_starts(mel.shape[-1], size, size), size, mel.shape[-1])
            padded = fit_frames(mel, starts[-1] + size)
            x = torch.stack([fit_frames(padded[..., s:s + size], cfg.frames) for s in starts])
        else:
            size = self.audio.segment_samples - self.audio.segment_samples % self.model.cfg.hop_length
            starts = whole(window_starts(wave.shape[-1], size, size), size, wave.shape[-1])
            padded = torch.nn.functional.pad(wave, (0, max(0, starts[-1] + size - wave.shape[-1])))
            x = self.model.prepare(torch.stack([padded[s:s + size] for s in starts]))
        _, mu, logvar = self.model.encode(x)
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

    def transfer_array(self, audio: np.ndarray, sr: int, target_genre: str, source_genre: str | None = None,
                       method: str = "conditional", strength: float = 1.0) -> tuple[np.ndarray, str]:
        """Any-rate audio [T] or [C, T] -> (transferred audio, same shape and rate; source genre)."""
        audio = np.asarray(audio, dtype=np.float32)
        mono_in = audio.ndim == 1
        chans = audio[None] if mono_in else audio
        at_model = resample(chans, sr, self.audio.sample_rate)
        if source_genre is None:
            source_genre = self.predict_genre(at_model.mean(0))
        outs = [self.transfer_mono(ch, source_genre, target_genre, method, strength) for ch in at_model]
        out = resample(np.stack(outs), self.audio.sample_rate, sr)
        out = _fit_length(out, chans.shape[-1])
        return (out[0] if mono_in else out), source_genre

    def transfer_file(self, path, target_genre: str, out_dir, source_genre: str | None = None,
                      method: str = "conditional", strength: float = 1.0, figure: bool = True) -> Path:
        """Transfer one file; write the WAV, a before/after figure, and a manifest row."""
        from audio_io import save_wav
        self.genre_index(target_genre)
        if source_genre is not None:
            self.genre_index(source_genre)
        audio, sr = read_audio_file(path)
        out, source_genre = self.transfer_array(audio, sr, target_genre, source_genre, method, strength)
        out_dir = Path(out_dir)
        stem = f"{Path(path).stem}__{source_genre}_to_{target_genre}__{method}_{strength:g}"
        wav_path = save_wav(out_dir / f"{stem}.wav", out, sr)                     # [C, T]
        if figure:
            self.before_after_figure(audio.mean(0), out.mean(0) if out.ndim == 2 else out, sr,
                                     out_dir / f"{stem}.png", f"{Path(path).name}: {source_genre} -> "
                                     f"{target_genre} ({method}, strength {strength:g})")
        append_manifest(out_dir / "manifest.csv", {
            "source_file": str(path), "source_genre": source_genre, "target_genre": target_genre,
            "method": method, "strength": strength, "output_file": wav_path.name})
        return wav_path

    def before_after_figure(self, before: np.ndarray, after: np.ndarray, sr: int, png, title: str) -> Path:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from audio_io import plot_mel
        from prepare_data import mel_db
        fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        for ax, audio, name in zip(axes, (before, after), ("before", "after")):
            at = resample(audio, sr, self.audio.sample_rate)
            plot_mel(ax, mel_db(torch.from_numpy(at), self.audio).numpy(), self.audio, name)
        fig.suptitle(title)
        fig.tight_layout()
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=90)
        plt.close(fig)
        return Path(png)


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])


MANIFEST_FIELDS = ["source_file", "source_genre", "target_genre", "method", "strength", "output_file"]


def append_manifest(path, row: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def list_inputs(path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {path}")
        return files
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    return [path]


def main(argv=None) -> list[Path]:
    p = argparse.ArgumentParser(description="Turn music of one genre into another with a trained VAE.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="an audio file or a folder of them")
    p.add_argument("--target", required=True, help=f"target genre: {', '.join(GENRES)}")
    p.add_argument("--source", help="source genre (default: predicted by the judge)")
    p.add_argument("--method", choices=METHODS, default="conditional")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--judge", help="judge file (default: judge.npz beside the checkpoint)")
    p.add_argument("--out", default="audio_results")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--report", action="store_true",
                   help="also write each input's reconstruction and <out>/index.html, a listening page")
    args = p.parse_args(argv)
    for g in filter(None, (args.target, args.source)):
        if g not in GENRES:
            p.error(f"unknown genre {g!r}; choose one of: {', '.join(GENRES)}")
    tr = GenreTransfer.from_checkpoint(args.checkpoint, args.device, args.judge)
    written = []
    for f in list_inputs(args.input):
        written.append(tr.transfer_file(f, args.target, args.out, args.source, args.method, args.strength))
        print(f"{f} -> {written[-1]}")
        if args.report and args.strength != 0:
            tr.transfer_file(f, args.target, args.out, args.source, args.method, 0.0)    # reconstruction
    if args.report:
        from listening_page import write_report
        info = {"family": tr.model.family, "preset": tr.state.get("preset"), "checkpoint": str(args.checkpoint),
                "epoch": tr.state.get("epoch")}
        print(f"listening page: {write_report(args.out, info=info, judge=tr.judge)}")
    return written


# --------------------------------------------------------------------------- evaluation of a model
def clip_reader(records, sr: int, cache=None, max_seconds: float | None = None):
    """A function FileRecord -> mono float32 clip at ``sr`` (its first ``max_seconds``),
    read through ``cache`` (default: the cache of the records' data folder)."""
    from SlicingDataLoading import AudioCache, _roots
    if cache is None:
        cache = AudioCache(_roots(records[0].path.parent.parent)[0] / ".cache")
    limit = int(max_seconds * sr) if max_seconds else None
    return lambda rec: np.array(cache.load(rec.path, sr)[:limit], dtype=np.float32)


def _other_genres(source_labels, n_genres: int, seed: int) -> list[int]:
    """A random target genre != source for each clip (seeded)."""
    rng = np.random.default_rng(seed)
    return [int((s + rng.integers(1, n_genres)) % n_genres) for s in source_labels]


def evaluate_model(tr: GenreTransfer, records, judge, reference_records=None,
                   strengths: dict | None = None, seed: int = 0, max_seconds: float | None = None,
                   cache=None, model_info: dict | None = None) -> dict:
    """Transfer every clip of ``records`` to a random other genre and score it.

    Parameters
    ----------
    tr : GenreTransfer of the model under test
    records : SlicingDataLoading.FileRecord list (usually the test split)
    judge : a fitted evaluation.GenreJudge
    reference_records : FileRecords of every rendering (synthetic set) for content
        retrieval; None on real data
    strengths : {method: [alpha, ...]}; default shift 0.5 / 1 / 2 / 4 / 6, conditional
        0.5 / 1 / 2 (beyond 1 both extrapolate: on the demo mel VAE the shift trades content
        for genre from about 4 on)
    max_seconds : evaluate the first seconds of each clip only (None: whole clips)

    Returns
    -------
    The metrics.json dict (evaluation.build_metrics), with per-clip targets under
    ``model["targets"]``.
    """
    import evaluation as ev

    strengths = strengths or {"shift": [0.5, 1.0, 2.0, 4.0, 6.0], "conditional": [0.5, 1.0, 2.0]}
    sr = tr.audio.sample_rate
    load = clip_reader(records, sr, cache, max_seconds)
    sources = [load(r) for r in tqdm(records, desc="loading clips", leave=False)]
    src_labels = [r.label for r in records]
    tgt_labels = _other_genres(src_labels, len(tr.genres), seed)
    content_ids = [r.content_id for r in records] if all(r.content_id is not None for r in records) else None
    judge_sr = judge.sr

    def to_judge(x):
        return resample(x, sr, judge_sr)

    reference, pool = None, None
    if reference_records is not None and content_ids is not None:
        pool = {(r.content_id, r.label): to_judge(load(r)) for r in reference_records}
        reference = ev.ChromaReference.from_audio(pool, judge_sr)

    recon_pairs, mus, logvars = [], [], []
    for audio, s in zip(tqdm(sources, desc="reconstruction", leave=False), src_labels):
        # Conditional decoding at strength 0 is the plain reconstruction: one decode, one vocode.
        recon_pairs.append((audio, tr.transfer_mono(audio, tr.genres[s], tr.genres[s], "conditional", 0.0)))
        mu, logvar = tr.encode_clip(audio)
        mus.append(mu)
        logvars.append(logvar)
    judged_sources = [to_judge(a) for a in sources]
    transfer = {}
    for method, alphas in strengths.items():
        transfer[method] = []
        for alpha in alphas:
            outs = [tr.transfer_mono(a, tr.genres[s], tr.genres[t], method, alpha)
                    for a, s, t in zip(tqdm(sources, desc=f"{method} {alpha:g}", leave=False), src_labels, tgt_labels)]
            scores = ev.evaluate_transfer(judge, judged_sources, [to_judge(o) for o in outs],
                                          src_labels, tgt_labels, judge_sr, content_ids, reference)
            transfer[method].append({"strength": alpha, **scores})
    baselines = ev.baseline_metrics(judge, judged_sources, src_labels, tgt_labels, judge_sr,
                                    content_ids, reference, pool=pool, seed=seed)
    mu = np.concatenate(mus)
    logvar = np.concatenate(logvars)
    win_labels = np.concatenate([[s] * len(m) for s, m in zip(src_labels, mus)])
    info = {"family": tr.model.family, "checkpoint_epoch": tr.state.get("epoch"),
            "clips": len(records), "targets": [tr.genres[t] for t in tgt_labels], **(model_info or {})}
    latent = {**ev.latent_diagnostics(mu, logvar, win_labels), **tr.decoder_use(sources, src_labels)}
    return ev.build_metrics(info, judge, transfer, baselines,
                            ev.mean_reconstruction(recon_pairs, tr.audio, trim=True), latent)


# --------------------------------------------------------------------------- a few clips (notebooks)
def newest_checkpoint(root="vae_logs", name: str = "best.pt") -> Path:
    """The most recently written checkpoint called ``name`` anywhere under ``root``.

    Parameters
    ----------
    root : folder searched recursively (the trainer's ``--out`` folders live under it)
    name : checkpoint file name, ``best.pt`` or ``latest.pt``

    Returns
    -------
    Path of the newest match (by modification time)

    Raises
    ------
    FileNotFoundError : ``root`` is missing or holds no ``name``
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {root} (train a model first with "
                                f"audio_model_training.ipynb or trainer.py, or give the checkpoint path)")
    found = [p for p in root.rglob(name) if p.is_file()]
    if not found:
        raise FileNotFoundError(f"no {name} under {root} (train a model first with "
                                f"audio_model_training.ipynb or trainer.py, or give the checkpoint path)")
    return max(found, key=lambda p: p.stat().st_mtime_ns)


def pick_clips(records, genre: str, n: int = 5) -> list:
    """``n`` clips of ``genre``, spread evenly over the (sorted) records of that genre.

    Parameters
    ----------
    records : SlicingDataLoading.FileRecord list, e.g. ``DataLoad(data).splits()["test"]``
    genre : a name from GENRES
    n : number of clips (>= 1)

    Returns
    -------
    list of ``n`` distinct FileRecords, in the records' order

    Raises
    ------
    ValueError : unknown genre, n < 1, or fewer than ``n`` clips of the genre
    """
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; choose one of: {', '.join(GENRES)}")
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    pool = [r for r in records if r.genre == genre]
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} clip(s) of {genre!r} among the {len(records)} records given, "
                         f"{n} asked for (use another split, a larger data set or a smaller n)")
    idx = np.linspace(0, len(pool) - 1, int(n)).round().astype(int)     # step >= 1: distinct
    return [pool[i] for i in idx]


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


def transfer_clips(tr: GenreTransfer, records, target_genre: str, methods=("conditional",),
                   strength: float = 1.0, cache=None, max_seconds: float | None = None,
                   reconstruct: bool = True) -> ClipTransfers:
    """Transfer a few dataset clips to ``target_genre`` with each method.

    Parameters
    ----------
    tr : GenreTransfer of the model
    records : FileRecords (e.g. from :func:`pick_clips`); each clip's source genre is its record's
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


def score_clips(clips: ClipTransfers, judge, reference_records=None, cache=None) -> dict:
    """Score :func:`transfer_clips` output with the project's yardstick (evaluation.py).

    Parameters
    ----------
    clips : ClipTransfers
    judge : a fitted evaluation.GenreJudge
    reference_records : FileRecords of every rendering (synthetic set: all splits) for content
        retrieval; ignored (no retrieval) when the clips or these records carry no content ids
    cache : AudioCache to read the reference clips from (default: the data folder's)

    The judge and the chroma measures see the clips resampled to the judge's rate (as in
    :func:`evaluate_model`); the reconstruction error is measured at the model's rate.

    Returns
    -------
    dict shaped like metrics.json (:func:`evaluation.summary_table` prints it): "model",
    "judge", "transfer" {method: [{"strength", "success", "target_prob",
    "content_chroma_corr", "content_retrieval", ...}]}, "baselines" {"identity"},
    "reconstruction" (or None), "clips" (names and target).
    """
    import evaluation as ev
    if getattr(judge, "sr", None) is None:
        raise ValueError("judge is not fitted: fit it (demo.train_judge) or load it (GenreJudge.from_file)")
    sr = judge.sr
    sources = [resample(a, clips.sr, sr) for a in clips.sources]
    targets = [clips.target_genre] * len(sources)
    content_ids = [r.content_id for r in clips.records]
    reference = None
    refs = [r for r in (reference_records or []) if r.genre == clips.target_genre and r.content_id is not None]
    if refs and all(c is not None for c in content_ids):
        load = clip_reader(refs, sr, cache, clips.max_seconds)
        reference = ev.ChromaReference.from_audio({(r.content_id, r.genre): load(r) for r in refs}, sr)
    else:
        content_ids = None
    common = dict(judge=judge, sources=sources, source_genres=clips.source_genres,
                  target_genres=targets, sr=sr, content_ids=content_ids, reference=reference)
    transfer = {m: [{"strength": clips.strength,
                     **ev.evaluate_transfer(outputs=[resample(o, clips.sr, sr) for o in outs], **common)}]
                for m, outs in clips.outputs.items()}
    recon = None
    if clips.reconstructions is not None:
        recon = ev.mean_reconstruction(zip(clips.sources, clips.reconstructions), clips.audio, trim=True)
    return {"model": {"name": f"{clips.info.get('family', '?')} VAE", **clips.info},
            "judge": judge.info(), "transfer": transfer,
            "baselines": {"identity": ev.evaluate_transfer(outputs=sources, **common)},
            "reconstruction": recon,
            "clips": {"files": [r.name for r in clips.records], "target_genre": clips.target_genre}}


def clips_figure(clips: ClipTransfers, png) -> Path:
    """One grid of log-mels: a row per clip, the original then each method's transfer.

    Parameters
    ----------
    clips : ClipTransfers
    png : output path (parent folders are created)

    Returns
    -------
    Path of the PNG
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from audio_io import plot_mel
    from prepare_data import mel_db
    methods = list(clips.outputs)
    cols, rows = 1 + len(methods), len(clips.sources)
    fig = Figure(figsize=(4.2 * cols, 2.3 * rows + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharex="row")
    for i, (rec, src) in enumerate(zip(clips.records, clips.sources)):
        panels = [(src, f"{rec.name} ({rec.genre})")]
        panels += [(clips.outputs[m][i], f"{m} -> {clips.target_genre}") for m in methods]
        for j, (audio, title) in enumerate(panels):
            db = mel_db(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), clips.audio)
            plot_mel(axes[i, j], db.numpy(), clips.audio, title, kind="db", colorbar=j == cols - 1)
            if j:
                axes[i, j].set_ylabel("")
    fig.suptitle(f"original vs transferred (strength {clips.strength:g})")
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    return png


def save_clips(clips: ClipTransfers, out_dir) -> list[Path]:
    """Write every transfer as a WAV under ``out_dir`` and list it in ``out_dir/manifest.csv``.

    File names follow :meth:`GenreTransfer.transfer_file`
    (``<clip>__<source>_to_<target>__<method>_<strength>.wav``); a re-run overwrites its
    WAVs and replaces their manifest rows instead of adding duplicates.

    Returns
    -------
    the WAV paths, method by method, clip by clip
    """
    from audio_io import save_wav
    out_dir = Path(out_dir)
    written, rows = [], []
    for method, outs in clips.outputs.items():
        for rec, audio in zip(clips.records, outs):
            stem = f"{rec.name}__{rec.genre}_to_{clips.target_genre}__{method}_{clips.strength:g}"
            written.append(save_wav(out_dir / f"{stem}.wav", audio, clips.sr))
            rows.append({"source_file": str(rec.path), "source_genre": rec.genre,
                         "target_genre": clips.target_genre, "method": method,
                         "strength": clips.strength, "output_file": written[-1].name})
    manifest = out_dir / "manifest.csv"
    names = {r["output_file"] for r in rows}
    kept = []
    if manifest.exists():
        with open(manifest, newline="") as f:
            kept = [r for r in csv.DictReader(f) if r.get("output_file") not in names]
        manifest.unlink()
    for row in kept + rows:
        append_manifest(manifest, row)
    return written


if __name__ == "__main__":
    main()
