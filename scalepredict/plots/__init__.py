"""Figures for planning reviews, one module per kind of fit (loss.py, capability.py), in one style (style.py);
`FIGURES` draws any fit's own figure, whatever its kind (`plot FIT`)."""

from __future__ import annotations

from .. import defaults
from .capability import passrate_figure, task_figure
from .curves import forecast_figure
from .loss import _fmt_params, backtest_figure, curves_figure, isoflop_figure, optimal_figure, prediction_figure

__all__ = ["FIGURES", "backtest_figure", "curves_figure", "forecast_figure", "isoflop_figure", "optimal_figure", "passrate_figure",
           "prediction_figure", "task_figure", "_fmt_params"]


def _loss_figure(fit, path, targets=None, held_out=None, level=defaults.LEVEL, **_):
    prediction_figure(fit, path, targets=targets, held_out=held_out, level=level)


# the figure of each kind of fit (`plot FIT`)
FIGURES = {"law": _loss_figure, "average": _loss_figure,
           "tasks": lambda fit, path, targets=None, level=defaults.LEVEL, metric=None, **_:
           task_figure(fit, path, targets=targets, metric=metric, level=level),
           "passrate": lambda fit, path, targets=None, level=defaults.LEVEL, **_:
           passrate_figure(fit, path, targets=targets, level=level)}
