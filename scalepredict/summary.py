"""The text the commands print: any fit in a few lines (`describe`, whatever its kind: the fit commands and a
sweep's pipeline), and tables of predictions (predict and a sweep's pipeline). Numbers are written by textfmt.num."""

from __future__ import annotations

import numpy as np

from . import defaults
from .runs import CONVENTIONS
from .textfmt import num


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


def describe(fit) -> list[str]:
    """Any fit in a few lines: a law's parameters, a law average's members, a task or pass-rate fit."""
    return DESCRIBE[fit.kind](fit)


def average_lines(avg) -> list[str]:
    """A law average: its members with their weights and nested scores, then each member's own lines."""
    lines = [f"law: auto, the weighted average of {len(avg.members)} laws' log predictions; weights from a nested "
             f"backtest inside the fitted range (mean |log error| on the held-out largest groups):"]
    for m in avg.members:
        sc = "-" if m.score is None else f"{m.score:.2%}"
        lines.append(f"  {m.name:<40} weight {m.weight:.2f}  nested score {sc}")
    for m in avg.members:
        lines += [""] + fit_lines(m.fit)
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
        value = num(p.value) + (" (fixed)" if p.min == p.max else " (at bound)" if p.at_bound else "")
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


def passrate_lines(fit, preds: list[dict], header: bool = True) -> list[str]:
    """A pass-rate fit and its predictions: the law, the models and problems kept, each target's metric with its
    interval and the pass rate it implies."""
    lines = []
    if header:
        lines += [f"law: -mean log pass_rate = alpha * C^(-k)   (GPT-4; {len(fit.models)} models, "
                  f"{len(fit.problems)} problems kept of {len(fit.problems) + len(fit.dropped)})",
                  f"alpha = {num(fit.alpha)}, k = {num(fit.k)}"
                  + (f" (90% bootstrap [{num(np.quantile(fit.boot[:, 1], 0.05))}, "
                     f"{num(np.quantile(fit.boot[:, 1], 0.95))}])" if len(fit.boot) else ""),
                  f"{'model':<24} {'compute':>10} {'-mean log pass':>15} {'fitted':>9}"]
        for m, c, v in zip(fit.models, fit.compute, fit.metric):
            lines.append(f"{m[:24]:<24} {num(c):>10} {num(v):>15} {num(float(fit.value(c))):>9}")
    if preds:
        lvl = int(round(preds[0]["level"] * 100))
        lines.append(f"{'compute':>11} {'-mean log pass':>15}  {lvl}% interval{'':10} {'mean pass rate':>14}  "
                     f"{lvl}% interval     extrapolation")
        for p in preds:
            lines.append(f"{num(p['compute']):>11} {num(p['metric']):>15}  "
                         f"{'[' + num(p['lower']) + ', ' + num(p['upper']) + ']':<22} {p['mean_pass_rate']:>14.3f}  "
                         f"[{p['mean_pass_rate_lower']:.3f}, {p['mean_pass_rate_upper']:.3f}]   "
                         f"{p['extrapolation']:,.3g}x")
    return lines


def task_lines(tf, preds: list[dict]) -> list[str]:
    """A task fit: step 1's law, each metric's step-2 forms with their weights, and the predictions."""
    lines = [f"step 1: {name} by the {s1.name} law ({s1.n_points} points)" for name, s1 in tf.steps1.items()]
    lines.append(f"step 2: {'metric':<36} {'runs':>4}  form (weight)")
    for m in tf.metrics:
        forms = ", ".join(f"{l.form} ({w:.2f}; residual {l.sigma:.3f})" for l, w in zip(m.links, m.weights))
        lines.append(f"        {m.name[:36]:<36} {len(m.runs):>4}  {forms}")
    for d in tf.left_out:
        lines.append(f"        {d['metric'][:36]:<36}    -  left out: {d['reason']}")
    if preds:
        lines += [""] + task_prediction_lines(tf, preds)
    return lines


def task_prediction_lines(tf, preds: list[dict]) -> list[str]:
    lvl = int(round(preds[0]["level"] * 100)) if preds else 90
    lines = [f"{'compute':>10} {'task loss':>9} {'metric':<32} {'two-step':>8}  {lvl}% interval{'':6} {'direct':>7}"]
    for p in preds:
        d = p.get("direct")
        lines.append(f"{num(p['compute']):>10} {num(p['task_loss']):>9} {p['metric'][:32]:<32} {p['value']:>8.4f}  "
                     f"[{p['lower']:.4f}, {p['upper']:.4f}]  {'' if d is None else format(d['value'], '.4f'):>7}")
    return lines


def backtest_lines(result: dict) -> list[str]:
    """A backtest's cases, one line each, and its mean error and coverage."""
    level = result["level"]
    lines = [f"{'k':>6} {'fit up to':>10} {'compute':>10} {'predicted':>9} {'actual':>8} {'error':>7}  "
             f"{int(round(level * 100))}% interval"]
    for c in result["cases"]:
        band = f"[{num(c['lower'])}, {num(c['upper'])}]" if c["lower"] is not None else "-"
        mark = "" if c["covered"] is None else ("ok" if c["covered"] else "MISS")
        lines.append(f"{c['factor']:>6g} {num(c['fit_max_compute']):>10} {num(c['compute']):>10} "
                     f"{num(c['predicted']):>9} {num(c['actual']):>8} {c['rel_error'] * 100:>+6.2f}%  {band} {mark}")
    cov = result["coverage"]
    lines.append(f"mean absolute relative error {result['mape'] * 100:.2f}%; interval coverage "
                 f"{'-' if cov is None else f'{cov * 100:.0f}%'} ({len(result['cases'])} cases)")
    return lines


DESCRIBE = {"law": fit_lines, "average": average_lines, "tasks": lambda tf: task_lines(tf, []),
            "passrate": lambda pr: passrate_lines(pr, [])}
PREDICTION_LINES = {"law": lambda fit, preds: prediction_lines(preds),
                    "average": lambda fit, preds: prediction_lines(preds),
                    "tasks": task_prediction_lines,
                    "passrate": lambda fit, preds: passrate_lines(fit, preds, header=False)}
