"""Coverage of the prediction intervals on simulated sweeps where the true law is known.

Each data set: a compute law L = a*C^b + c with b, c and the reducible loss drawn from realistic ranges,
8-12 runs spread evenly in log compute over 2-3 decades, log-normal run-to-run noise of 0.3-1%. The target is a
new (noisy) run 100x above the largest fitted compute. Prints the share of 90% intervals that contain it (goal
85-95%), the same against the noiseless law, and the mean absolute relative error.

    python benchmarks/coverage.py [--datasets 200] [--level 0.9] [--factor 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from scalepredict.fit import fit_law
from scalepredict.runs import RunTable


def simulate(rng):
    b = rng.uniform(-0.25, -0.05)
    c = rng.uniform(1.5, 3.0)
    decades = rng.uniform(2.0, 3.0)
    lo = 10 ** rng.uniform(15, 18)
    reducible = rng.uniform(1.0, 3.0)  # a*C^b at the smallest run
    a = reducible / lo**b
    n = int(rng.integers(8, 13))
    noise = rng.uniform(0.003, 0.01)
    C = np.logspace(np.log10(lo), np.log10(lo) + decades, n)
    L = (a * C**b + c) * np.exp(rng.normal(0, noise, n))
    return (a, b, c), C, L, noise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--factor", type=float, default=100.0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    hits_run, hits_law, errors, widths = [], [], [], []
    t0 = time.time()
    for i in range(args.datasets):
        (a, b, c), C, L, noise = simulate(rng)
        table = RunTable([{"compute": x, "loss": y, "_where": "sim"} for x, y in zip(C, L)], ["sim"])
        fit = fit_law(table, "compute", n_bootstrap=args.bootstrap, seed=i)
        target = C.max() * args.factor
        law = a * target**b + c
        run = law * np.exp(rng.normal(0, noise))
        p = fit.predict(compute=target, level=args.level)[0]
        hits_run.append(p["lower"] <= run <= p["upper"])
        hits_law.append(p["lower"] <= law <= p["upper"])
        errors.append(abs(p["loss"] - run) / run)
        widths.append((p["upper"] - p["lower"]) / p["loss"])
    out = {
        "datasets": args.datasets,
        "factor": args.factor,
        "level": args.level,
        "coverage_new_run": float(np.mean(hits_run)),
        "coverage_true_law": float(np.mean(hits_law)),
        "mape": float(np.mean(errors)),
        "median_relative_width": float(np.median(widths)),
        "seconds": time.time() - t0,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.datasets} simulated sweeps, target {args.factor:g}x beyond the largest fitted run")
        print(f"  {args.level:.0%} interval covers the new run: {out['coverage_new_run']:.1%} (goal 85-95%)")
        print(f"  covers the noiseless law:            {out['coverage_true_law']:.1%}")
        print(f"  mean absolute relative error {out['mape']:.2%}; median interval width {out['median_relative_width']:.2%}"
              f" of the prediction; {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
