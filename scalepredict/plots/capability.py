"""Figures of a capability fit: a task fit's two steps side by side, and GPT-4's pass-rate law."""

from __future__ import annotations

import numpy as np

from .. import defaults
from ..errors import InputError
from .style import ACCENT, INK, LIGHT, MID, pyplot, save


def task_figure(tf, path, targets=None, metric: str | None = None, level: float = defaults.LEVEL, held_out=None,
                preds=None):
    """The two steps side by side for one metric: the task loss against compute (the runs, step 1's law, the
    targets with their intervals), and the metric against the task loss (the runs, step 2's forms, their weighted
    mean, the targets at their predicted loss with both intervals). `held_out`: [(compute, loss, value)] drawn
    hollow, e.g. the true larger runs of a backtest. `preds`: prediction rows to draw instead of predicting at the
    `targets` (e.g. targets given as params and tokens)."""
    plt = pyplot()
    m = next((x for x in tf.metrics if x.name == metric), None) if metric else tf.metrics[0]
    if m is None:
        raise InputError(f"--metric {metric}: not in this fit (metrics: {', '.join(x.name for x in tf.metrics)})")
    targets = sorted(targets or [])
    if preds is None:
        preds = tf.predict(compute=targets, level=level) if targets else []
    preds = [p for p in preds if p["metric"] == m.name]
    targets = sorted(targets + [p["compute"] for p in preds])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    # step 1
    hi_c = max([float(np.max(m.compute)) * 2] + [t * 1.5 for t in targets])
    grid = np.geomspace(float(np.min(m.compute)) / 1.5, hi_c, 120)
    step1 = tf.step1_of(m)
    band = step1.predict(compute=grid, level=level)
    mid = np.array([p["loss"] for p in band])
    lo = np.array([p["lower"] or np.nan for p in band])
    hi = np.array([p["upper"] or np.nan for p in band])
    a1.fill_between(grid, lo, hi, color=LIGHT, alpha=0.8, lw=0, label=f"{level:.0%} interval")
    a1.plot(grid, mid, color=INK, lw=1.3, label=f"step 1: {step1.name} law")
    a1.plot(m.compute, m.loss, "o", ms=4.5, color=ACCENT, mec="white", mew=0.5, label=f"runs ({len(m.runs)})")
    for i, p in enumerate(preds):
        a1.errorbar([p["compute"]], [p["task_loss"]], yerr=[[p["task_loss"] - p["task_loss_lower"]],
                                                            [p["task_loss_upper"] - p["task_loss"]]],
                    fmt="D", ms=5, color=INK, mfc="white", capsize=3, zorder=6, label="target" if i == 0 else None)
    a1.set_xscale("log")
    a1.set_xlabel("training compute (FLOPs)")
    a1.set_ylabel(f"task loss ({m.task_loss})")
    # step 2
    lo_l = min([float(np.min(m.loss))] + [p["task_loss_lower"] for p in preds])
    hi_l = float(np.max(m.loss))
    lg = np.linspace(lo_l - 0.05 * (hi_l - lo_l), hi_l, 200)
    for l, w in zip(m.links, m.weights):
        a2.plot(lg, m.as_metric(l(lg)), lw=0.9, ls=":", color=MID, label=f"{l.form} (weight {w:.2f})")
    a2.plot(lg, m.as_metric(m.accuracy(lg)), lw=1.5, color=INK, label="step 2 (weighted)")
    a2.plot(m.loss, m.as_metric(m.acc), "o", ms=4.5, color=ACCENT, mec="white", mew=0.5, label="runs")
    if m.chance is not None:
        a2.axhline(float(m.as_metric(m.chance)), color=MID, lw=0.8, ls="--", label="chance")
    for i, p in enumerate(preds):
        a2.errorbar([p["task_loss"]], [p["value"]], yerr=[[p["value"] - p["lower"]], [p["upper"] - p["value"]]],
                    xerr=[[p["task_loss"] - p["task_loss_lower"]], [p["task_loss_upper"] - p["task_loss"]]],
                    fmt="D", ms=5, color=INK, mfc="white", capsize=3, zorder=6, label="target" if i == 0 else None)
        if len(preds) <= 2:  # more labels would overlap
            a2.annotate(f"{p['value']:.3f}\n[{p['lower']:.3f}, {p['upper']:.3f}]", (p["task_loss"], p["upper"]),
                        textcoords="offset points", xytext=(0, 5), ha="center", va="bottom", fontsize=7, color=INK)
    for i, (c, loss, v) in enumerate(held_out or []):
        label = "true (held out)" if i == 0 else None
        a1.plot([c], [loss], "s", ms=5, mfc="white", mec=ACCENT, mew=1.1, zorder=7, label=label)
        a2.plot([loss], [v], "s", ms=5, mfc="white", mec=ACCENT, mew=1.1, zorder=7, label=label)
    a1.legend(loc="upper right")
    a2.set_xlabel(f"task loss ({m.task_loss})")
    a2.set_ylabel(m.name + (" (error)" if m.kind == "error" else " (accuracy)"))
    a2.legend(loc="best")
    fig.suptitle(f"{m.name}: two-step prediction", fontsize=9, color=INK)
    fig.tight_layout()
    save(fig, path)


def passrate_figure(fit, path, targets=None, level: float = defaults.LEVEL):
    """GPT-4's pass-rate law: -mean log pass rate against compute on log axes (the models, the law, the targets
    with their intervals), and the per-problem pass rates implied at the largest target against those of the
    largest fitted model."""
    plt = pyplot()
    targets = sorted(targets or [])
    preds = fit.predict(targets, level=level) if targets else []
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    hi_c = max([float(np.max(fit.compute)) * 2] + [t * 1.5 for t in targets])
    grid = np.geomspace(float(np.min(fit.compute)) / 1.5, hi_c, 100)
    a1.plot(grid, fit.value(grid), color=INK, lw=1.3, label=f"alpha·C^-k: alpha={fit.alpha:.3g}, k={fit.k:.3g}")
    a1.plot(fit.compute, fit.metric, "o", ms=5, color=ACCENT, mec="white", mew=0.5,
            label=f"models ({len(fit.models)}; {len(fit.problems)} problems)")
    for i, p in enumerate(preds):
        a1.errorbar([p["compute"]], [p["metric"]], yerr=[[p["metric"] - p["lower"]], [p["upper"] - p["metric"]]],
                    fmt="D", ms=5, color=INK, mfc="white", capsize=3, label="target" if i == 0 else None)
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("training compute (FLOPs)")
    a1.set_ylabel("-mean log pass rate")
    a1.legend(loc="upper right")
    last = np.exp(-fit.problem_alpha * float(np.max(fit.compute)) ** (-fit.k))
    if preds:
        far = np.array([preds[-1]["problems"][p] for p in fit.problems])
        a2.plot(last, far, "o", ms=4, color=ACCENT, mec="white", mew=0.4)
        a2.plot([0, 1], [0, 1], color=MID, lw=0.8, ls="--")
        a2.set_xlabel("pass rate, largest fitted model (fitted)")
        a2.set_ylabel(f"pass rate implied at {preds[-1]['compute']:.3g} FLOPs")
    else:
        a2.hist(last, bins=20, color=ACCENT)
        a2.set_xlabel("pass rate per problem, largest fitted model (fitted)")
    fig.tight_layout()
    save(fig, path)


