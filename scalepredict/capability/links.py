"""Step 2 of the task law, and the direct form: accuracy as a function of a task loss (or of -log10 compute), each
form with its bounds, starts, a bounded least-squares fit, a bootstrap over runs, hold-out scores and draws.

  sigmoid      acc = b + a / (1 + exp(k (L - L0)))     Bhagia et al. 2024 (the OLMo ladder): b the chance level
                                                       (fixed where --chance gives it), a + b <= 1 the ceiling
  sigmoid1     acc = b + (1 - b) / (1 + exp(k (L - L0)))   the same with the ceiling at 1: where the runs see
                                                       only the foot of the curve, a free ceiling is not identified
  exponential  err = eps - k exp(-gamma L)             Gadre et al. 2024 (average top-1 error against C4 loss)

Everything is in accuracy (higher is better); tasks.py reads error metrics as 1 - error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from .. import defaults
from ..core import checks
from ..core.ensemble import score_weights
from ..core.intervals import residual_inflation
from ..errors import InputError

HOLDOUTS = (0.15, 0.3, 0.5)  # auto: each form is fitted on the runs of highest loss and scored on these shares of
# lowest loss (averaged)
FORMS = ("sigmoid", "sigmoid1", "exponential")


def _sigmoid(x, p):
    a, k, x0, b = p[..., 0:1], p[..., 1:2], p[..., 2:3], p[..., 3:4]
    z = np.clip(k * (np.asarray(x) - x0), -60, 60)
    return b + a / (1.0 + np.exp(z))


def _sigmoid1(x, p):
    k, x0, b = p[..., 0:1], p[..., 1:2], p[..., 2:3]
    z = np.clip(k * (np.asarray(x) - x0), -60, 60)
    return b + (1.0 - b) / (1.0 + np.exp(z))


def _exponential(x, p):
    # accuracy = 1 - err = (1 - eps) + k exp(-gamma L): c0 = 1 - eps the accuracy far up the loss axis
    c0, k, g = p[..., 0:1], p[..., 1:2], p[..., 2:3]
    return c0 + k * np.exp(np.clip(-g * np.asarray(x), -60, 60))


LINKS = {"sigmoid": _sigmoid, "sigmoid1": _sigmoid1, "exponential": _exponential}
PARAM_NAMES = {"sigmoid": ("a", "k", "L0", "b"), "sigmoid1": ("k", "L0", "b"), "exponential": ("c0", "k", "gamma")}


def link_value(form: str, x, p) -> np.ndarray:
    """Accuracy at x for parameters p ((P,) or (B, P)); shape (len(x),) or (B, len(x))."""
    p = np.asarray(p, float)
    out = LINKS[form](np.asarray(x, float), p if p.ndim > 1 else p[None, :])
    return out if p.ndim > 1 else out[0]


@dataclass
class Link:
    """One fitted step 2 (or direct form): accuracy against x (a loss, or -log10 compute)."""

    form: str
    x_name: str  # "loss" or "-log10(compute)"
    values: np.ndarray
    boot: np.ndarray  # (B, P) refits on runs resampled with replacement
    residuals: np.ndarray
    chance: float | None
    dof: int

    def __call__(self, x):
        return np.clip(link_value(self.form, x, self.values), 0.0, 1.0)

    @property
    def sigma(self) -> float:
        return float(np.sqrt(np.sum(self.residuals ** 2) / max(self.dof, 1)))

    def to_dict(self) -> dict:
        return {"form": self.form, "x": self.x_name,
                "params": dict(zip(PARAM_NAMES[self.form], map(float, self.values))), "boot": self.boot.tolist(), "residuals": self.residuals.tolist(), "chance": self.chance,
                "dof": self.dof, "residual_sigma": self.sigma}

    @classmethod
    def from_dict(cls, d: dict, where: str = "link") -> "Link":
        if not isinstance(d, dict) or d.get("form") not in PARAM_NAMES:
            raise InputError(f"{where}: field 'form' should be one of {', '.join(PARAM_NAMES)}")
        names = PARAM_NAMES[d["form"]]
        params = checks.mapping(d, "params", where)
        values = np.array([checks.number(params, n, f"{where}: params") for n in names])
        boot = np.empty((0, len(names))) if not d.get("boot") else checks.matrix(d, "boot", where, (None, len(names)))
        chance = checks.number(d, "chance", where, optional=True, default=None)
        if chance is not None and not 0 <= chance <= 1:
            raise InputError(f"{where}: field 'chance' is not a rate in [0, 1]")
        return cls(d["form"], str(d.get("x", "loss")), values, boot, checks.vector(d, "residuals", where),
                   chance, max(1, int(checks.number(d, "dof", where))))


def _bounds(form, x, y, chance):
    lo_x, hi_x = float(np.min(x)), float(np.max(x))
    span = max(hi_x - lo_x, 1e-6)
    b_lo, b_hi = (chance, chance) if chance is not None else (0.0, max(float(np.min(y)), 1e-6))
    if form == "sigmoid":
        lo = np.array([0.0, 1e-3 / span, lo_x - 3 * span, b_lo])
        hi = np.array([1.0, 200.0 / span, hi_x + 3 * span, b_hi])
    elif form == "sigmoid1":
        lo = np.array([1e-3 / span, lo_x - 10 * span, b_lo])
        hi = np.array([200.0 / span, hi_x + 3 * span, b_hi])
    else:
        lo = np.array([0.0, 0.0, 1e-3 / span])
        hi = np.array([1.0, 1e6, 50.0 / span])
    return lo, hi


def _starts(form, x, y, chance, lo, hi):
    lo_x, hi_x = float(np.min(x)), float(np.max(x))
    span = max(hi_x - lo_x, 1e-6)
    out = []
    if form == "sigmoid":
        b = chance if chance is not None else max(0.0, float(np.min(y)) - 0.02)
        for top in (float(np.max(y)) + 0.05, min(1.0, float(np.max(y)) + 0.3), 1.0):
            for k in (1.0 / span, 4.0 / span, 12.0 / span):
                for x0 in (lo_x - span, lo_x, (lo_x + hi_x) / 2, hi_x):
                    out.append([max(min(top, 1.0) - b, 1e-3), k, x0, b])
    elif form == "sigmoid1":
        b = chance if chance is not None else max(0.0, float(np.min(y)) - 0.02)
        for k in (0.3 / span, 1.0 / span, 4.0 / span, 12.0 / span):
            for x0 in (lo_x - 3 * span, lo_x - span, lo_x, (lo_x + hi_x) / 2):
                out.append([k, x0, b])
    else:
        c0 = max(0.0, float(np.min(y)) - 0.02)
        for g in (0.3 / span, 1.0 / span, 3.0 / span, 10.0 / span):
            for target in (float(np.max(y)), min(1.0, float(np.max(y)) + 0.2)):
                k = max((target - c0) / math.exp(-g * lo_x), 1e-9) if -g * lo_x < 700 else 1.0
                out.append([c0, k, g])
    return [np.clip(np.array(s, float), lo, hi) for s in out]


def _solve(form, x, y, chance, starts=None):
    """Least squares (in accuracy units) from several starts, bounded; the chance level held where given, the
    sigmoid's ceiling a + b <= 1 held by a penalty. Returns the best parameters."""
    lo, hi = _bounds(form, x, y, chance)
    free = hi > lo
    fn = LINKS[form]

    def full(q):
        p = lo.copy()
        p[free] = q
        return p

    def resid(q):
        p = full(q)
        r = fn(x, p[None, :])[0] - y
        if form == "sigmoid":
            return np.append(r, 10.0 * max(0.0, p[0] + p[3] - 1.0))
        if form == "sigmoid1":
            return r
        return np.append(r, 10.0 * max(0.0, p[0] + p[1] * math.exp(min(-p[2] * float(np.min(x)), 700)) - 1.0))

    best, best_cost = None, math.inf
    for s in (starts if starts is not None else _starts(form, x, y, chance, lo, hi)):
        s = np.clip(np.asarray(s, float), lo, hi)
        try:
            r = least_squares(resid, s[free], bounds=(lo[free], hi[free] + 1e-300), method="trf", max_nfev=400,
                              x_scale="jac")
        except ValueError:
            continue
        if r.cost < best_cost:
            best, best_cost = full(r.x), r.cost
    if best is None:
        raise InputError("the accuracy link could not be fitted (no start converged)")
    return best


def fit_link(form: str, x, y, chance=None, n_boot: int = defaults.TASK_BOOTSTRAP, seed: int = 0,
             x_name: str = "loss", groups=None) -> Link:
    """Fit accuracy y against x with `form`, then refit on `n_boot` resamples of the runs: of the points, or, with
    `groups` (the run of each point: checkpoints), of whole runs, so that many correlated points of one run do not
    narrow the interval as independent ones would."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    values = _solve(form, x, y, chance)
    rng = np.random.default_rng(seed)
    members = None
    if groups is not None:
        labels = np.asarray(groups, dtype=object)
        members = [np.flatnonzero(labels == g) for g in dict.fromkeys(groups)]
    boot = []
    for _ in range(n_boot):
        if members is None:
            idx = rng.integers(0, len(x), len(x))
        else:
            idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        if len(np.unique(x[idx])) < 3:
            continue
        boot.append(_solve(form, x[idx], y[idx], chance, starts=[values]))
    n_free = len(PARAM_NAMES[form]) - (1 if form != "exponential" and chance is not None else 0)
    resid = y - link_value(form, x, values)
    return Link(form, x_name, values, np.array(boot).reshape(-1, len(values)), resid, chance,
                max(len(x) - n_free, 1))


def form_scores(x, y, chance=None, forms=FORMS) -> dict:
    """Each form's mean absolute error on the runs of lowest loss when fitted on the rest, averaged over several
    depths of that hold-out (HOLDOUTS: the lowest 15%, 30% and 50% of the losses, at least 2 runs): step 2
    extrapolates toward lower loss, and this is that extrapolation on the runs at hand. One depth alone gives noisy
    scores (a few runs decide them); the average is steadier. None where a form could not be fitted at every depth."""
    order = np.argsort(x)
    per = {form: [] for form in forms}
    for share in HOLDOUTS:
        n_out = max(2, int(round(share * len(x))))
        held, kept = order[:n_out], order[n_out:]
        for form in forms:
            if per[form] is None:
                continue
            if len(kept) < len(PARAM_NAMES[form]) + 1:
                per[form] = None
                continue
            try:
                p = _solve(form, x[kept], y[kept], chance if form != "exponential" else None)
            except InputError:
                per[form] = None
                continue
            per[form].append(float(np.mean(np.abs(link_value(form, x[held], p) - y[held]))))
    return {form: (float(np.mean(v)) if v else None) for form, v in per.items()}


def form_weights(scores: dict) -> dict:
    """Weights of the forms from their hold-out errors, as the law average weighs its laws (score_weights; tau at
    least half a point of accuracy). Forms that could not be fitted get none; weights under 1% are dropped."""
    ok = {f: v for f, v in scores.items() if v is not None}
    if not ok:
        return {"sigmoid": 1.0}
    w = dict(zip(ok, score_weights(ok.values())))
    kept = {f: v for f, v in w.items() if v >= 0.01}
    total = sum(kept.values())
    return {f: v / total for f, v in kept.items()}


def draw(link: Link, x_draws: np.ndarray, rng) -> np.ndarray:
    """Accuracy draws: each x draw through a bootstrap refit of the link, plus a resampled residual (scaled up
    for the parameters fitted, as a new model's scatter around the curve)."""
    m = len(x_draws)
    boot = link.boot if len(link.boot) else link.values[None, :]
    p = boot[rng.integers(0, len(boot), m)]
    y = np.clip(LINKS[link.form](x_draws[:, None], p)[:, 0], 0.0, 1.0)
    scale = residual_inflation(len(link.residuals), link.dof)
    y = y + rng.choice(link.residuals, m) * scale
    return np.clip(y, 0.0, 1.0)
