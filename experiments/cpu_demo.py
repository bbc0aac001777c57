"""The CPU demo end to end, and the README figures from it.

Runs (or resumes) the cpu-demo sweep into --out, backtests the compute law at k = 10 on its runs, prints the
figures, and writes figures/cpu-demo-{prediction,isoflop,backtest,curves}.png.

    python experiments/cpu_demo.py [--out sweeps/cpu-demo]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from scalepredict.core.backtest import backtest
from scalepredict.fitfile import load_fit
from scalepredict.frontier import seed_noise
from scalepredict.config import load_config
from scalepredict.pipeline import plan_budgets
from scalepredict.plots import backtest_figure, curves_figure, isoflop_figure, prediction_figure
from scalepredict.runs import load_runs
from scalepredict.pipeline import run_sweep

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "sweeps/cpu-demo")
    ap.add_argument("--figures", type=Path, default=ROOT / "figures")
    args = ap.parse_args()
    cfg = load_config("cpu-demo")
    t = time.time()
    run_sweep(cfg, args.out, jobs="auto")
    print(f"sweep wall time (this invocation) {time.time() - t:.0f} s")
    table = load_runs(args.out / "runs.jsonl")
    fit = load_fit(args.out / "fit.json")
    sn = seed_noise(table)  # repeated seeds of the compute-optimal guess at the repeat_at budgets
    each = sn["each"] if sn else []
    noise = each[0]["sigma"] if each else float("nan")
    for g in each:
        print(f"seed-to-seed noise at {g['compute']:.3g} FLOPs ({g['params']:,.0f} params): {g['sigma']:.2%} over "
              f"{g['seeds']} seeds")
    if sn:
        print(f"pooled (the intervals' floor): {sn['sigma']:.2%}")
    bt = backtest(table, "compute", (10,))
    for c in bt["cases"]:
        print(f"k=10: {c['compute']:.3g} FLOPs predicted {c['predicted']:.4f} actual {c['actual']:.4f} "
              f"({c['rel_error']:+.2%}) in [{c['lower']:.4f}, {c['upper']:.4f}]: {'yes' if c['covered'] else 'NO'}")
    print(f"backtest k=10: mean |error| {bt['mape']:.2%}, coverage {bt['coverage']:.0%}")
    # the same recipe's trained frontier at 1e14 (experiments/validate_cpu.py) checks the demo's own 1e14 prediction
    check = None
    truth_file = args.figures / "cpu-validate.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        p = fit.predict(compute=[truth["target_compute"]])[0]
        check = {"compute": truth["target_compute"], "predicted": p["loss"], "lower": p["lower"], "upper": p["upper"],
                 "actual": truth["actual"], "rel_error": p["loss"] / truth["actual"] - 1,
                 "covered": p["lower"] <= truth["actual"] <= p["upper"],
                 "extrapolation": truth["target_compute"] / fit.max_compute}
        print(f"the demo's prediction at {check['compute']:.3g} FLOPs ({check['extrapolation']:.0f}x its largest "
              f"budget): {check['predicted']:.4f} in [{check['lower']:.4f}, {check['upper']:.4f}]; trained "
              f"(validate_cpu.py): {check['actual']:.4f} ({check['rel_error']:+.2%}, "
              f"{'inside' if check['covered'] else 'OUTSIDE'} the interval)")
    args.figures.mkdir(exist_ok=True)
    prediction_figure(fit, args.figures / "cpu-demo-prediction.png", targets=cfg.sweep.targets)
    meta = json.loads((args.out / "sweep.json").read_text())
    isoflop_figure(table, args.figures / "cpu-demo-isoflop.png", added={b["run"] for b in meta.get("bracket", [])})
    backtest_figure(bt, args.figures / "cpu-demo-backtest.png")
    curves_figure(args.out, args.figures / "cpu-demo-curves.png", plan_budgets(meta))
    (args.figures / "cpu-demo-summary.json").write_text(json.dumps(
        {"seed_noise": noise, "seed_noise_each": each, "seed_noise_pooled": sn["sigma"] if sn else None,
         "backtest_k10_mape": bt["mape"], "backtest_k10_coverage": bt["coverage"],
         "backtest_k10_cases": len(bt["cases"]), "check_1e14": check,
         "params": {n: float(v) for n, v in zip(fit.law.names, fit.values)}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
