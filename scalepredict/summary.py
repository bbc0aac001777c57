"""The text the commands print: the number format of every console table, a fit in a few lines (the fit command
and a sweep's end step), and a table of predictions (predict and a sweep's end step)."""

from __future__ import annotations

import math

from . import defaults
from .runs import CONVENTIONS


def num(x, digits=4) -> str:
    """The number format of every console table."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def prediction_lines(preds: list[dict]) -> list[str]:
    """The predictions as the `predict` command and a sweep's end step print them: target compute, its params and
    tokens (the compute-optimal N* and D* where a sweep found them), the loss, its interval, the extrapolation."""
    optimal = any(p.get("optimal_params") for p in preds)
    level = preds[0]["level"] if preds else defaults.LEVEL
    n_head, d_head = ("N*", "D*") if optimal else ("params", "tokens")
    lines = [f"{'compute':>11} {n_head:>10} {d_head:>10} {'loss':>8}  {int(round(level * 100))}% interval"
             f"{'':8} extrapolation"]
    for p in preds:
        n, d = (p.get("optimal_params"), p.get("optimal_tokens")) if optimal else (p["params"], p["tokens"])
        band = f"[{num(p['lower'])}, {num(p['upper'])}]" if p["lower"] is not None else "(not computable)"
        lines.append(f"{num(p['compute']):>11} {num(n):>10} {num(d):>10} {num(p['loss']):>8}  {band:<21} "
                     f"{p['extrapolation']:,.3g}x")
    return lines


def fit_lines(fit) -> list[str]:
    """The fit in a few lines: law, points, convergence, the parameter table with bootstrap bands, the compute
    range and its convention, the residual scale and the seed-to-seed scatter."""
    kind = "frontier points" if fit.data.frontier is not None else "points"
    lines = [f"law: {fit.law.formula}   ({fit.law.name}; {fit.n_points} {kind}; "
             f"{'converged' if fit.converged else 'NOT converged'})",
             f"{'param':>8} {'value':>12} {'stderr':>10}  90% bootstrap"]
    for p in fit.params.values():
        band = f"[{num(p.quantiles['0.05'])}, {num(p.quantiles['0.95'])}]" if p.quantiles else "-"
        value = num(p.value) + (" (at bound)" if p.at_bound else "")
        lines.append(f"{p.name:>8} {value:>12} {num(p.stderr):>10}  {band}")
    conv = f" ({fit.compute_convention}: {CONVENTIONS[fit.compute_convention]})" \
        if fit.compute_convention in CONVENTIONS else ""
    lines.append(f"compute range {num(fit.data.compute.min())} .. {num(fit.max_compute)} FLOPs{conv}; "
                 f"residual scale {num(fit.noise_sigma)} (log loss)")
    if fit.seed_noise:
        sn = fit.seed_noise
        each = "; ".join(f"{g['sigma']:.2%} over {g['seeds']} seeds at {g['compute']:.3g} FLOPs"
                         for g in sn.get("each", []))
        lines.append(f"seed-to-seed scatter {num(sn['sigma'])} (log loss, {sn['dof']} dof from {sn['groups']} "
                     f"repeated run(s){': ' + each if each else ''}): the floor of every interval's noise term")
    if fit.law.name == "chinchilla":
        a = fit.value("beta") / (fit.value("alpha") + fit.value("beta"))
        lines.append(f"compute-optimal: N* ~ C^{a:.3f}, D* ~ C^{1 - a:.3f}")
    return lines
