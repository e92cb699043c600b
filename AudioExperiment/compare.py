"""The waveform suite through the shared comparison runner (:mod:`TemplateCode.compare`).

    python -m AudioExperiment.compare --budget demo            # template, CVAE and the five variants
    python -m AudioExperiment.compare --budget smoke --data /tmp/syn --out /tmp/cmp
"""
from cli import run
from TemplateCode.compare import main

if __name__ == "__main__":
    run(lambda argv: main(argv, suites=("audio",)), prog="AudioExperiment.compare")
