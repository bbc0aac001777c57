"""Chinchilla (Epoch AI's 245 points read off Hoffmann et al. 2022, figure 4): backtest the compute law on the
compute-efficient frontier and draw the README figures.

Fits on the frontier points up to C_max/k and predicts every larger frontier point, for k = 3, 10, 15, 30, 100,
300; prints the error and the 90% interval coverage per k; writes figures/chinchilla-prediction.png (fit up to
C_max/100, held-out points marked), figures/chinchilla-backtest.png and figures/chinchilla-optimal.png (the
chinchilla-law fit on 240 points, compute-optimal N* and D*).

    python experiments/chinchilla_backtest.py [--data ../shared/data/chinchilla_epoch/svg_extracted_data.csv]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from scalepredict.core.backtest import backtest
from scalepredict.fit import fit_law
from scalepredict.plots import backtest_figure, optimal_figure, prediction_figure
from scalepredict.frontier import frontier
from scalepredict.runs import RunTable

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/chinchilla_epoch/svg_extracted_data.csv"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--figures", type=Path, default=ROOT / "figures")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.data)))
    recs = [{"run": f"p{i}", "params": float(r["Model Size"]), "compute": float(r["Training FLOP"]),
             "loss": float(r["loss"]), "_where": str(args.data)} for i, r in enumerate(rows)]
    for r in recs:
        r["tokens"] = r["compute"] / (6 * r["params"])
    table = RunTable(recs, [str(args.data)])
    result = backtest(table, "compute", (3, 10, 15, 30, 100, 300))
    print(f"{'k':>5} {'cases':>5} {'mean |err|':>10} {'worst':>7} {'90% coverage':>12}")
    for b in result["by_factor"]:
        print(f"{b['factor']:>5g} {b['n']:>5} {b['mape'] * 100:>9.2f}% {b['max_abs_error'] * 100:>6.2f}% "
              f"{b['coverage'] * 100:>11.0f}%")
    print(f"all: mean |err| {result['mape'] * 100:.2f}%, coverage {result['coverage'] * 100:.0f}%")
    args.figures.mkdir(exist_ok=True)
    backtest_figure(result, args.figures / "chinchilla-backtest.png")
    pts = frontier(table)
    c_max = max(p.compute for p in pts)
    small = table.subset(table.compute <= c_max / 100)
    fit = fit_law(small, "compute")
    held = [{"compute": p.compute, "loss": p.loss} for p in pts if p.compute > c_max / 100]
    prediction_figure(fit, args.figures / "chinchilla-prediction.png", targets=[c_max], held_out=held)
    kept = sorted(recs, key=lambda r: r["loss"])[:-5]  # Besiroglu et al. drop the 5 highest-loss points
    chin = fit_law(RunTable(kept, [str(args.data)]), "chinchilla")
    print("chinchilla law on 240 points: " + ", ".join(f"{n}={v:.4g}" for n, v in zip(chin.law.names, chin.values)))
    optimal_figure(chin, args.figures / "chinchilla-optimal.png", targets=[5.76e23])
    print(f"wrote {args.figures}/chinchilla-{{backtest,prediction,optimal}}.png")


if __name__ == "__main__":
    main()
