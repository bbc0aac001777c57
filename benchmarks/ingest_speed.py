"""Reading speed of the log readers, printed.

1. the 790 KB llm.c log in ../shared/data (target: well under a second);
2. a TensorBoard run of 150 event files (a run restarted 150 times, 200 scalar steps each, written here with
   torch's SummaryWriter) (target: a few seconds);
3. a W&B run history saved as CSV (12 columns as OLMo's ladder logs them), --history-mb megabytes of it (1,000 for
   the 1 GB case), read in a fresh process: throughput (MB/s) and the process's peak memory (target: 100 MB/s on
   one core, memory bounded by the values kept, not the file).

    python benchmarks/ingest_speed.py [--history-mb 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scalepredict.ingest import read_curves

LLMC = Path(__file__).resolve().parents[2] / "shared/data/logs/llmc/llmc_gpt2_124M_10B_main.log"


COLUMNS = ["_step", "_runtime", "_timestamp", "train/CrossEntropyLoss", "eval/c4_en-validation/CrossEntropyLoss",
           "eval/pile-validation/CrossEntropyLoss", "optim/LR", "optim/total_grad_norm", "throughput/total_tokens",
           "throughput/total_training_Gflops", "throughput/device/tokens_per_second", "system/peak_gpu_memory"]


def write_history(path: Path, megabytes: float) -> int:
    """A W&B history CSV of about `megabytes`; returns its row count."""
    with open(path, "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        step = 0
        while f.tell() < megabytes * 1e6:
            rows = []
            for _ in range(10000):
                t = step * 4194304
                rows.append(f"{step},{step * 0.81:.3f},{1.7e9 + step:.3f},{3 + 5 / (1 + step / 1e4):.6f},"
                            f"{3.1 + 5 / (1 + step / 1e4):.6f},{2.9 + 5 / (1 + step / 1e4):.6f},0.0003,{0.5:.4f},"
                            f"{t},{6 * 1.2e9 * t / 1e9:.6e},{123456.7:.1f},{40.5:.2f}\n")
                step += 1
            f.write("".join(rows))
    return step


def read_history_timed(path: str) -> None:
    """In this (fresh) process: read the history, print seconds, MB/s and peak memory."""
    import resource

    t = time.perf_counter()
    _, curves = read_curves(Path(path))
    dt = time.perf_counter() - t
    mb = Path(path).stat().st_size / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    points = sum(len(c.steps) for c in curves)
    print(f"W&B history CSV, {mb:.0f} MB, {len(curves)} curves, {points:,} points: {dt:.1f} s, {mb / dt:.0f} MB/s, "
          f"peak memory {peak:.0f} MB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--history-mb", type=float, default=200)
    ap.add_argument("--read", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read:
        read_history_timed(args.read)
        return
    tmp = Path(tempfile.mkdtemp())
    write_history(tmp / "history.csv", args.history_mb)
    subprocess.run([sys.executable, __file__, "--read", str(tmp / "history.csv")], check=True)
    (tmp / "history.csv").unlink()
    if LLMC.exists():
        t = time.perf_counter()
        _, curves = read_curves(LLMC)
        dt = time.perf_counter() - t
        print(f"llm.c log ({LLMC.stat().st_size / 1e3:.0f} KB, {sum(len(c.steps) for c in curves)} points): {dt:.3f} s")
    else:
        print(f"llm.c timing skipped: {LLMC} not present")
    from torch.utils.tensorboard import SummaryWriter

    root = Path(tempfile.mkdtemp()) / "run"
    for f in range(150):
        w = SummaryWriter(str(root), filename_suffix=f".{f:03d}")
        for s in range(200):
            step = f * 150 + s  # each restart overlaps the previous one by 50 steps
            w.add_scalar("eval/loss", 3.0 / (1 + step / 1000), step)
            w.add_scalar("train/loss", 3.1 / (1 + step / 1000), step)
        w.close()
    n_files = len(list(root.glob("*tfevents*")))
    t = time.perf_counter()
    _, curves = read_curves(root, "tensorboard")
    dt = time.perf_counter() - t
    c = next(c for c in curves if c.metric == "eval/loss")
    print(f"TensorBoard run, {n_files} event files, {len(c.steps)} distinct steps after restarts: {dt:.2f} s")


if __name__ == "__main__":
    main()
