"""Coverage of the prediction intervals on simulated sweeps where the true law is known.

`--kind compute` (the default): a compute law L = a*C^b + c with b, c and the reducible loss drawn from realistic
ranges, 8-12 runs spread evenly in log compute over 2-3 decades, log-normal run-to-run noise of 0.3-1%.
`--kind isoflop`: IsoFLOP sweeps drawn from a Chinchilla law L = E + A/N^alpha + B/D^beta (E 1.6-2.4, alpha and
beta 0.25-0.45, A and B set so that each term is 0.5-2.0 at the smallest budget's optimum), 3-5 budgets over 1.5-2.5
decades, five sizes per budget from a quarter to four times the optimal size, the same noise; fitted with the
default law average (`--law auto`) by default.

The target is a new (noisy) run 100x above the largest fitted compute, at the law's optimum for the isoflop kind.
Prints the share of 90% intervals that contain it (goal 85-95%), the same against the noiseless law, and the mean
absolute relative error.

    python benchmarks/coverage.py [--kind compute|isoflop] [--law LAW] [--datasets 200] [--level 0.9]
        [--factor 100] [--seed 2024] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from scalepredict.core.laws import optimal_allocation
from scalepredict.fit import fit_law
from scalepredict.runs import RunTable


def simulate_compute(rng, factor):
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
    target = C.max() * factor
    rows = [{"compute": x, "loss": y} for x, y in zip(C, L)]
    return rows, target, a * target**b + c, noise


def simulate_isoflop(rng, factor):
    E, alpha, beta = rng.uniform(1.6, 2.4), rng.uniform(0.25, 0.45), rng.uniform(0.25, 0.45)
    lo = 10 ** rng.uniform(17, 19)
    n_lo = np.sqrt(lo / 120)  # about 20 tokens per parameter at the smallest budget
    A = rng.uniform(0.5, 2.0) * n_lo**alpha
    B = rng.uniform(0.5, 2.0) * (20 * n_lo) ** beta
    theta = np.array([E, A, B, alpha, beta])

    def law(N, D):
        return E + A / N**alpha + B / D**beta

    noise = rng.uniform(0.003, 0.01)
    budgets = np.logspace(np.log10(lo), np.log10(lo) + rng.uniform(1.5, 2.5), int(rng.integers(3, 6)))
    rows = []
    for C in budgets:
        n_opt, _ = optimal_allocation(theta, C)
        for N in n_opt * np.geomspace(0.25, 4.0, 5):
            D = C / (6 * N)
            L = law(N, D) * np.exp(rng.normal(0, noise))
            rows.append({"compute": C, "budget": C, "params": N, "tokens": D, "loss": L})
    target = budgets.max() * factor
    n, d = optimal_allocation(theta, target)
    return rows, target, law(n, d), noise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("compute", "isoflop"), default="compute")
    ap.add_argument("--law", help="the law fitted (default: compute for --kind compute, auto for isoflop)")
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--factor", type=float, default=100.0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    simulate = simulate_compute if args.kind == "compute" else simulate_isoflop
    law_name = args.law or ("compute" if args.kind == "compute" else "auto")
    rng = np.random.default_rng(args.seed)
    hits_run, hits_law, errors, widths = [], [], [], []
    t0 = time.time()
    for i in range(args.datasets):
        rows, target, law, noise = simulate(rng, args.factor)
        table = RunTable([{**r, "run": f"r{j}", "_where": "sim"} for j, r in enumerate(rows)], ["sim"])
        fit = fit_law(table, law_name, n_bootstrap=args.bootstrap, seed=i)
        run = law * np.exp(rng.normal(0, noise))
        p = fit.predict(compute=target, level=args.level)[0]
        hits_run.append(p["lower"] <= run <= p["upper"])
        hits_law.append(p["lower"] <= law <= p["upper"])
        errors.append(abs(p["loss"] - run) / run)
        widths.append((p["upper"] - p["lower"]) / p["loss"])
    out = {
        "kind": args.kind,
        "law": law_name,
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
        print(f"{args.datasets} simulated {args.kind} sweeps ({law_name} law), target {args.factor:g}x beyond the "
              f"largest fitted run")
        print(f"  {args.level:.0%} interval covers the new run: {out['coverage_new_run']:.1%} (goal 85-95%)")
        print(f"  covers the noiseless law:            {out['coverage_true_law']:.1%}")
        print(f"  mean absolute relative error {out['mape']:.2%}; median interval width {out['median_relative_width']:.2%}"
              f" of the prediction; {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
