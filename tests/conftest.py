"""Shared fixtures: a tiny synthetic GTZAN and a tiny trained mel VAE, built once per session
in a temporary folder (nothing is written into the repository, nothing is downloaded)."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """3 contents x 10 genres x 4 s at 22050 Hz: 30 clips, content-disjoint splits 1/1/1."""
    import synthetic_gtzan
    root = tmp_path_factory.mktemp("synthetic_gtzan")
    synthetic_gtzan.generate(root, n_per_genre=3, duration=4.0, seed=0, workers=2)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(synthetic_root, tmp_path_factory) -> Path:
    """A mel VAE trained for two epochs with the tiny preset (seconds on a CPU)."""
    import trainer
    out = tmp_path_factory.mktemp("tiny_run")
    trainer.main(["--data", str(synthetic_root), "--preset", "tiny", "--out", str(out), "--epochs", "2"])
    return out / "best.pt"


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module. Tiny models and the vocoder run small ops: on a
    busy 2-core machine two OpenMP threads spin-waiting for each other (and for other jobs)
    run several times slower than one. The previous count is restored after the module."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
