"""Backtests: refit on the runs below C_max/k, predict the held-out larger ones, score error and coverage.

This is how a fit earns trust (method.md section 3): the same procedure that will extrapolate to the target is
made to extrapolate to runs we already have.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from . import defaults
from .fit import fit_law
from .laws import get_law
from .frontier import frontier, group_compute, isoflop_groups
from .runs import RunTable


def backtest(table: RunTable, law="compute", factors=(10, 100), level: float = defaults.LEVEL, **fit_kws) -> dict:
    auto = law == "auto" or getattr(law, "name", None) == "auto"
    law = None if auto else get_law(law) if isinstance(law, str) else law
    by_compute = not auto and law.inputs == ("compute",) and not fit_kws.get("all_points", False)
    if auto or by_compute:  # hold out whole IsoFLOP groups
        run_compute = np.empty(len(table))
        for g in isoflop_groups(table):
            run_compute[g] = group_compute(table, g)
    if auto:
        # the runs an averaged law is scored on (ensemble.score_targets): each IsoFLOP group's best run, or every
        # run of a ladder
        from .ensemble import score_targets

        idx = score_targets(table)
        targets = list(zip(run_compute[idx] if len(idx) < len(table) else table.compute[idx], table.loss[idx],
                           table.params[idx], table.tokens[idx]))
    elif by_compute:  # scored against the full table's frontier
        targets = [(p.compute, p.loss, p.params, p.tokens) for p in frontier(table)]
    else:
        run_compute = table.compute
        targets = list(zip(table.compute, table.loss, table.params, table.tokens))
    c_max = float(np.max(run_compute))
    cases, skipped, fits = [], [], []
    for k in factors:
        if k <= 1:
            raise InputError(f"--factors: each factor must be > 1, got {k:g}")
        threshold = c_max / k
        mask = run_compute <= threshold * (1 + 1e-9)
        held = [t for t in targets if t[0] > threshold * (1 + 1e-9)]
        if mask.sum() == 0 or not held:
            skipped.append({"factor": k, "reason": "no runs below C_max/k"})
            continue
        try:
            fit = fit_law(table.subset(mask), "auto" if auto else law, **fit_kws)
        except InputError as e:
            skipped.append({"factor": k, "reason": str(e).split(": ", 1)[-1]})
            continue
        fits.append({"factor": k, "n_points": fit.n_points, "warnings": fit.warnings,
                     "params": {} if auto else dict(zip(law.names, map(float, fit.values)))})
        c, actual, n, d = (np.array(v, dtype=float) for v in zip(*held))
        if by_compute or not np.all(np.isfinite(n) & np.isfinite(d)):
            preds = fit.predict(compute=c, level=level)
        else:
            preds = fit.predict(compute=c, params=n, tokens=d, level=level)
        for pred, act in zip(preds, actual):
            lower, upper = pred["lower"], pred["upper"]
            cases.append({
                "factor": k,
                "fit_max_compute": fit.max_compute,
                "compute": pred["compute"],
                "params": pred["params"],
                "tokens": pred["tokens"],
                "extrapolation": pred["extrapolation"],
                "predicted": pred["loss"],
                "actual": float(act),
                "rel_error": (pred["loss"] - act) / act,
                "lower": lower,
                "upper": upper,
                "covered": None if lower is None else bool(lower <= act <= upper),
            })
    if not cases:
        reasons = "; ".join(f"k={s['factor']:g}: {s['reason']}" for s in skipped)
        raise InputError(f"{', '.join(table.sources)}: no backtest possible ({reasons})")
    errs = np.array([abs(c["rel_error"]) for c in cases])
    cov = [c["covered"] for c in cases if c["covered"] is not None]
    by_factor = []
    for k in sorted({c["factor"] for c in cases}):
        cs = [c for c in cases if c["factor"] == k]
        cv = [c["covered"] for c in cs if c["covered"] is not None]
        by_factor.append({"factor": k, "n": len(cs), "mape": float(np.mean([abs(c["rel_error"]) for c in cs])),
                          "max_abs_error": float(np.max([abs(c["rel_error"]) for c in cs])),
                          "coverage": float(np.mean(cv)) if cv else None})
    return {
        "law": "auto" if auto else law.name,
        "level": level,
        "cases": cases,
        "mape": float(errs.mean()),
        "coverage": float(np.mean(cov)) if cov else None,
        "by_factor": by_factor,
        "fits": fits,
        "skipped": skipped,
    }
