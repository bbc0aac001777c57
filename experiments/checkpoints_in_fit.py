"""Intermediate checkpoints as scaling-fit points, against final values only, on a finished sweep.

Every run of a scalepredict sweep logs its training loss along the way (runs/*/log.jsonl). Read as logs, each run
gives either its final value (the mean of its last 10 logged points) or, with `--intermediate`, every logged point
as if it were the end of a shorter run. Both are backtested the same way (`scalepredict backtest --factors 10`: fit
the runs below C_max / 10, predict the larger ones), on the same metric (the training loss), so the only
difference is the checkpoints. Under a cosine schedule a checkpoint mid-run has not annealed: its loss is higher
than that of a run of its length, which is why the default fits final values only.

    python experiments/checkpoints_in_fit.py --sweep sweeps/cpu-demo
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def backtest(sweep: Path, meta: Path, extra: list[str]) -> dict:
    logs = sorted(str(p) for p in (sweep / "runs").glob("*/log.jsonl"))
    cmd = [sys.executable, "-m", "scalepredict", "backtest", *logs, "--metric", "train_loss", "--last-k", "10",
           "--run-meta", str(meta), "--factors", "10", "--json", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr.strip())
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", type=Path, default=ROOT / "sweeps/cpu-demo")
    args = ap.parse_args()
    rows = [json.loads(line) for line in (args.sweep / "runs.jsonl").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as d:
        meta = Path(d) / "meta.csv"
        with open(meta, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["run", "params", "tokens_per_step", "budget"])
            for r in rows:
                w.writerow([r["run"], r["params"], r["batch_tokens"], r["budget"]])
        for label, extra in (("final values", []), ("every checkpoint (--intermediate)", ["--intermediate"])):
            res = backtest(args.sweep, meta, extra)
            cases = res["cases"]
            cov = [c["covered"] for c in cases if c.get("covered") is not None]
            detail = ", ".join(f"{c['rel_error']:+.1%} at {c['extrapolation']:.1f}x" for c in cases)
            print(f"{label:<36} mean |error| {res['mape']:.2%} over {len(cases)} targets ({detail}); "
                  f"90% coverage {sum(cov)}/{len(cov)}")


if __name__ == "__main__":
    main()
