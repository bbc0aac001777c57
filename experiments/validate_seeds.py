"""How reproducible is the CPU validation's 100x prediction? Reads the result files that experiments/validate_cpu.py
wrote for the default ladder and for the same ladder trained with other seeds (--seed N, against the same 1e14
truth), and prints each prediction's error and coverage, their mean absolute error and their spread.

    python experiments/validate_cpu.py                      # seed 0: figures/cpu-validate.json
    python experiments/validate_cpu.py --seed 10 --out sweeps/cpu-validate-seed10 --target-from sweeps/cpu-validate/target
    python experiments/validate_cpu.py --seed 20 --out sweeps/cpu-validate-seed20 --target-from sweeps/cpu-validate/target
    python experiments/validate_seeds.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--figures", type=Path, default=ROOT / "figures")
    ap.add_argument("--name", default="cpu-validate")
    args = ap.parse_args()
    files = [args.figures / f"{args.name}.json"] + sorted(args.figures.glob(f"{args.name}-seed*.json"),
                                                          key=lambda p: int(p.stem.rsplit("seed", 1)[1]))
    rows = [(p.stem, json.loads(p.read_text())) for p in files if p.exists()]
    if not rows:
        raise SystemExit(f"no {args.name}*.json under {args.figures}: run experiments/validate_cpu.py first")
    truths = {round(r["actual"], 6) for _, r in rows}
    print(f"{'ladder':24s} {'predicted':>9s} {'90% interval':>18s} {'truth':>7s} {'error':>7s}  covered  "
          f"seed noise (smallest, others)")
    for name, r in rows:
        others = ", ".join(f"{g['sigma']:.2%}" for g in r.get("seed_noise_each", [])[1:])
        print(f"{name:24s} {r['predicted']:9.4f} [{r['lower']:.4f}, {r['upper']:.4f}] {r['actual']:7.4f} "
              f"{r['rel_error']:+7.2%}  {'yes' if r['covered'] else 'NO ':7s}  {r['seed_noise']:.2%}"
              + (f", {others}" if others else ""))
    err = np.array([r["rel_error"] for _, r in rows])
    print(f"{len(rows)} ladders: mean |error| {np.mean(np.abs(err)):.2%}, mean error {np.mean(err):+.2%}, "
          f"spread (sd) {np.std(err, ddof=1) if len(err) > 1 else float('nan'):.2%}, "
          f"covered {sum(r['covered'] for _, r in rows)}/{len(rows)}")
    if len(truths) > 1:
        print(f"note: the ladders were checked against different truths {sorted(truths)}")


if __name__ == "__main__":
    main()
