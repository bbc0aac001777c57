"""Reading speed of the log readers, printed.

1. the 790 KB llm.c log in ../shared/data (target: well under a second);
2. a TensorBoard run of 150 event files (a run restarted 150 times, 200 scalar steps each, written here with
   torch's SummaryWriter) (target: a few seconds).

    python benchmarks/ingest_speed.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from scalepredict.ingest import read_curves

LLMC = Path(__file__).resolve().parents[2] / "shared/data/logs/llmc/llmc_gpt2_124M_10B_main.log"


def main():
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
