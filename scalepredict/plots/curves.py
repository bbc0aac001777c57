"""The figure of a forecast: each run's loss curve (the points fitted, and those left out), the fitted law of the
curve carried to the step asked for under the run's schedule, the forecast with its interval, and the same run
under another schedule where one was asked for."""

from __future__ import annotations

import numpy as np

from .style import ACCENT, INK, LIGHT, MID, pyplot, save


def _or_nan(x):
    return np.nan if x is None else x


def _yerr(p):
    """An error bar from a prediction's interval; none where it has no interval."""
    return None if p["lower"] is None else [[p["loss"] - p["lower"]], [p["upper"] - p["loss"]]]


def forecast_figure(results: list[dict], path, level: float = 0.9) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    for i, r in enumerate(results):
        fit, sched, seg = r["_fit"], r["_schedule"], r["_segment"]
        grid = np.unique(np.geomspace(max(1, int(seg.steps[0])), r["step"], 160).astype(int))
        band = fit.predict(sched.lr, grid, level)
        shade = str(0.1 + 0.5 * i / max(1, len(results) - 1))
        ax.fill_between(grid, [_or_nan(b["lower"]) for b in band], [_or_nan(b["upper"]) for b in band], color=LIGHT,
                        alpha=0.6, lw=0)
        ax.plot(grid, [b["loss"] for b in band], color=shade, lw=1.3, label=f"{r['run']}: {fit.law_name} law")
        ax.plot(seg.steps, seg.loss, "o", ms=3, color=ACCENT, mec="white", mew=0.4)
        ax.errorbar([r["step"]], [r["loss"]], yerr=_yerr(r), fmt="D",
                    ms=5, color=INK, mfc="white", capsize=3, zorder=6, label="forecast" if i == 0 else None)
        text = f"{r['loss']:.4f}" + ("" if r["lower"] is None else f"\n[{r['lower']:.4f}, {r['upper']:.4f}]")
        ax.annotate(text, (r["step"], r["upper"] or r["loss"]),
                    textcoords="offset points", xytext=(0, 5), ha="center", va="bottom", fontsize=7, color=INK)
        if "what_if" in r:
            w = r["what_if"]
            ax.errorbar([w["step"]], [w["loss"]], yerr=_yerr(w),
                        fmt="s", ms=5, color=MID, mfc="white", capsize=3, zorder=6,
                        label=f"what if: {w['schedule']}" if i == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{results[0]['metric']} (the loss forecast)")
    ax.set_title(f"forecast of each run's loss at its last step ({level:.0%} interval)")
    ax.legend(fontsize=7)
    save(fig, path)
