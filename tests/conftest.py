import json
import os
from pathlib import Path

import numpy as np
import pytest

# pytest-xdist's workers (pyproject.toml's addopts: one per core) each train on one thread, and so do the CLI
# processes they start: two workers on two threads each would contend for the cores
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

# the project's development data (../shared/data beside the clone, or SCALEPREDICT_SHARED_DATA)
SHARED = Path(os.environ.get("SCALEPREDICT_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


# a tiny sweep config: byte-level models of a few thousand parameters on a synthetic corpus, 5 budgets over 16x,
# about a minute on 2 cores (tests/test_sweep.py; tests/test_slurm.py derives its SLURM variant)
TINY = """
name = "tiny"
[data]
source = "synthetic"
size = 200000
val_tokens = 2048
[model]
seq_len = 32
aspect = 16
head_dim = 8
[sweep]
budgets = [2e9, 4e9, 8e9, 1.6e10, 3.2e10]
sizes_per_budget = 3
tokens_per_param = 20
repeats = 1
min_steps = 20
targets = [3.2e11]
[train]
batch_size = 8
lr = 1e-2
lr_ref_params = 1e4
log_interval = 5
"""


def shared_file(rel: str) -> Path:
    """A file from ../shared/data, or a clean skip where that folder is absent (a user's fresh clone). CI sets
    SCALEPREDICT_REQUIRE_SHARED=1 where the folder is there: a missing file then fails the test instead of skipping
    it, so the Chinchilla replication and the real-log readers always run in CI."""
    p = SHARED / rel
    if not p.exists():
        if os.environ.get("SCALEPREDICT_REQUIRE_SHARED") == "1":
            pytest.fail(f"shared data required (SCALEPREDICT_REQUIRE_SHARED=1) but not present: {p}")
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
