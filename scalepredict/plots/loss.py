"""Figures of a loss fit: the prediction (loss against compute, the law, its interval, the targets, residuals), the
IsoFLOP sets, the compute-optimal allocation, a backtest, and a sweep's training curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import defaults
from ..core.laws import optimal_allocation
from ..errors import InputError
from ..files import SweepFolder
from ..frontier import frontier, isoflop_groups
from .style import ACCENT, INK, LIGHT, MID, finite, pyplot, save


def _loss_label(fit_or_kind="nats/token"):
    return f"final loss ({fit_or_kind})"


def _fmt_params(fit) -> str:
    if len(fit.members) > 1:  # --law auto: the laws averaged
        return "average of " + ", ".join(m.law for m in fit.members)
    parts = []
    for name, v, s in zip(fit.law.names, fit.values, fit.stderr):
        parts.append(f"{name}={v:.4g}" + (" (at bound)" if name in fit.at_bound
                                          else f"±{s:.2g}" if np.isfinite(s) else ""))
    return ", ".join(parts)


def prediction_figure(fit, path, targets=None, held_out=None, level: float = defaults.LEVEL, unit: str = "nats/token"):
    """Loss against compute: fitted points, held-out points, the law extended to the targets with its interval
    shaded, each target labelled with its prediction; a residual panel below."""
    plt = pyplot()
    targets = sorted(targets or [])
    d = fit.data
    x_lo = d.compute.min() / 2
    x_hi = max([fit.max_compute * 2] + [t * 2 for t in targets] + [p["compute"] * 1.5 for p in (held_out or [])])
    grid = np.geomspace(x_lo, x_hi, 200)
    band = fit.predict(compute=grid, level=level)  # chinchilla fits: along the compute-optimal split
    mid = np.array([p["loss"] for p in band])
    lo = np.array([p["lower"] if p["lower"] else np.nan for p in band])
    hi = np.array([p["upper"] if p["upper"] else np.nan for p in band])

    fig, (ax, axr) = plt.subplots(2, 1, figsize=(7.0, 5.6), sharex=True, gridspec_kw={"height_ratios": [3.2, 1]})
    ax.fill_between(grid, lo, hi, color=LIGHT, alpha=0.8, lw=0, label=f"{level:.0%} prediction interval")
    inside = grid <= fit.max_compute
    ax.plot(grid[inside], mid[inside], color=INK, lw=1.4, label=f"fit: {fit.formula}")
    ax.plot(grid[~inside], mid[~inside], color=INK, lw=1.4, ls="--", label="extrapolation")
    ax.plot(d.compute, d.loss, "o", ms=5, color=ACCENT, mec="white", mew=0.6, zorder=5,
            label=f"fitted ({fit.n_points} {'frontier points' if d.frontier is not None else 'runs'})")
    if held_out:
        hx = [p["compute"] for p in held_out]
        hy = [p["loss"] for p in held_out]
        ax.plot(hx, hy, "s", ms=5.5, mfc="white", mec=INK, mew=1.2, zorder=6, label="held out (not fitted)")
    preds = fit.predict(compute=targets, level=level) if targets else []
    for i, p in enumerate(preds):
        err = None
        if p["lower"] is not None:
            err = [[p["loss"] - p["lower"]], [p["upper"] - p["loss"]]]
        ax.errorbar([p["compute"]], [p["loss"]], yerr=err, fmt="D", ms=5, color=INK, mfc="white", capsize=3,
                    zorder=7, label="target" if i == 0 else None)
        txt = f"{p['loss']:.3f}" + (f"\n[{p['lower']:.3f}, {p['upper']:.3f}]" if p["lower"] is not None else "")
        ax.annotate(txt, (p["compute"], p["upper"] or p["loss"]), textcoords="offset points",
                    xytext=(0, 6 + 12 * (i % 2)), ha="center", va="bottom", fontsize=7, color=INK)
    ax.set_xscale("log")
    ax.set_ylabel(_loss_label(unit))
    ax.set_title(f"{fit.name} law: {_fmt_params(fit)}", fontsize=8.5, color=INK)
    ax.legend(loc="upper right", ncol=1)
    ymin = np.nanmin(np.concatenate([lo, d.loss])) * 0.97
    ymax = np.nanmax(np.concatenate([hi[inside], d.loss])) * 1.03
    ax.set_ylim(ymin, ymax)
    # residuals, in percent of the observed loss
    res = (np.exp(fit.residuals) - 1) * 100
    axr.axhline(0, color=MID, lw=0.8)
    axr.plot(d.compute, res, "o", ms=4, color=ACCENT, mec="white", mew=0.5)
    if held_out:
        hres = [(fit.predict(compute=p["compute"])[0]["loss"] / p["loss"] - 1) * 100 for p in held_out]
        axr.plot([p["compute"] for p in held_out], hres, "s", ms=4.5, mfc="white", mec=INK, mew=1.0)
    axr.set_ylabel("fit − observed (%)")
    axr.set_xlabel("training compute (FLOPs)")
    fig.align_ylabels()
    save(fig, path)


def isoflop_figure(table, path, unit: str = "nats/token", added=()):
    """Loss against parameters for each IsoFLOP set, with the parabola in log N and its vertex. Runs named in
    `added` (those a sweep's bracketing trained beyond a set's edge) are drawn hollow."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    groups = [g for g in isoflop_groups(table) if len(g) >= 2]
    if not groups or not np.all(np.isfinite(table.params)):
        raise InputError("IsoFLOP figure needs runs with params and several sizes per budget")
    shades = np.linspace(0.15, 0.75, len(groups))
    markers = "os^vD<>ph*"
    for k, (g, shade) in enumerate(zip(groups, shades)):
        g = np.array(g)
        n, l = table.params[g], table.loss[g]
        c = str(shade)
        new = np.array([table.names[i] in added for i in g], dtype=bool)
        ax.plot(n[~new], l[~new], markers[k % len(markers)], ms=4, color=c, mec=INK, mew=0.3,
                label=f"{np.exp(np.mean(np.log(table.compute[g]))):.2g}")
        if new.any():
            ax.plot(n[new], l[new], markers[k % len(markers)], ms=5, mfc="none", mec=INK, mew=0.8)
        if len(np.unique(n)) >= 3:
            p = np.polyfit(np.log(n), l, 2)
            xs = np.geomspace(n.min() / 1.2, n.max() * 1.2, 50)
            ax.plot(xs, np.polyval(p, np.log(xs)), color=c, lw=1)
    pts = [p for p in frontier(table, pareto=False) if p.method == "vertex"]
    if pts:
        ax.plot([p.params for p in pts], [p.loss for p in pts], "*", ms=9, color=ACCENT, mec=INK, mew=0.4,
                label="optimum (vertex)")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N (non-embedding)")
    ax.set_ylabel(_loss_label(unit))
    if any(name in added for name in table.names):
        ax.plot([], [], "o", ms=5, mfc="none", mec=INK, mew=0.8, label="added by bracketing")
    ax.set_title("IsoFLOP sets: loss against model size at fixed compute (FLOPs)")
    ax.legend(title="budget (FLOPs)", ncol=2, fontsize=7)
    save(fig, path)


def optimal_figure(chin_fit, path, targets=None, table=None):
    """Compute-optimal N* and D* against compute from a chinchilla fit, extended to the targets."""
    plt = pyplot()
    targets = sorted(targets or [])
    c_lo = chin_fit.data.compute.min()
    c_hi = max([chin_fit.max_compute] + targets) * 2
    C = np.geomspace(c_lo, c_hi, 100)
    n, d = optimal_allocation(chin_fit.values, C)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    inside = C <= chin_fit.max_compute
    for y, lab, ls in ((n, "N* (parameters)", "-"), (d, "D* (tokens)", "-.")):
        ax.plot(C[inside], y[inside], color=INK, ls=ls, lw=1.4, label=lab)
        ax.plot(C[~inside], y[~inside], color=MID, ls=":", lw=1.4)
    if chin_fit.bootstrap is not None:
        nb, db = optimal_allocation(chin_fit.bootstrap[:, None, :], C[None, :])
        for arr in (nb, db):
            lo, hi = np.nanquantile(arr, [0.05, 0.95], axis=0)
            ax.fill_between(C, lo, hi, color=LIGHT, alpha=0.7, lw=0)
    if table is not None and np.all(np.isfinite(table.params)):
        pts = [p for p in frontier(table, pareto=False) if p.method == "vertex"]
        ax.plot([p.compute for p in pts], [p.params for p in pts], "o", ms=4, color=ACCENT, label="IsoFLOP vertices")
    for t in targets:
        ax.axvline(t, color=LIGHT, lw=0.8)
    a = chin_fit.value("beta") / (chin_fit.value("alpha") + chin_fit.value("beta"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("parameters / tokens")
    ax.set_title(f"compute-optimal allocation: N* ∝ C^{a:.2f}, D* ∝ C^{1 - a:.2f} (90% bootstrap band)")
    ax.legend()
    save(fig, path)


def backtest_figure(result: dict, path):
    """Relative error of held-out predictions against the extrapolation distance, with interval bars."""
    plt = pyplot()
    cases = result["cases"]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    markers = "osD^v"
    factors = sorted({c["factor"] for c in cases})
    for k, factor in enumerate(factors):
        gray = str(round(0.05 + 0.6 * k / max(1, len(factors) - 1), 3))
        cs = [c for c in cases if c["factor"] == factor]
        x = [c["compute"] / c["fit_max_compute"] for c in cs]
        y = [c["rel_error"] * 100 for c in cs]
        lo = [(c["predicted"] - c["lower"]) / c["actual"] * 100 if c["lower"] else 0 for c in cs]
        hi = [(c["upper"] - c["predicted"]) / c["actual"] * 100 if c["upper"] else 0 for c in cs]
        ax.errorbar(x, y, yerr=[lo, hi], fmt=markers[k % len(markers)], ms=4, capsize=2, lw=0.8,
                    color=gray, mfc="white" if k % 2 else gray,
                    label=f"fit on C ≤ C_max/{factor:g}")
    ax.axhline(0, color=MID, lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("extrapolation (target compute / largest fitted compute)")
    ax.set_ylabel("prediction − actual (% of actual)")
    cov = result.get("coverage")
    ax.set_title(f"backtest: mean |error| {result['mape'] * 100:.2f}%"
                 + (f", {result['level']:.0%} intervals cover {cov:.0%}" if cov is not None else ""))
    ax.legend()
    save(fig, path)


def _log_rows(path: Path) -> list[dict]:
    """The rows of a run's log.jsonl; a torn last line (a run still writing) is passed over, any other bad line is
    an InputError naming it."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines):
                break
            raise InputError(f"{path}, line {i}: not valid JSON") from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def curves_figure(sweep_dir, path, budgets: dict | None = None, max_runs: int = 60, smooth: float = 0.9):
    """Training curves of a sweep's runs from runs/<id>/log.jsonl: the train loss against tokens, smoothed by a
    bias-corrected exponential moving average (`smooth`, 0 for raw; a small run's per-step loss is mostly batch
    noise), shaded by `budgets` (run id -> planned budget), with each run's final validation loss as a dot. The y
    range leaves out the first warmup transient so that the ends of the runs, which the fit uses, can be read."""
    plt = pyplot()
    folder = SweepFolder(Path(sweep_dir))
    budgets = budgets or {}
    order = {b: i for i, b in enumerate(sorted(set(budgets.values())))}

    def budget_of(p):  # run folders are named by their run ids; their budget position on the ladder
        return order.get(budgets.get(p.parent.name), 0)

    logs = sorted(folder.runs_dir.glob("*/log.jsonl"), key=lambda p: (budget_of(p), p.parent.name))
    if not logs:
        raise InputError(f"{folder.path}: no runs/*/log.jsonl to draw")
    if len(logs) > max_runs:  # keep the budgets' spread: every k-th run
        logs = logs[:: math.ceil(len(logs) / max_runs)]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    last = max(budget_of(p) for p in logs)
    shown = []
    for p in logs:
        rows = _log_rows(p)
        tr = [(r["tokens"], r["train_loss"]) for r in rows if finite(r.get("train_loss")) and finite(r.get("tokens"))]
        va = [(r["tokens"], r["val_loss"]) for r in rows if finite(r.get("val_loss")) and finite(r.get("tokens"))]
        color = str(0.1 + 0.6 * budget_of(p) / max(1, last))
        if tr:
            x, y = map(np.asarray, zip(*tr))
            if smooth:
                ema, w, out = 0.0, 0.0, np.empty_like(y)
                for i, v in enumerate(y):
                    ema, w = smooth * ema + (1 - smooth) * v, smooth * w + (1 - smooth)
                    out[i] = ema / w
                y = out
            ax.plot(x, y, color=color, lw=0.8)
            shown.append(y[len(y) // 10:])
        if va:
            ax.plot(*zip(*va), "o", ms=3, color=ACCENT)
            shown.append(np.array([v for _, v in va]))
    if shown:
        values = np.concatenate(shown)
        lo, hi = values.min(), np.percentile(values, 99.5)
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    ax.set_xscale("log")
    ax.set_xlabel("tokens")
    ax.set_ylabel("train loss (nats/token); dots: final validation loss")
    what = f"EMA {smooth:g} of the " if smooth else ""
    ax.set_title(f"training curves ({what}train loss; darker: smaller budget)", fontsize=10)
    save(fig, path)


