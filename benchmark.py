"""Benchmarks (``make bench``): each figure is a ratio measured in one run, printed and
written to BENCHMARKS.md with the machine it ran on.

    python benchmark.py                      # everything
    python benchmark.py --only vocoder loader
    python benchmark.py --only transfer      # the file rows: 30 s mono / stereo, 7 min Opus
    python benchmark.py --files 200          # a smaller loader benchmark

Sections
--------
synthetic  synthetic GTZAN clips (30 s) rendered per second
vocoder    our mel -> audio against librosa.feature.inverse.mel_to_audio (100 Griffin-Lim
           iterations), same 10 s mels: time and spectral convergence
loader     the decode-once memory-mapped cache against the seed's way (librosa.load with
           offset and duration for each of the 5 segments of every file), on GTZAN's
           1,000 file names: files per second, cold and warm cache
decode     transfer of a 30 s clip on 2 CPU threads, both families: real-time factor
transfer   files end to end on 2 CPU threads (mel family): a 30 s mono and a 30 s stereo
           WAV, and a 7-minute 48 kHz stereo Ogg/Opus file: seconds and real-time factor
training   a training step of both families (clips/s, peak memory), ours against the
           seed-style loop (mel on the CPU, float32, gc + empty_cache every 5 batches)
"""
from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audio_io import DEFAULT_GL_ITER
from cli import ArgumentParser, run
from prepare_data import AudioConfig
from SlicingDataLoading import GTZAN_SR

ROOT = Path(__file__).resolve().parent


def machine() -> str:
    """The machine in words, with its load when the run started (other jobs slow a CPU row,
    and two threads that wait for each other on a busy machine slow it most)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = f", load average {os.getloadavg()[0]:.1f} at the start" if hasattr(os, "getloadavg") else ""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, "
            f"torch {torch.__version__}{load}")


def bench_synthetic(work: Path, n: int = 20) -> dict:
    import synthetic_gtzan
    t = time.perf_counter()
    synthetic_gtzan.generate(work / "synth", n_per_genre=max(1, n // 10), duration=30.0, workers=2)
    dt = time.perf_counter() - t
    return {"clips": n, "seconds": dt, "clips_per_s": n / dt}


def benchmark_vocoder(audio, cfg: AudioConfig, repeats: int = 3, n_iter: int = DEFAULT_GL_ITER,
                      librosa_iter: int = 100, device: str = "cpu") -> dict:
    """Time and score our vocoder against the seed's librosa ``mel_to_audio`` on one clip.

    Both vocode the same mel (the clip's normalised log-mel, natural frame count); librosa
    runs ``mel_to_audio``'s two steps (``mel_to_stft`` + ``griffinlim``) with a seeded initial
    phase, so its score repeats. Timings are interleaved, the minimum over ``repeats`` is
    kept, after one short warm-up each.

    Parameters
    ----------
    audio : ndarray float32 [T] at cfg.sample_rate
    cfg : AudioConfig
    repeats : timed runs of each
    n_iter : our Griffin-Lim iterations; librosa_iter : librosa's (the seed used 100)
    device : where ours runs (librosa is CPU-only; "cpu" compares like with like)

    Returns
    -------
    dict librosa_s, ours_s, speedup, librosa_sc, ours_sc (spectral convergence against
    ``audio``), plus frames and device.
    """
    import librosa

    from audio_io import high_quality_mel_to_audio
    from evaluation import spectral_convergence
    from prepare_data import enhanced_audio_to_mel, norm_to_db

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    mel = enhanced_audio_to_mel(torch.from_numpy(audio), cfg, fit=False)[0, 0].to(device)  # (M, F)
    power = torch.pow(10.0, norm_to_db(mel, cfg) / 10.0).cpu().numpy()  # the seed's dB -> power
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def run_librosa(m, length):                                       # = mel_to_audio, seeded phase
        stft = librosa.feature.inverse.mel_to_stft(m, sr=cfg.sample_rate, n_fft=cfg.n_fft, power=2.0,
                                                   fmin=cfg.fmin, fmax=cfg.f_max)
        return librosa.griffinlim(stft, n_iter=librosa_iter, hop_length=cfg.hop_length, n_fft=cfg.n_fft,
                                  center=True, pad_mode="constant", length=length, random_state=0)

    def run_ours(m, length):
        out = high_quality_mel_to_audio(m, cfg, n_iter=n_iter, length=length)
        sync()
        return out

    run_librosa(power[:, :16], None)                                  # warm-up (filters, caches)
    run_ours(mel[:, :16], None)
    times = {"librosa": [], "ours": []}
    outputs = {}
    for _ in range(max(1, repeats)):
        for name, fn, m in (("librosa", run_librosa, power), ("ours", run_ours, mel)):
            start = time.perf_counter()
            outputs[name] = fn(m, len(audio))
            times[name].append(time.perf_counter() - start)
    ours = outputs["ours"].cpu().numpy()
    result = {"librosa_s": min(times["librosa"]), "ours_s": min(times["ours"])}
    result["speedup"] = result["librosa_s"] / result["ours_s"]
    result["librosa_sc"] = spectral_convergence(audio, outputs["librosa"], cfg.n_fft, cfg.hop_length)
    result["ours_sc"] = spectral_convergence(audio, ours, cfg.n_fft, cfg.hop_length)
    result.update(frames=int(mel.shape[-1]), device=str(device))
    return result


def bench_vocoder(n_clips: int = 3) -> list[dict]:
    import synthetic_gtzan
    cfg = AudioConfig(n_frames=None)
    rows = []
    for i, genre in enumerate(["jazz", "rock", "classical", "hiphop", "reggae"][:n_clips]):
        audio = synthetic_gtzan.render_clip(i, genre, duration=10.0)
        rows.append({"clip": f"content {i}, {genre}, 10 s", **benchmark_vocoder(audio, cfg, repeats=2)})
    return rows


def _gtzan_names() -> list[str]:
    from torchaudio.datasets.gtzan import filtered_test, filtered_train, filtered_valid
    return sorted(set(filtered_train) | set(filtered_valid) | set(filtered_test))


def bench_loader(work: Path, n_files: int = 1000) -> dict:
    """Files per second: the seed's per-segment librosa.load against our cache, cold and warm."""
    import librosa
    import synthetic_gtzan
    from SlicingDataLoading import DataLoad
    names = _gtzan_names()[:n_files]
    root = work / "gtzan"
    # 10 distinct 30 s clips, copied under GTZAN's file names (rendering 1,000 would take minutes).
    srcs = [synthetic_gtzan.render_clip(i, "rock", duration=30.0) for i in range(10)]
    for i, name in enumerate(names):
        genre = name.split(".")[0]
        (root / "genres_original" / genre).mkdir(parents=True, exist_ok=True)
        sf.write(root / "genres_original" / genre / f"{name}.wav", srcs[i % 10], GTZAN_SR, subtype="PCM_16")
    files = sorted((root / "genres_original").rglob("*.wav"))
    starts = [2.5 + 5 * k for k in range(5)]

    t = time.perf_counter()                                  # the seed's way (warm page cache)
    for f in files:
        for s in starts:
            librosa.load(f, sr=GTZAN_SR, offset=s, duration=5.0)
    seed_s = time.perf_counter() - t

    def ours() -> float:
        t = time.perf_counter()
        audio, labels = DataLoad(root, split_mode="random").fetch_dataset(sr=GTZAN_SR, duration=5.0)
        assert audio.shape == (5 * len(files), 110250)
        return time.perf_counter() - t

    cold = ours()
    warm = min(ours(), ours())
    n = len(files)
    return {"files": n, "seed_files_per_s": n / seed_s, "cold_files_per_s": n / cold,
            "warm_files_per_s": n / warm, "warm_speedup": seed_s / warm, "cold_speedup": seed_s / cold}


def _train_one(family: str, preset: str, style: str, device: str, steps: int, batch: int | None) -> dict:
    """Clips per second and peak memory of ``steps`` training steps of one family and preset.

    ``style="ours"``: the batch goes to the device through pinned memory (non-blocking), the
    model computes its input (the log-mel) on the device, bf16 autocast and channels-last
    2-D convolutions on a GPU. ``style="seed"``: the seed's loop: the mel is computed on the
    CPU and copied over, float32, and ``gc.collect()`` + ``empty_cache()`` every 5 batches.
    """
    import copy
    import gc
    import resource
    import trainer
    audio, model_cfg, train_cfg = trainer.configs(family, preset)
    torch.manual_seed(0)
    model = trainer.build_model(family, model_cfg, audio).to(device)
    ours, cuda = style == "ours", device == "cuda"
    if ours and cuda and family == "mel":
        model = model.to(memory_format=torch.channels_last)
    loss_fn = trainer.get_family(family).loss(train_cfg, audio).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b = batch or train_cfg.batch_size
    wave = torch.randn(b, audio.segment_samples) * 0.1
    wave = wave.pin_memory() if cuda and ours else wave
    genre = torch.randint(0, model_cfg.n_genres, (b,))
    amp = dict(device_type=device, dtype=torch.bfloat16, enabled=cuda and ours)

    cpu_model = model if device == "cpu" else copy.deepcopy(model).cpu()

    def step(i: int) -> None:
        if ours:
            x = model.prepare(wave.to(device, non_blocking=True))
        else:
            x = cpu_model.prepare(wave).to(device)          # the input computed on the CPU
            if i % 5 == 4:
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()
        g = genre.to(device)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(**amp):
            terms = loss_fn(model(x, g), g, 0.01)
        terms["total"].backward()
        opt.step()

    step(0)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / steps
    peak = (torch.cuda.max_memory_allocated() if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 1e9
    return {"family": family, "preset": preset, "style": style, "device": device, "batch": b,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "step_s": dt, "clips_per_s": b / dt, "peak_mem_gb": peak}


def bench_training(presets=("demo", "full"), families=("mel", "wave"), steps: int | None = None) -> list[dict]:
    """Our training step against the seed-style loop, each configuration in its own process
    (so the CPU peak memory, the process's maximum resident set, is its own)."""
    import json
    import subprocess
    import sys
    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = steps or (20 if device == "cuda" else 5)
    rows = []
    for family in families:
        for preset in presets:
            if device == "cpu" and (family, preset) == ("wave", "full"):
                print("training: wave/full skipped on a CPU (a 5 s audio-rate WaveNet step takes minutes)")
                continue
            # On a CPU the full presets run at batch 4 so that the section finishes in minutes.
            batch = 4 if device == "cpu" and preset == "full" else None
            for style in ("seed", "ours"):
                code = (f"import benchmark, json; print('RESULT', json.dumps(benchmark._train_one("
                        f"{family!r}, {preset!r}, {style!r}, {device!r}, {steps}, {batch!r})))")
                out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
                line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
                if out.returncode or not line:
                    raise RuntimeError(f"training benchmark {family}/{preset}/{style} failed:\n{out.stderr[-2000:]}")
                rows.append(json.loads(line[0][7:]))
                print("training:", rows[-1])
    return rows


SECTIONS = ("synthetic", "vocoder", "loader", "decode", "transfer", "training")       # BENCHMARKS.md order


def _table(columns: list[str], rows: list[list]) -> list[str]:
    """A Markdown table: header, separator, one line per row."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
           ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def render_sections(results: dict) -> dict:
    """Markdown per benchmark section that ran (name -> text)."""
    out, who = {}, f"_{results['machine']}; {results['date']}._"
    if "synthetic" in results:
        s = results["synthetic"]
        out["synthetic"] = "\n".join(["## Synthetic GTZAN", "", who, "", f"{s['clips']} clips of 30 s in "
                                      f"{s['seconds']:.1f} s: **{s['clips_per_s']:.2f} clips/s** (2 worker processes).", ""])
    if "vocoder" in results:
        cfg = AudioConfig()
        lines = ["## Vocoder: ours vs librosa.feature.inverse.mel_to_audio (100 Griffin-Lim iterations)", "", who, "",
                 f"Same 10 s log-mel ({cfg.sample_rate} Hz, n_fft {cfg.n_fft}, hop {cfg.hop_length}, "
                 f"{cfg.n_mels} mels); spectral convergence of the "
                 "vocoded audio against the original (lower is better).", ""]
        lines += _table(["clip", "librosa s", "ours s", "speed-up", "librosa SC", "ours SC"],
                        [[r["clip"], f"{r['librosa_s']:.2f}", f"{r['ours_s']:.2f}", f"**{r['speedup']:.1f}x**",
                          f"{r['librosa_sc']:.3f}", f"{r['ours_sc']:.3f}"] for r in results["vocoder"]])
        out["vocoder"] = "\n".join(lines + [""])
    if "loader" in results:
        r = results["loader"]
        out["loader"] = "\n".join([
            "## Loader: decode-once cache vs the seed's per-segment librosa.load", "", who, "",
            f"{r['files']} WAVs of 30 s under GTZAN's file names, 5 segments of 5 s each.", "",
            *_table(["method", "files/s", "vs seed"], [
                ["seed: librosa.load(offset, duration) per segment", f"{r['seed_files_per_s']:.0f}", "1.0x"],
                ["ours, cold cache (decode + write)", f"{r['cold_files_per_s']:.0f}", f"{r['cold_speedup']:.1f}x"],
                ["ours, warm cache (memory-mapped)", f"{r['warm_files_per_s']:.0f}", f"**{r['warm_speedup']:.1f}x**"]]),
            ""])
    if "decode" in results:
        lines = ["## Decoding a 30 s clip", "", who, "",
                 "A 30 s WAV end to end on 2 CPU threads: read and resample, encode, decode (the mel family "
                 "includes the vocoder), write. Real-time factor = seconds / 30 (below 1 is faster than real "
                 "time). The waveform family's preset is the oscillator design; its audio-rate WaveNet design "
                 "(`SAMPLE_DESIGN`) is the preset's design before it.", ""]
        lines += _table(["family", "design", "preset", "seconds", "of which the model", "real-time factor"],
                        [[r["family"], r.get("design", "preset"), r["preset"], f"{r['seconds']:.2f}",
                          f"{r.get('model_s', r['seconds']):.2f}", f"**{r['rtf']:.3f}**"]
                         for r in results["decode"]])
        out["decode"] = "\n".join(lines + [""])
    if "transfer" in results:
        lines = ["## Transferring files end to end", "", who, "",
                 "`GenreTransfer` on 2 CPU threads, mel family, demo preset (random weights: speed does not depend "
                 "on them): read the file, transfer every channel together (encode and decode "
                 f"{results['transfer'][0]['window_batch']} windows at a time, the vocoder once, on the channels' mid, "
                 "in pieces along time; each channel then takes its own level in every mel band), write the WAV (the command line's before/after figure not included). "
                 "Synthetic GTZAN audio; the long file repeats 30 s clips, a different one on each channel. "
                 "Best of the repeats; real-time factor = seconds / duration.", ""]
        lines += _table(["file", "duration", "repeats", "read s", "transfer s", "write s", "seconds",
                         "real-time factor"],
                        [[r["file"], f"{r['duration_s']:.0f} s", r["repeats"], f"{r['read_s']:.2f}",
                          f"{r['transfer_s']:.2f}", f"{r['write_s']:.2f}", f"{r['seconds']:.2f}", f"**{r['rtf']:.3f}**"]
                         for r in results["transfer"]])
        out["transfer"] = "\n".join(lines + [""])
    if "training" in results:
        lines = ["## Training step: ours vs the seed-style loop", "", who, "",
                 "Seed-style: the model input computed on the CPU each batch, float32, `gc.collect()` and "
                 "`empty_cache()` every 5 batches. Ours: input computed on the device from pinned memory, "
                 "bf16 autocast and channels-last convolutions on a GPU. Peak memory: GPU allocated on a GPU, "
                 "the process's peak resident set on a CPU.", ""]
        rows = results["training"]
        seed = {(x["family"], x["preset"]): x for x in rows if x["style"] == "seed"}
        lines += _table(["family", "preset", "device", "batch", "params (M)", "seed clips/s", "ours clips/s",
                         "speed-up", "seed peak GB", "ours peak GB"],
                        [[r["family"], r["preset"], r["device"], r["batch"], f"{r['params_m']:.1f}",
                          f"{s['clips_per_s']:.1f}", f"{r['clips_per_s']:.1f}",
                          f"**{r['clips_per_s'] / s['clips_per_s']:.2f}x**", f"{s['peak_mem_gb']:.2f}",
                          f"{r['peak_mem_gb']:.2f}"]
                         for r in rows if r["style"] == "ours" for s in [seed[(r["family"], r["preset"])]]])
        if all(r["device"] == "cpu" for r in rows):
            lines += ["", "On a CPU both loops do the same arithmetic (the mel is computed on the CPU either way, "
                      "and there is no autocast or cache to flush), so the ratios sit near 1; the seed-style "
                      "costs show on a GPU. The waveform `full` preset is skipped on a CPU."]
        out["training"] = "\n".join(lines + [""])
    return out


def merge_markdown(old: str, sections: dict) -> str:
    """Replace the sections that ran inside the existing BENCHMARKS.md; keep the others."""
    import re
    kept = {}
    for m in re.finditer(r"<!-- section:(\w+) -->\n(.*?)<!-- /section -->", old, re.S):
        kept[m.group(1)] = m.group(2)
    kept.update({k: v + "\n" for k, v in sections.items()})
    extra = old.split("<!-- extra -->", 1)[1] if "<!-- extra -->" in old else ""
    lines = ["# Benchmarks", "", "Written by `make bench` (`python benchmark.py`); `--only SECTION` reruns one "
             "section and keeps the others. Each ratio compares two methods measured in the same run on the "
             "machine named under its heading.", ""]
    for name in SECTIONS:
        if name in kept:
            lines += [f"<!-- section:{name} -->", kept[name].rstrip("\n"), "<!-- /section -->", ""]
    return "\n".join(lines) + "<!-- extra -->" + (extra or "\n")


def bench_decode(families=("mel", "wave"), preset: str = "demo", seconds: float = 30.0) -> list[dict]:
    """A 30 s clip end to end on 2 CPU threads: read the file, transfer it (encode, decode,
    and for mels the vocoder), write the result; randomly initialised weights (speed does
    not depend on them). The waveform family also runs its audio-rate WaveNet design
    (``SAMPLE_DESIGN``), the design the preset had before the oscillator decoder."""
    import synthetic_gtzan
    import trainer
    from audio_io import read_audio_file, resample, save_wav
    from audio_resnet_encoder_wavenet_decoder import SAMPLE_DESIGN
    from SlicingDataLoading import GENRES
    from transfer import GenreTransfer
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench_decode_"))
    try:
        source = save_wav(work / "blues.wav", synthetic_gtzan.render_clip(0, "blues", duration=seconds), GTZAN_SR)
        designs = [(f, "preset", {}) for f in families]
        if "wave" in families:
            designs.append(("wave", "audio-rate WaveNet", SAMPLE_DESIGN.get(preset, {})))
        for family, design, changes in designs:
            audio, model_cfg, _ = trainer.configs(family, preset, model=changes)
            torch.manual_seed(0)
            model = trainer.build_model(family, model_cfg, audio).eval()
            tr = GenreTransfer(model, {"genres": GENRES, "genre_means": torch.zeros(0)})
            warm = resample(synthetic_gtzan.render_clip(1, "blues", duration=3.0), GTZAN_SR, audio.sample_rate)
            tr.transfer_mono(warm, "blues", "reggae")                                  # warm-up
            t = time.perf_counter()
            clip, sr = read_audio_file(source)
            clip = resample(clip.mean(0), sr, audio.sample_rate)
            t_read = time.perf_counter()
            out = tr.transfer_mono(clip, "blues", "reggae")
            t_model = time.perf_counter()
            save_wav(work / f"{family}_{len(rows)}.wav", out, audio.sample_rate)
            dt = time.perf_counter() - t
            assert len(out) == len(clip)
            rows.append({"family": family, "design": design, "preset": preset, "seconds": dt, "rtf": dt / seconds,
                         "read_s": t_read - t, "model_s": t_model - t_read})
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _long_file(path: Path, minutes: float, sr: int = 48000) -> Path:
    """A stereo Ogg/Opus file of ``minutes`` at ``sr``: 30 s synthetic clips repeated, another
    content on each channel (rendering minutes of new music would take longer than the run)."""
    import synthetic_gtzan
    from audio_io import resample
    clips = [synthetic_gtzan.render_clip(i, "blues", duration=30.0) for i in range(2)]
    n = int(round(minutes * 60 * GTZAN_SR))
    stereo = np.stack([np.tile(c, -(-n // len(c)))[:n] for c in clips])                 # (2, T)
    sf.write(path, resample(stereo, GTZAN_SR, sr).T, sr, format="OGG", subtype="OPUS")
    return path


def bench_transfer(preset: str = "demo", seconds: float = 30.0, long_minutes: float = 7.0,
                   repeats: int = 3, long_repeats: int = 2) -> list[dict]:
    """Files end to end on 2 CPU threads, mel family: read, transfer, write.

    Rows: a ``seconds`` mono WAV and a stereo one at 22050 Hz, and a ``long_minutes`` stereo
    Ogg/Opus file at 48 kHz. Each row is timed ``repeats`` times (``long_repeats`` for the
    long file) after a short warm-up; the fastest run is kept.

    Returns
    -------
    [dict] file, duration_s, repeats, read_s, transfer_s, write_s (of the fastest run),
    seconds, rtf (seconds / duration_s), window_batch
    """
    import synthetic_gtzan
    import trainer
    import transfer
    from audio_io import read_audio_file, save_wav
    from SlicingDataLoading import GENRES
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench_transfer_"))
    rows = []
    try:
        left, right = (synthetic_gtzan.render_clip(i, "blues", duration=seconds) for i in range(2))
        files = [(f"{seconds:.0f} s mono WAV, 22050 Hz", save_wav(work / "mono.wav", left, GTZAN_SR), repeats),
                 (f"{seconds:.0f} s stereo WAV, 22050 Hz", save_wav(work / "stereo.wav", np.stack([left, right]),
                                                                  GTZAN_SR), repeats),
                 (f"{long_minutes:g} min stereo Ogg/Opus, 48 kHz", _long_file(work / "long.opus", long_minutes),
                  long_repeats)]
        audio, model_cfg, _ = trainer.configs("mel", preset)
        torch.manual_seed(0)
        model = trainer.build_model("mel", model_cfg, audio).eval()
        tr = transfer.GenreTransfer(model, {"genres": GENRES, "genre_means": torch.zeros(0)})
        tr.transfer_array(left[: 3 * GTZAN_SR], GTZAN_SR, "reggae", "blues", desc=None)     # warm-up
        for name, path, n in files:
            runs = []
            for _ in range(n):
                t0 = time.perf_counter()
                clip, sr = read_audio_file(path)
                t1 = time.perf_counter()
                out, _ = tr.transfer_array(clip, sr, "reggae", "blues", desc=None)
                t2 = time.perf_counter()
                save_wav(work / "out.wav", out, sr)
                t3 = time.perf_counter()
                assert out.shape == clip.shape
                runs.append({"read_s": t1 - t0, "transfer_s": t2 - t1, "write_s": t3 - t2, "seconds": t3 - t0})
            best = min(runs, key=lambda r: r["seconds"])
            duration = clip.shape[-1] / sr
            rows.append({"file": name, "duration_s": duration, "repeats": n, **best, "rtf": best["seconds"] / duration,
                         "window_batch": transfer.WINDOW_BATCH, "all_seconds": [r["seconds"] for r in runs]})
            print("transfer:", rows[-1])
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv=None) -> dict:
    sections = list(SECTIONS)
    p = ArgumentParser(description="Benchmarks; writes BENCHMARKS.md")
    p.add_argument("--only", nargs="*", choices=sections)
    p.add_argument("--files", type=int, default=1000, help="files for the loader benchmark")
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = p.parse_args(argv)
    only = set(args.only or sections)
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    work = Path(tempfile.mkdtemp(prefix="bench_"))
    runs = {"synthetic": lambda: bench_synthetic(work), "vocoder": bench_vocoder,
            "loader": lambda: bench_loader(work, args.files), "decode": bench_decode, "transfer": bench_transfer,
            "training": bench_training}
    try:
        for name in sections:
            if name in only:
                results[name] = runs[name]()
                print(f"{name}:", results[name])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    md = merge_markdown(out.read_text() if out.exists() else "", render_sections(results))
    out.write_text(md)
    print(md)
    return results


if __name__ == "__main__":
    run(main)
