"""The prediction interval of a fit at a target: the log-space spread of a new run's loss, in terms that are each
computed (and tested) on their own, then added in quadrature.

    sigma^2 = parameter^2 + noise^2 + model^2

- parameter: how far the fitted law itself could be off. The bootstrap over runs (quantiles of the refitted
  laws' predictions, asymmetric: a floor near its bound pulls one side only); the delta method (gradient x
  covariance x gradient, scaled by Student's t) where the bootstrap could not be run; and never less than the
  spread of the predictions of every law the floor's profile likelihood admits (profile_term).
- noise: how far a single new run scatters around the law: the larger of the residual scale of the fit
  (Student's t with the fit's degrees of freedom) and the seed-to-seed scatter of repeated runs (Student's t
  with their degrees of freedom): a few points leave the residual scale badly estimated, and the scatter of
  seeds is a floor no law can predict away.
- model: the law is only an approximation, and published extrapolations miss by more than their in-sample
  intervals say (Choshen et al. 2024; docs/fitting.md): a stated prior that grows with the decades of extrapolation beyond the
  largest fitted compute.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from .. import defaults

# Model-error prior, log-space standard deviation per decade of extrapolation beyond the largest fitted compute.
# Chosen so backtests of the Chinchilla frontier cover at least the nominal 90% (experiments/chinchilla_backtest.py
# prints the coverage per k) and checked not to over-cover well-specified synthetic data (benchmarks/coverage.py).
MODEL_ERROR_PER_DECADE = 0.003


def z_of(level: float) -> float:
    """The normal quantile of a two-sided `level` interval (1.645 at 90%)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def t_over_z(level: float, dof: int) -> float:
    """Student's t quantile over the normal one: how much wider an interval is whose scale was estimated with
    `dof` degrees of freedom."""
    from scipy.special import stdtrit  # imported here: scipy.stats alone takes longer to import than a whole fit

    return float(stdtrit(max(dof, 1), 0.5 + level / 2)) / z_of(level)


def bootstrap_term(log_predictions: np.ndarray, center: np.ndarray, level: float):
    """(lower, upper) standard deviations from the quantiles of bootstrap predictions (B, m) around `center`, or
    None where there are fewer than 20 replicas."""
    if log_predictions is None or len(log_predictions) < 20:
        return None
    q_lo, q_hi = np.nanquantile(log_predictions, [0.5 - level / 2, 0.5 + level / 2], axis=0)
    z = z_of(level)
    return np.maximum(center - q_lo, 0) / z, np.maximum(q_hi - center, 0) / z


def profile_term(log_predictions: np.ndarray | None, center: np.ndarray, level: float):
    """(lower, upper) standard deviations that reach the lowest and highest prediction (B, m) of the laws a floor's
    profile likelihood admits at `level` (fit.floor_profile), or None: where the data do not identify the floor,
    its whole admitted range is part of the parameter uncertainty."""
    if log_predictions is None or len(log_predictions) == 0:
        return None
    lp = np.where(np.isfinite(log_predictions), log_predictions, np.nan)
    if np.isnan(lp).all(axis=0).any():  # a target no admitted law predicts a finite loss at
        return None
    z = z_of(level)
    return (np.maximum(center - np.nanmin(lp, axis=0), 0) / z, np.maximum(np.nanmax(lp, axis=0) - center, 0) / z)


def delta_term(gradient: np.ndarray, covariance: np.ndarray | None, level: float, dof: int):
    """The delta method: sqrt(g C g) per target (gradient (m, p) of log loss in natural units), Student-t scaled;
    None where the covariance could not be computed."""
    if covariance is None:
        return None
    var = np.einsum("mi,ij,mj->m", gradient, covariance, gradient)
    return t_over_z(level, dof) * np.sqrt(np.maximum(var, 0))


def noise_term(m: int, level: float, noise_sigma: float | None, dof: int, seed_noise: dict | None) -> np.ndarray:
    """A new run's own scatter around the law: the residual scale, never below the seed-to-seed scatter."""
    noise = np.full(m, t_over_z(level, dof) * (noise_sigma or 0.0))
    if seed_noise and seed_noise.get("sigma"):
        noise = np.maximum(noise, t_over_z(level, seed_noise["dof"]) * seed_noise["sigma"])
    return noise


def model_term(compute, max_compute: float, per_decade: float = MODEL_ERROR_PER_DECADE) -> np.ndarray:
    """The model-error prior: `per_decade` for every decade beyond the largest fitted compute (0 inside)."""
    decades = np.maximum(0.0, np.log10(np.atleast_1d(np.asarray(compute, dtype=float)) / max_compute))
    return per_decade * decades


def residual_inflation(n: int, dof: int) -> float:
    """sqrt(n / dof): how much larger a new point's residual is than the fitted points' own, whose scatter the
    fitted parameters absorbed in part (the pass-rate law and the task links draw residuals scaled by it)."""
    return math.sqrt(n / max(dof, 1))


def split_normal_scales(center_log: float, lower, upper, level: float) -> tuple[float, float]:
    """The (lower, upper) log-space scales of a two-piece normal whose `level` interval is [lower, upper] around
    exp(center_log); 0 on a side without a bound. Predictions are read back as distributions this way (a task's
    step 1, the members of a law average)."""
    z = z_of(level)
    s_lo = (center_log - math.log(lower)) / z if lower is not None else 0.0
    s_hi = (math.log(upper) - center_log) / z if upper is not None else 0.0
    return max(s_lo, 0.0), max(s_hi, 0.0)


def combine(parameter, noise, model):
    """Lower and upper log-space standard deviations: the terms in quadrature. `parameter` is (lo, hi)."""
    p_lo, p_hi = parameter
    return np.sqrt(p_lo**2 + noise**2 + model**2), np.sqrt(p_hi**2 + noise**2 + model**2)


def range_warning(compute: float, lo: float, hi: float) -> str | None:
    """A target far outside the fitted compute [lo, hi]: beyond MAX_EXTRAPOLATION x the largest, or below
    MIN_EXTRAPOLATION x the smallest fitted run."""
    ratio = compute / hi
    if ratio > defaults.MAX_EXTRAPOLATION:
        return (f"target {compute:.3g} is {ratio:,.0f}x the largest fitted compute, beyond the "
                f"{defaults.MAX_EXTRAPOLATION:,.0f}x that predictable-scaling evidence covers")
    if compute < lo * defaults.MIN_EXTRAPOLATION:
        return (f"target {compute:.3g} is {lo / compute:,.3g}x below the smallest fitted compute ({lo:.3g}): the law "
                f"is not meant for runs far smaller than those it was fitted to")
    return None
