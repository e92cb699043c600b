"""Benchmarks (``make bench``): each figure is a ratio measured in one run, printed and
written to BENCHMARKS.md with the machine it ran on.

    python benchmark.py                      # everything
    python benchmark.py --only vocoder loader
    python benchmark.py --files 200          # a smaller loader benchmark

Sections
--------
synthetic  synthetic GTZAN clips (30 s) rendered per second
vocoder    our mel -> audio against librosa.feature.inverse.mel_to_audio (100 Griffin-Lim
           iterations), same 10 s mels: time and spectral convergence
loader     the decode-once memory-mapped cache against the seed's way (librosa.load with
           offset and duration for each of the 5 segments of every file), on GTZAN's
           1,000 file names: files per second, cold and warm cache
training   one training step of the mel VAE (clips per second), demo and full presets
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from prepare_data import AudioConfig

ROOT = Path(__file__).resolve().parent


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, "
            f"torch {torch.__version__}")


def bench_synthetic(work: Path, n: int = 20) -> dict:
    import synthetic_gtzan
    t = time.perf_counter()
    synthetic_gtzan.generate(work / "synth", n_per_genre=max(1, n // 10), duration=30.0, workers=2)
    dt = time.perf_counter() - t
    return {"clips": n, "seconds": dt, "clips_per_s": n / dt}


def bench_vocoder(n_clips: int = 3) -> list[dict]:
    import synthetic_gtzan
    from audio_io import benchmark_vocoder
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
        sf.write(root / "genres_original" / genre / f"{name}.wav", srcs[i % 10], 22050, subtype="PCM_16")
    files = sorted((root / "genres_original").rglob("*.wav"))
    starts = [2.5 + 5 * k for k in range(5)]

    t = time.perf_counter()                                  # the seed's way (warm page cache)
    for f in files:
        for s in starts:
            librosa.load(f, sr=22050, offset=s, duration=5.0)
    seed_s = time.perf_counter() - t

    def ours() -> float:
        t = time.perf_counter()
        audio, labels = DataLoad(root, split_mode="random").fetch_dataset(sr=22050, duration=5.0)
        assert audio.shape == (5 * len(files), 110250)
        return time.perf_counter() - t

    cold = ours()
    warm = min(ours(), ours())
    n = len(files)
    return {"files": n, "seed_files_per_s": n / seed_s, "cold_files_per_s": n / cold,
            "warm_files_per_s": n / warm, "warm_speedup": seed_s / warm, "cold_speedup": seed_s / cold}


def bench_training(presets=("demo", "full"), steps: int = 3) -> list[dict]:
    import trainer
    from model import MelVAE, mel_config
    from prepare_data import override
    rows = []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for preset in presets:
        audio = AudioConfig.preset(preset)
        model = MelVAE(mel_config(preset, audio), audio).to(device)
        cfg = override(trainer.TrainConfig(), **trainer.TRAIN_PRESETS[preset])
        loss_fn = trainer.EfficientLoss(cfg, audio).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        b = cfg.batch_size
        wave = torch.randn(b, audio.segment_samples, device=device) * 0.1
        genre = torch.randint(0, 10, (b,), device=device)
        amp = dict(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda")

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(**amp):
                terms = loss_fn(model(model.prepare(wave), genre), genre, 0.01)
            terms["total"].backward()
            opt.step()

        step()
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / steps
        rows.append({"preset": preset, "device": device, "batch": b, "step_s": dt, "clips_per_s": b / dt,
                     "peak_mem_gb": torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else None})
    return rows


def render_markdown(results: dict) -> str:
    lines = ["# Benchmarks", "", f"Written by `make bench` (`python benchmark.py`) on: {results['machine']}.",
             f"Date: {time.strftime('%Y-%m-%d')}. Each ratio compares two methods measured in the same run.", ""]
    if "synthetic" in results:
        s = results["synthetic"]
        lines += ["## Synthetic GTZAN", "", f"{s['clips']} clips of 30 s in {s['seconds']:.1f} s: "
                  f"**{s['clips_per_s']:.2f} clips/s** (2 worker processes).", ""]
    if "vocoder" in results:
        lines += ["## Vocoder: ours vs librosa.feature.inverse.mel_to_audio (100 Griffin-Lim iterations)", "",
                  "Same 10 s log-mel (22050 Hz, n_fft 2048, hop 512, 128 mels); spectral convergence of the "
                  "vocoded audio against the original (lower is better).", "",
                  "| clip | librosa s | ours s | speed-up | librosa SC | ours SC |", "|---|---|---|---|---|---|"]
        for r in results["vocoder"]:
            lines.append(f"| {r['clip']} | {r['librosa_s']:.2f} | {r['ours_s']:.2f} | **{r['speedup']:.1f}x** | "
                         f"{r['librosa_sc']:.3f} | {r['ours_sc']:.3f} |")
        lines.append("")
    if "loader" in results:
        r = results["loader"]
        lines += ["## Loader: decode-once cache vs the seed's per-segment librosa.load", "",
                  f"{r['files']} WAVs of 30 s under GTZAN's file names, 5 segments of 5 s each.", "",
                  "| method | files/s | vs seed |", "|---|---|---|",
                  f"| seed: librosa.load(offset, duration) per segment | {r['seed_files_per_s']:.0f} | 1.0x |",
                  f"| ours, cold cache (decode + write) | {r['cold_files_per_s']:.0f} | {r['cold_speedup']:.1f}x |",
                  f"| ours, warm cache (memory-mapped) | {r['warm_files_per_s']:.0f} | **{r['warm_speedup']:.1f}x** |", ""]
    if "training" in results:
        lines += ["## Training step (mel VAE)", "", "| preset | device | batch | s/step | clips/s | peak GPU memory |",
                  "|---|---|---|---|---|---|"]
        for r in results["training"]:
            mem = f"{r['peak_mem_gb']:.2f} GB" if r["peak_mem_gb"] is not None else "-"
            lines.append(f"| {r['preset']} | {r['device']} | {r['batch']} | {r['step_s']:.3f} | "
                         f"{r['clips_per_s']:.1f} | {mem} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Benchmarks; writes BENCHMARKS.md")
    p.add_argument("--only", nargs="*", choices=["synthetic", "vocoder", "loader", "training"])
    p.add_argument("--files", type=int, default=1000, help="files for the loader benchmark")
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = p.parse_args(argv)
    only = set(args.only or ["synthetic", "vocoder", "loader", "training"])
    results = {"machine": machine()}
    work = Path(tempfile.mkdtemp(prefix="bench_"))
    try:
        if "synthetic" in only:
            results["synthetic"] = bench_synthetic(work)
            print("synthetic:", results["synthetic"])
        if "vocoder" in only:
            results["vocoder"] = bench_vocoder()
            for r in results["vocoder"]:
                print("vocoder:", r)
        if "loader" in only:
            results["loader"] = bench_loader(work, args.files)
            print("loader:", results["loader"])
        if "training" in only:
            results["training"] = bench_training()
            for r in results["training"]:
                print("training:", r)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = render_markdown(results)
    Path(args.out).write_text(md + "\n")
    print(md)
    return results


if __name__ == "__main__":
    main()
