"""Where the CPU demo's time goes: one training step of a demo model under torch's profiler (the top operators by
their own time, and the share of matmuls), and the sweep's end step (fit, predictions, backtest, figures, report)
under Python's profiler, grouped by stage.

    python benchmarks/profile_demo.py [--shape 1,32] [--steps 50] [--sweep sweeps/cpu-demo]

The end step is profiled on an existing sweep folder (--sweep, from `scalepredict sweep`), copied first so that
the folder itself is not rewritten.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scalepredict.config import TrainConfig, load_config
from scalepredict.flops import Shape
from scalepredict.train.data import get_batch
from scalepredict.train.model import GPT
from scalepredict.train.trainer import make_optimizer, train_step


def profile_step(shape: Shape, batch: int, steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    data = np.random.default_rng(0).integers(0, shape.vocab_size, 1 << 20).astype(np.uint16)
    model = GPT(shape)
    opt = make_optimizer(model, 1e-3, TrainConfig())
    rng = np.random.default_rng(0)

    def step():
        x, y = (torch.from_numpy(a) for a in get_batch(data, batch, shape.seq_len, rng))
        train_step(model, model, opt, x, y, 1.0, "cpu")

    for _ in range(10):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - t0) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows)
    flops = shape.train_flops_per_token * batch * shape.seq_len
    print(f"one step of a {shape.n_layer}-layer, {shape.d_model}-wide model ({shape.params:,} params, {batch}x"
          f"{shape.seq_len} tokens, one thread): {per_step * 1e3:.2f} ms, {flops / per_step / 1e9:.1f} GFLOP/s")
    mm = sum(e.self_cpu_time_total for e in rows if e.key in ("aten::mm", "aten::bmm", "aten::addmm"))
    print(f"  matmuls: {mm / total:.0%} of the step's own time; the rest: attention, softmax, GELU, norms, the "
          f"optimizer and the dispatcher")
    for e in rows[:12]:
        print(f"  {e.key[:48]:<48} {e.self_cpu_time_total / steps:8.0f} us/step  {e.self_cpu_time_total / total:5.1%}")


STAGES = {"fit": ("core/fit.py", "fit_law"), "backtest": ("core/backtest.py", "backtest"),
          "figures": ("plots/", None), "report text": ("report.py", "render"), "predictions": ("result.py", "predict")}


def profile_end_step(sweep: Path) -> None:
    from scalepredict.pipeline import finish_sweep

    cfg = load_config("cpu-demo")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "sweep"
        shutil.copytree(sweep, copy)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(finish_sweep, cfg, copy, lambda *a: None)
        total = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats
    print(f"end step (fit, predictions, backtest, figures, report): {total:.2f} s")
    for name, (path, func) in STAGES.items():
        cum = max((v[3] for (f, _, fn), v in stats.items() if path in f and (func is None or fn == func)), default=0)
        if func is None:  # every figure: the savefig calls
            cum = sum(v[3] for (f, _, fn), v in stats.items() if f.endswith("plots/style.py") and fn == "save")
        print(f"  {name:<12} {cum:6.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="1,32", help="n_layer,d_model of the profiled model")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--sweep", type=Path, default=Path("sweeps/cpu-demo"))
    a = ap.parse_args()
    n_layer, d_model = (int(x) for x in a.shape.split(","))
    cfg = load_config("cpu-demo")
    shape = Shape(n_layer, d_model, max(1, d_model // cfg.model.head_dim), 256, cfg.model.seq_len)
    profile_step(shape, cfg.train.batch_size, a.steps)
    if (a.sweep / "runs.jsonl").exists():
        profile_end_step(a.sweep)
    else:
        print(f"(no sweep in {a.sweep}: run `scalepredict sweep` first to profile the end step)")


if __name__ == "__main__":
    main()
