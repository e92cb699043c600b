"""The main job on the embedded synthetic GTZAN (``make demo``).

    python demo.py                    # the demo: data, judge, training, transfer, evaluation
    python demo.py --kind oscillator  # on the oscillator kind of the synthetic GTZAN (default: sampled)
    python demo.py --quick            # the same path with tiny settings (the test suite runs it)
    python demo.py --data /path/to/GTZAN/Data   # a real GTZAN: no content retrieval (no ground truth)

Steps: build (or reuse) the synthetic GTZAN; train the genre judge on the training split
and report its held-out accuracy; round-trip five clips through the log-mel and the
vocoder; train the mel VAE (``trainer.py``: the VAE phase, then the adversarial phase;
re-running resumes; ``--model wave`` trains the waveform VAE); transfer five test clips to
other genres with both methods; evaluate on the whole test split with a sweep of
strengths; write ``audio_results/`` (WAVs, figures, manifest.csv, metrics.json, and on
the synthetic set ``transfer_examples.png``, three transfers beside the ground truth, and
``transfer_curve.png``, success against content retrieval) and print a summary table.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

import evaluation as ev
import synthetic_gtzan
import trainer
from audio_io import (enhanced_visualize_and_play, high_quality_mel_to_audio, mel_grid_figure, read_audio_file,
                      resample, save_wav)
from cli import ArgumentParser, run
from listening_page import TRUTH_METHOD, record_outputs, write_report
from prepare_data import AudioConfig, enhanced_audio_to_mel
from SlicingDataLoading import GENRES, AudioCache, BuildReport, DataLoad, clip_reader, require_files
from transfer import GenreTransfer


@contextlib.contextmanager
def stage(seconds: dict, name: str):
    """Add the wall-clock seconds of the block to ``seconds[name]`` (the demo reports where its time goes)."""
    t0 = time.time()
    try:
        yield
    finally:
        seconds[name] = round(seconds.get(name, 0.0) + time.time() - t0, 1)


def round_trip(records, cache: AudioCache, cfg: AudioConfig, out_dir: Path) -> list[dict]:
    """Mel -> vocoder -> audio for five clips: figures and WAVs, and the reconstruction error."""
    import torch
    rows, load = [], clip_reader(records, cfg.sample_rate, cache)
    for rec in records:
        audio = load(rec)
        mel = enhanced_audio_to_mel(torch.from_numpy(audio), cfg, fit=False)
        back = high_quality_mel_to_audio(mel, cfg, length=len(audio))[0].numpy()
        enhanced_visualize_and_play(audio, back, None, cfg, title=f"{rec.name}: mel round trip",
                                    out_dir=out_dir, name=f"roundtrip_{rec.name}", play=False)
        rows.append({"clip": rec.name, **ev.reconstruction_metrics(audio, back, cfg)})
    return rows


# Conditional strengths the demo tries on the validation split, per family: 1 is what training
# decodes with; beyond it (the genre embedding extrapolated past the target's) can make the
# genre clearer at little cost in content. The waveform VAE, whose pitch rows keep more of the
# source's colour, needs more of it. Each costs one more decoding pass, so the demo decodes the
# test split at the chosen one only (evaluation.evaluate_model's default sweeps more
# strengths); the listening page has the latent shift at 1.
DEMO_STRENGTHS = {"mel": (1.0, 1.25), "wave": (1.0, 1.5, 2.0)}
SELECT_SECONDS = 4.0     # the first seconds of each validation clip scored when choosing a checkpoint


def listening_examples(tr, picks, out_dir: Path, data: Path, strength: float = 1.0) -> Path | None:
    """Five test clips sent to another genre with both methods (and reconstructed), as WAVs
    listed in out_dir/manifest.csv; on the synthetic set also each one's ground truth (the
    same content rendered in the target genre at the source's tempo and swing: a transfer
    that keeps the timing), and a figure of the first three conditional transfers beside it.
    ``strength`` is the conditional decoding's; the latent shift runs at 1."""
    rng, rows = np.random.default_rng(0), []
    synthetic = (data / synthetic_gtzan.PARAMS).is_file()
    for rec in picks:
        target = GENRES[(rec.label + 1 + int(rng.integers(0, 9))) % 10]
        tr.transfer_file(rec.path, target, out_dir, rec.genre, "conditional", 0.0)   # reconstruction
        for method, alpha in (("shift", 1.0), ("conditional", strength)):
            out = tr.transfer_file(rec.path, target, out_dir, rec.genre, method, alpha)
        if not synthetic or rec.content_id is None:
            continue
        (source, src_sr), (output, out_sr) = read_audio_file(rec.path), read_audio_file(out)
        truth = synthetic_gtzan.timed_rendering(data, rec.content_id, rec.genre, target, src_sr)
        truth_file = f"{rec.path.stem}_{target}_ground_truth.wav"
        save_wav(out_dir / truth_file, truth, src_sr)
        record_outputs(out_dir, [{"source_file": str(rec.path), "source_genre": rec.genre, "target_genre": target,
                                  "method": TRUTH_METHOD, "strength": 1, "output_file": truth_file}])
        if len(rows) < 3:
            sr = tr.audio.sample_rate
            rows.append([(resample(source.mean(0), src_sr, sr), f"{rec.name} ({rec.genre})"),
                         (resample(output.mean(0), out_sr, sr), f"conditional {strength:g} -> {target}"),
                         (resample(truth, src_sr, sr), f"the same content in {target} (ground truth)")])
    if not rows:
        return None
    return mel_grid_figure(rows, tr.audio, out_dir / "transfer_examples.png",
                           f"{tr.model.family} VAE: source, transfer, ground truth")


def choose_checkpoint(best: Path, valid, judge, reference, cache) -> tuple[Path, GenreTransfer, float, list[dict]]:
    """best.pt or average.pt (the kept epochs' weights averaged, ``train.average``; without it,
    each epoch the run kept, ``train.snapshots``), and one of the family's DEMO_STRENGTHS, whichever the
    judge hears best on the validation split (:func:`evaluation.select_checkpoint`): its path,
    its GenreTransfer, the strength and the comparison."""
    average = best.parent / trainer.AVERAGE
    others = [average] if average.is_file() else trainer.epoch_snapshots(best.parent)
    paths, transfers, epochs = {}, {}, set()
    for path in (best, *others):
        tr = GenreTransfer.from_checkpoint(path)
        key = (tr.state["epoch"], tuple(tr.state.get("averaged_epochs", ())))
        if key not in epochs:                                   # best.pt is a copy of an epoch
            paths[path.name], transfers[path.name] = path, tr
            epochs.add(key)
    strengths = DEMO_STRENGTHS[transfers[best.name].model.family]
    chosen, strength, rows = best.name, strengths[0], []
    if valid:
        chosen, strength, rows = ev.select_checkpoint(transfers, valid, judge, reference, SELECT_SECONDS, cache,
                                                      strengths=strengths)
        print("checkpoint and strength chosen on the validation split (judged own genre + success + content "
              "+ onset F1 against the aligned truth):")
        for r in rows:
            print(f"  {r['checkpoint']:<12} epoch {r['epoch']:>3}  strength {r['strength']:<4g}  own genre "
                  f"{r['own_genre']:.2f}  success {r['success']:.2f}  content {r['content']:.2f}  onset F1 "
                  f"{r['onset_f1']:.2f}  score "
                  f"{r['score']:.2f}" + ("  <- chosen" if (r["checkpoint"], r["strength"]) == (chosen, strength)
                                         else ""))
    return paths[chosen], transfers[chosen], strength, rows


def train_and_evaluate(family: str, preset: str, args, data: Path, splits: dict, judge, picks, out: Path,
                       logs: Path, seconds: dict) -> dict:
    """Train one family (resuming a run in logs/<family>), write its listening examples, and
    score the test split: out/<family>/metrics.json. The stages' wall-clock seconds go into
    ``seconds``."""
    run = logs / family
    cmd = ["--data", str(data), "--model", family, "--preset", preset, "--out", str(run)]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    if args.train_set:
        cmd += ["--set", *args.train_set]
    with stage(seconds, f"{family}: training"):
        best = trainer.main(cmd)
    (run / "judge.npz").write_bytes((logs / "judge.npz").read_bytes())
    synthetic = (Path(data) / "synthetic_manifest.csv").exists()
    reference = [r for s in splits.values() for r in s] if synthetic else None
    cache = DataLoad(data).cache
    with stage(seconds, f"{family}: choosing a checkpoint"):
        best, tr, strength, selection = choose_checkpoint(best, splits["valid"], judge, reference, cache)
    with stage(seconds, f"{family}: listening examples"):
        figure = listening_examples(tr, picks, out / family, Path(data), strength)
    with stage(seconds, f"{family}: evaluation"):
        metrics = ev.evaluate_model(tr, splits["test"], judge, reference_records=reference,
                                    strengths={"conditional": [strength]}, cache=cache,
                                    max_seconds=4.0 if args.quick else None,
                                    # the waveform VAE's goal names it; the mel demo has no time for it
                                    reconstruction_retrieval=family == "wave",
                                    model_info={"name": f"{family} VAE", "preset": preset, "checkpoint": str(best),
                                                "strength": strength, "selection": selection})
    ev.write_metrics(out / family / "metrics.json", metrics)
    print(f"\n== {family} VAE ({preset}) on the test split ==")
    print(ev.summary_table(metrics))
    if figure:
        print(f"three transfers beside the ground truth: {figure}")
    return metrics


def main(argv=None) -> dict:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None,
                   help="GTZAN folder (Kaggle layout); default: the synthetic GTZAN of --kind, written when missing")
    p.add_argument("--kind", choices=["sampled", "oscillator"], default="sampled",
                   help="synthetic GTZAN: sampled (real compositions on SoundFont instruments; falls back to "
                        "oscillator where FluidSynth is missing) or oscillator (synthesised instruments)")
    p.add_argument("--out", default="audio_results")
    p.add_argument("--logs", default="vae_logs")
    p.add_argument("--model", choices=["mel", "wave"], action="append",
                   help="model families to train (repeatable; default: the mel VAE)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--per-genre", type=int, default=30, help="synthetic contents (clips per genre)")
    p.add_argument("--duration", type=float, default=10.0, help="synthetic clip length in seconds")
    p.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="trainer overrides, e.g. train.adv_weight=1.0 model.latent_dim=8")
    p.add_argument("--quick", action="store_true", help="tiny data, tiny model, two epochs (tests)")
    args = p.parse_args(argv)
    families = args.model or ["mel"]
    t0 = time.time()
    out, logs = Path(args.out), Path(args.logs)
    out.mkdir(parents=True, exist_ok=True)
    preset = "tiny" if args.quick else "demo"
    per_genre, duration = (3, 4.0) if args.quick else (args.per_genre, args.duration)

    seconds = {}
    with stage(seconds, "data"):
        data = trainer.ensure_data(args.data, per_genre, duration, args.kind)
    loader = DataLoad(data)
    report = BuildReport()
    splits = require_files(loader.splits(report), data, report)
    kind = synthetic_gtzan.dataset_kind(data) if (data / synthetic_gtzan.PARAMS).is_file() else "GTZAN"
    print(f"data: {data} ({kind})  files train/valid/test = "
          f"{len(splits['train'])}/{len(splits['valid'])}/{len(splits['test'])}")

    with stage(seconds, "judge"):
        judge = ev.train_judge(loader, AudioConfig().sample_rate, logs / "judge.npz")
    print(f"judge (independent genre classifier): held-out accuracy {judge.heldout_accuracy:.3f} "
          f"on {judge.n_test} test clips")

    picks = [r for g in GENRES for r in splits["test"] if r.genre == g][::max(1, len(splits["test"]) // 5)][:5]
    with stage(seconds, "round trip"):
        rt = round_trip(picks, loader.cache, AudioConfig.preset("demo"), out / "roundtrip")
    print("mel round trip (5 clips): log-mel L1 {:.2f} dB, spectral convergence {:.3f}".format(
        np.mean([r["logmel_l1_db"] for r in rt]), np.mean([r["spectral_convergence"] for r in rt])))

    all_metrics = {f: train_and_evaluate(f, preset, args, data, splits, judge, picks, out, logs, seconds)
                   for f in families}
    if (Path(data) / "synthetic_manifest.csv").exists():
        curve = ev.plot_transfer_curve({f"{f} VAE": m for f, m in all_metrics.items()}, out / "transfer_curve.png")
        print(f"success against content retrieval: {curve}")
    with stage(seconds, "listening page"):
        print(f"listening page: {write_report(out, judge=judge)}")
    (out / "summary.json").write_text(json.dumps({"seconds": round(time.time() - t0, 1), "stages": seconds,
                                                   "families": families, "roundtrip": rt}, indent=2))
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    print(f"\nwrote {out}/ in {time.time() - t0:.0f} s")
    return all_metrics


if __name__ == "__main__":
    run(main)
