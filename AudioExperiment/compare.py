"""The waveform suite through the shared comparison runner (:mod:`TemplateCode.compare`).

    python -m AudioExperiment.compare --budget demo            # template, CVAE and the five variants
    python -m AudioExperiment.compare --budget smoke --data /tmp/syn --out /tmp/cmp
"""
from TemplateCode.compare import main

if __name__ == "__main__":
    main(suites=("audio",))
