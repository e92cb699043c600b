"""Train a template model: data -> plain VAE -> the project's trainer -> checkpoint.

    python -m TemplateCode.train --kind image --data Data/synthetic --size demo --out vae_logs/template_mel
    python -m TemplateCode.train --kind audio --size tiny --epochs 2 --out /tmp/template_wave

Re-running the same command resumes from ``<out>/latest.pt`` (``--fresh`` starts over).
The checkpoint rebuilds with :func:`TemplateCode.experiment.load_experiment` and feeds
:class:`transfer.GenreTransfer` like every other model. To start a new experiment, copy
nothing: write a model class next to the template's and register it as a family.
"""
from __future__ import annotations

from pathlib import Path

from cli import ArgumentParser, run
from TemplateCode.data import ensure_data, load_segments
from TemplateCode.experiment import baselines, build, make_trainer

KINDS = {"audio": "wave", "image": "mel"}            # template kind -> model domain


def main(argv=None) -> Path:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=sorted(KINDS), default="image",
                   help="audio: plain waveform VAE; image: plain mel-spectrogram VAE")
    p.add_argument("--data", default="Data/synthetic", help="GTZAN folder (synthetic one written when missing)")
    p.add_argument("--size", choices=["tiny", "demo", "full"], default="demo")
    p.add_argument("--out", help="checkpoint folder (default vae_logs/template_<kind>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--smoke-test", action="store_true", help="one batch of training and validation")
    args = p.parse_args(argv)

    variant = baselines(KINDS[args.kind])[0]                         # the template row
    changes = {"smoke_test": True} if args.smoke_test else {}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    built = build(variant, args.size, seed=args.seed, **changes)
    train, valid, info = load_segments(ensure_data(args.data), built.audio, seed=args.seed)
    out = Path(args.out or f"vae_logs/template_{args.kind}")
    best = make_trainer(built, out, train, valid, info, resume=not args.fresh).fit()
    print(f"{variant.name}: {built.parameters:,} parameters; best checkpoint {best}")
    return best


if __name__ == "__main__":
    run(main, prog="TemplateCode.train")
