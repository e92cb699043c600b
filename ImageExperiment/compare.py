"""The spectrogram-image suite (and its CNN CVAE sweep) through the shared comparison runner
(:mod:`TemplateCode.compare`).

    python -m ImageExperiment.compare --budget demo
    python -m ImageExperiment.compare --budget demo --sweep "depth=2,3 width=8,16 latent_dim=16 beta=0.02,0.2"
    python -m ImageExperiment.compare --budget smoke --data /tmp/syn --out /tmp/cmp
"""
from cli import run
from TemplateCode.compare import main

if __name__ == "__main__":
    run(lambda argv: main(argv, suites=("image",)), prog="ImageExperiment.compare")
