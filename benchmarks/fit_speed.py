"""Whole-process wall time of `scalepredict fit` (what a user waits for), printed.

1. the compute law on 50 runs with 1,000 bootstrap resamples (target < 1 s on the 2-core machine, where pandas is
   installed too);
2. the chinchilla law on the 240 Chinchilla points (../shared/data) with its full 4,500-start grid and 1,000
   bootstrap resamples;
3. `--law auto` on the same 240 points (three laws, their nested backtests, 1,000 resamples each; target < 10 s).

    python benchmarks/fit_speed.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHINCHILLA = Path(__file__).resolve().parents[2] / "shared/data/chinchilla_epoch/svg_extracted_data.csv"


def timed(args, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scalepredict.cli", *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    C = np.repeat(np.logspace(17, 21, 10), 5) * rng.uniform(0.97, 1.03, 50)
    L = (300 * C**-0.12 + 1.6) * np.exp(rng.normal(0, 0.005, 50))
    runs = tmp / "runs50.jsonl"
    runs.write_text("".join(json.dumps({"compute": c, "loss": l}) + "\n" for c, l in zip(C, L)))
    best, med = timed(["fit", str(runs), "--law", "compute", "--bootstrap", "1000"], args.repeat)
    print(f"compute law, 50 runs, 1000 bootstrap resamples: {best:.2f} s best, {med:.2f} s median (target < 1 s)")
    if CHINCHILLA.exists():
        rows = sorted(csv.DictReader(open(CHINCHILLA)), key=lambda r: float(r["loss"]))[:-5]
        chin = tmp / "chinchilla.csv"
        chin.write_text("params,compute,loss\n" + "".join(
            f"{r['Model Size']},{r['Training FLOP']},{r['loss']}\n" for r in rows))
        best, med = timed(["fit", str(chin), "--law", "chinchilla", "--bootstrap", "1000"], args.repeat)
        print(f"chinchilla law, 240 points, 4500-start grid, 1000 bootstrap: {best:.2f} s best, {med:.2f} s median")
        best, med = timed(["fit", str(chin), "--law", "auto", "--bootstrap", "1000"], args.repeat)
        print(f"--law auto, 240 points (3 laws + nested backtests), 1000 bootstrap: {best:.2f} s best, {med:.2f} s "
              f"median (target < 10 s)")
    else:
        print(f"chinchilla timing skipped: {CHINCHILLA} not present")


if __name__ == "__main__":
    main()
