"""Backtests: refit on the runs below C_max/k, predict the held-out larger ones, score error and coverage.

This is how a fit earns trust (the GPT-4 report's method; docs/fitting.md): the same procedure that will extrapolate to the target is
made to extrapolate to runs we already have.
"""

from __future__ import annotations

import numpy as np

from .. import defaults
from ..errors import InputError
from ..frontier import frontier, group_compute, isoflop_groups
from ..runs import RunTable
from .checkpointrows import finals, with_checkpoints
from .ensemble import score_targets
from .fit import fit_law
from .laws import get_law


def _targets(table: RunTable, points: str):
    """(the compute each run is held out by, the targets as (compute, loss, params, tokens)): for "frontier" the
    full table's frontier points and "best" each IsoFLOP group's best run (or every run of a ladder: what a law
    average is scored on), both holding out whole groups; for "runs" every run at its own compute."""
    if points == "runs":
        return table.compute, list(zip(table.compute, table.loss, table.params, table.tokens))
    run_compute = np.empty(len(table))
    for g in isoflop_groups(table):
        run_compute[g] = group_compute(table, g)
    if points == "frontier":
        return run_compute, [(p.compute, p.loss, p.params, p.tokens) for p in frontier(table)]
    idx = score_targets(table)
    c = run_compute[idx] if len(idx) < len(table) else table.compute[idx]
    return run_compute, list(zip(c, table.loss[idx], table.params[idx], table.tokens[idx]))


def backtest(table: RunTable, law="compute", factors=defaults.BACKTEST_FACTORS, level: float = defaults.LEVEL,
             **fit_kws) -> dict:
    """For each k in `factors`: `law` refitted on the runs at or below C_max / k, its predictions of the larger
    runs scored (relative error, interval coverage). Checkpoint rows (checkpointrows.py) are never targets, and
    are fitted only with the run they came from."""
    if law == "auto":
        name, points = "auto", "best"
    else:
        law = get_law(law) if isinstance(law, str) else law
        name, points = law.name, ("runs" if fit_kws.get("all_points") else law.points)
    fin = finals(table)
    run_compute, targets = _targets(fin, points)
    c_max = float(np.max(run_compute))
    cases, skipped, fits = [], [], []
    for k in factors:
        if not k > 1:
            raise InputError(f"--factors: each factor must be > 1, got {k:g}")
        threshold = c_max / k
        mask = run_compute <= threshold * (1 + 1e-9)
        held = [t for t in targets if t[0] > threshold * (1 + 1e-9)]
        if mask.sum() == 0 or not held:
            skipped.append({"factor": k, "reason": "no runs below C_max/k"})
            continue
        try:
            fit = fit_law(table.subset(with_checkpoints(table, mask)), law, **fit_kws)
        except InputError as e:
            skipped.append({"factor": k, "reason": str(e).split(": ", 1)[-1]})
            continue
        fits.append({"factor": k, "n_points": fit.n_points, "warnings": fit.warnings,
                     "params": {m.name: dict(zip(m.fit.law.names, map(float, m.fit.values))) for m in fit.members}})
        c, actual, n, d = (np.array(v, dtype=float) for v in zip(*held))
        nd = points != "frontier" and np.all(np.isfinite(n) & np.isfinite(d))
        preds = fit.predict(compute=c, params=n if nd else None, tokens=d if nd else None, level=level)
        cases += [_case(k, fit, pred, act) for pred, act in zip(preds, actual)]
    if not cases:
        reasons = "; ".join(f"k={s['factor']:g}: {s['reason']}" for s in skipped)
        raise InputError(f"{', '.join(table.sources)}: no backtest possible ({reasons})")
    return summarize(cases, name, level, fits, skipped)


def _case(k, fit, pred, actual) -> dict:
    lower, upper = pred["lower"], pred["upper"]
    return {"factor": k, "fit_max_compute": fit.max_compute, "compute": pred["compute"], "params": pred["params"],
            "tokens": pred["tokens"], "extrapolation": pred["extrapolation"], "predicted": pred["loss"],
            "actual": float(actual), "rel_error": (pred["loss"] - actual) / actual, "lower": lower, "upper": upper,
            "covered": None if lower is None else bool(lower <= actual <= upper)}


def summarize(cases, law_name, level, fits=(), skipped=()) -> dict:
    """The backtest's result: every case, the mean absolute relative error and the coverage, overall and per k."""
    errs = np.array([abs(c["rel_error"]) for c in cases])
    cov = [c["covered"] for c in cases if c["covered"] is not None]
    by_factor = []
    for k in sorted({c["factor"] for c in cases}):
        cs = [c for c in cases if c["factor"] == k]
        cv = [c["covered"] for c in cs if c["covered"] is not None]
        by_factor.append({"factor": k, "n": len(cs), "mape": float(np.mean([abs(c["rel_error"]) for c in cs])),
                          "max_abs_error": float(np.max([abs(c["rel_error"]) for c in cs])),
                          "coverage": float(np.mean(cv)) if cv else None})
    return {"law": law_name, "level": level, "cases": cases, "mape": float(errs.mean()),
            "coverage": float(np.mean(cov)) if cov else None, "by_factor": by_factor, "fits": list(fits),
            "skipped": list(skipped)}
