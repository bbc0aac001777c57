import json
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_file(rel: str) -> Path:
    """A file from ../shared/data, or a clean skip where that folder is absent (a user's fresh clone)."""
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def synthetic_compute_runs(a=300.0, b=-0.12, c=1.6, n=12, lo=1e17, hi=1e20, noise=0.005, seed=0):
    rng = np.random.default_rng(seed)
    C = np.logspace(np.log10(lo), np.log10(hi), n)
    L = (a * C**b + c) * np.exp(rng.normal(0, noise, n))
    return [{"run": f"r{i}", "compute": float(x), "loss": float(y)} for i, (x, y) in enumerate(zip(C, L))]


@pytest.fixture
def compute_runs(tmp_path):
    return write_jsonl(tmp_path / "runs.jsonl", synthetic_compute_runs())
