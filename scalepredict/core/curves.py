"""A run's loss curve fitted by a law of the curve (curvelaws.py) under its schedule, and the loss it will reach
later in the run (at its last step, or under another schedule) with an interval.

How a curve is fitted (the scaling laws' solver, solver.py): residuals in log space under a Huber loss, every start
of the law's grid optimized at once, the best polished. Its interval, in log space, in quadrature:
- the parameters: a moving-block bootstrap of the residuals (blocks of neighbouring points, whose errors are not
  independent: evaluation noise repeats, and a misfit runs along the curve), each replica refitted from the optimum,
  its spread widened by sqrt((1 + r) / (1 - r)), r the residuals' lag-1 autocorrelation (Bartlett's effective
  sample size: a fit absorbs part of a slow error into its trend, which resampling the residuals cannot restore);
- a new evaluation's own scatter: the noise of the curve's points about the law, read from the differences of
  neighbouring residuals (the misfit that runs along the curve cancels in them);
- the law's own error beyond its data: a prior that grows with the log of how far the target lies beyond the last
  fitted point, in steps or in summed LR, whichever is further (calibrated on the development curves,
  experiments/forecast_curves.py: the laws of the curve miss by a few percent from a quarter of a run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import defaults
from ..errors import InputError
from . import intervals
from .curvelaws import ANNEALING, CURVE_LAWS, POWER_STEPS, features, multipower_blocks, multipower_law
from .ensemble import mixture_interval, score_weights
from .schedules import areas
from .solver import solve_batch

MIN_POINTS = 6  # fewer points than this cannot fit a law of the curve and say how sure it is
HUBER = 1e-3
BOOT = 200
MODEL_ERROR = 0.03  # log-loss sd per e-fold of steps (or summed LR) beyond the last fitted point: the error of the
# laws of the curve on the development curves (experiments/forecast_curves.py: 78% coverage over nine, every real one)


@dataclass
class Segment:
    """One run's curve: its schedule (the LR of every step), the logged steps and losses fitted."""

    lr: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    name: str = "run"


def law_for(name: str, segments) -> object:
    if name == "annealing":
        return ANNEALING
    if name == "power":
        return POWER_STEPS
    if name == "multipower":
        return multipower_law(multipower_blocks([(s.lr, s.steps) for s in segments]))
    raise InputError(f"--law: unknown curve law {name!r} (annealing, multipower, power)")


@dataclass
class CurveFit:
    law_name: str
    values: np.ndarray
    segments: list
    residuals: np.ndarray
    noise_sigma: float
    boot: np.ndarray  # (B, p) refits on block-resampled residuals
    warnings: list = field(default_factory=list)
    model_error: float = MODEL_ERROR
    autocorr: float = 0.0  # lag-1 autocorrelation of the residuals, clipped to [0, 0.9]
    tied: np.ndarray | None = None  # (k, p) optima the points cannot tell apart, `values` first, and their weights
    tied_weights: np.ndarray | None = None

    def log_predict(self, lr, steps, theta=None) -> np.ndarray:
        """The law's log loss at `steps` under `lr`: of `theta`, or of the fit (its tied optima averaged by their
        likelihood where there are several)."""
        seg = [(lr, np.asarray(steps, int))]
        law = law_for(self.law_name, [Segment(lr, np.asarray(steps, int), np.ones(len(steps)))])
        X = features(seg)
        with np.errstate(all="ignore"):
            if theta is None and self.tied is not None and len(self.tied) > 1:
                return np.average(law.log_predict(self.tied, X), axis=0, weights=self.tied_weights)
            return law.log_predict(self.values if theta is None else theta, X)

    def predict(self, lr, steps, level: float = defaults.LEVEL) -> list[dict]:
        """The loss at `steps` of a run under the schedule `lr`, with its `level` interval."""
        steps = np.atleast_1d(np.asarray(steps, int))
        center = np.reshape(self.log_predict(lr, steps), -1)
        z = intervals.z_of(level)
        boot = np.reshape(self.log_predict(lr, steps, self.boot), (len(self.boot), -1)) if len(self.boot) else None
        b = intervals.bootstrap_term(boot, center, level) if boot is not None else None
        if b is not None:  # the errors the fit absorbed into its trend: Bartlett's effective sample size
            inflate = math.sqrt((1 + self.autocorr) / (1 - self.autocorr))
            b = (b[0] * inflate, b[1] * inflate)
        last = max(int(np.max(s.steps)) for s in self.segments)
        s1_last = areas(self.segments[0].lr, [last])[0][0]
        s1 = areas(lr, steps)[0]
        reach = np.maximum(np.log(np.maximum(s1, 1e-12) / max(s1_last, 1e-12)),
                           np.log(np.maximum(steps, 1) / max(last, 1)))
        model = self.model_error * np.maximum(reach, 0.0)
        noise = np.full(len(steps), self.noise_sigma)
        lo, hi = intervals.combine(b if b is not None else (np.zeros(len(steps)), np.zeros(len(steps))), noise,
                                   model)
        out = []
        for i, st in enumerate(steps):
            loss = float(np.exp(center[i]))
            if not math.isfinite(loss):
                raise InputError(f"the {self.law_name} law gives no finite loss at step {st}")
            with np.errstate(all="ignore"):
                lower, upper = float(np.exp(center[i] - z * lo[i])), float(np.exp(center[i] + z * hi[i]))
            if not (0 < lower <= loss <= upper < math.inf):  # a bootstrap that overflows: no interval, not [0, inf]
                lower = upper = None
            out.append({"step": int(st), "loss": loss, "lower": lower, "upper": upper, "level": level,
                        "beyond_last_logged": float(st / max(last, 1))})
        return out


def _block_resample(residuals: np.ndarray, B: int, rng) -> np.ndarray:
    """(B, n) residual series made of moving blocks of the fitted residuals (length ~ n^(1/3), at least 3)."""
    n = len(residuals)
    L = max(3, int(round(n ** (1 / 3))))
    starts = rng.integers(0, max(1, n - L + 1), size=(B, -(-n // L)))
    idx = (starts[..., None] + np.arange(L)).reshape(B, -1)[:, :n]
    return residuals[np.minimum(idx, n - 1)]


def fit_curve(segments: list[Segment], law_name: str = "annealing", n_boot: int = BOOT, seed: int = 0) -> CurveFit:
    """Fit a law of the curve to one or more runs' curves (each under its own schedule)."""
    n = sum(len(s.steps) for s in segments)
    if n < MIN_POINTS:
        raise InputError(f"{segments[0].name}: {n} logged points; a law of the curve needs at least {MIN_POINTS}")
    loss = np.concatenate([s.loss for s in segments])
    if not np.all(np.isfinite(loss) & (loss > 0)):
        raise InputError(f"{segments[0].name}: the curve has a loss that is not a positive number")
    law = law_for(law_name, segments)
    X = features([(s.lr, s.steps) for s in segments])
    logL = np.log(loss)
    lo, hi = law.internal_bounds()
    starts = np.clip(law.to_internal(law.starts(X, loss)), lo, hi)
    u, cost, _ = solve_batch(law, X, logL, starts, HUBER, max_iter=60)
    best = np.argsort(cost)[: min(8, len(cost))]
    u, cost, done = solve_batch(law, X, logL, u[best], HUBER, max_iter=400)
    k = int(np.argmin(cost))
    u_best = u[k]  # the batched solver's optimum (lmfit's polish costs seconds on the multi-power law's sums)
    values = law.to_natural(u_best)
    with np.errstate(all="ignore"):
        fitted = np.reshape(law.log_predict(values, X), -1)
    residuals = logL - fitted
    # a new evaluation's scatter about the law: the residuals' own spread (their neighbours' differences would
    # miss the part of an evaluation's noise that neighbouring points share), scaled for the parameters fitted
    noise = float(np.sqrt(np.sum(residuals**2) / max(n - len(values), 1)))
    rng = np.random.default_rng(seed)
    boot = np.empty((0, len(values)))
    if law_name == "multipower":  # its sums make each replica ~50x the others' cost
        n_boot = min(n_boot, 100)
    # the optima of the starts that the points cannot tell apart (within the 90% profile threshold of one
    # parameter, 2.71 / 2 sigma^2): a curve that never saw its LR fall leaves the decay terms unidentified, and
    # which of them the solver ends at is an accident of its starts. The forecast averages them by their likelihood
    # exp(-cost / sigma^2), and the bootstrap's replicas start from each in turn, so that the interval spans them.
    tied = np.flatnonzero(np.isfinite(cost) & (cost <= cost[k] + 1.355 * noise**2))
    tied = tied[np.argsort(cost[tied])]
    tied_weights = np.exp(-(cost[tied] - cost[k]) / max(noise**2, 1e-300))
    if n_boot:
        ystar = fitted[None, :] + _block_resample(residuals, n_boot, rng)
        ub, cb, _ = solve_batch(law, X, ystar, u[tied[np.arange(n_boot) % len(tied)]], HUBER, max_iter=150)
        ok = np.isfinite(cb)
        boot = law.to_natural(ub[ok])
    warnings = []
    if not np.isfinite(residuals).all():
        raise InputError(f"{segments[0].name}: the {law_name} law cannot be fitted to this curve")
    r = residuals - residuals.mean()
    rho = float(np.dot(r[1:], r[:-1]) / np.dot(r, r)) if np.dot(r, r) > 0 else 0.0
    return CurveFit(law_name, values, segments, residuals, noise, boot, warnings, autocorr=min(max(rho, 0.0), 0.9),
                    tied=law.to_natural(u[tied]), tied_weights=tied_weights)


HOLDOUT = 0.3  # auto: each law fitted on the first 70% of a curve's points, scored on the rest


def holdout_score(segments: list[Segment], law_name: str) -> float | None:
    """Mean |log error| of `law_name` on the last HOLDOUT share of each curve's points when fitted on the rest
    (the extrapolation along the curve that a forecast makes, on the points at hand); None where too few."""
    inner, outer = [], []
    for s in segments:
        k = int(round(len(s.steps) * (1 - HOLDOUT)))
        if k < MIN_POINTS or k >= len(s.steps):
            return None
        inner.append(Segment(s.lr, s.steps[:k], s.loss[:k], s.name))
        outer.append(Segment(s.lr, s.steps[k:], s.loss[k:], s.name))
    try:
        fit = fit_curve(inner, law_name, n_boot=0)
    except InputError:
        return math.inf
    err = [np.abs(np.reshape(fit.log_predict(o.lr, o.steps), -1) - np.log(o.loss)) for o in outer]
    e = float(np.mean(np.concatenate(err)))
    return e if math.isfinite(e) else math.inf


@dataclass
class CurveAverage:
    """Several laws of the curve averaged with weights from their holdout scores (as the scaling laws' average)."""

    fits: list
    weights: list
    scores: list
    law_name: str = "auto"

    @property
    def segments(self):
        return self.fits[0].segments

    @property
    def warnings(self):
        return [w for f in self.fits for w in f.warnings]

    def log_predict(self, lr, steps, theta=None) -> np.ndarray:
        mu = np.array([np.reshape(f.log_predict(lr, steps), -1) for f in self.fits])
        return np.average(mu, axis=0, weights=self.weights)

    def predict(self, lr, steps, level: float = defaults.LEVEL) -> list[dict]:
        per = [f.predict(lr, steps, level) for f in self.fits]
        w = np.array(self.weights) / np.sum(self.weights)
        out = []
        for i in range(len(per[0])):
            mu = np.array([math.log(p[i]["loss"]) for p in per])
            lo, hi = mixture_interval(mu, [p[i] for p in per], w, level)
            rec = dict(per[0][i])
            rec.update({"loss": math.exp(float(np.dot(w, mu))), "lower": lo, "upper": hi,
                        "laws": {f.law_name: p[i]["loss"] for f, p in zip(self.fits, per)}})
            out.append(rec)
        return out


def fit_curves(segments: list[Segment], law: str = "auto", n_boot: int = BOOT, seed: int = 0):
    """A law of the curve (or `auto`: the laws averaged by their holdout scores) fitted to the segments."""
    if law != "auto":
        return fit_curve(segments, law, n_boot, seed)
    fits, scores = [], []
    for name in CURVE_LAWS:
        try:
            fits.append(fit_curve(segments, name, n_boot, seed))
            scores.append(holdout_score(segments, name))
        except InputError:
            continue
    if not fits:
        raise InputError(f"{segments[0].name}: no law of the curve can be fitted")
    return CurveAverage(fits, score_weights(scores), scores)
