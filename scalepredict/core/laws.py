"""The law catalogue. Each law is data: its formula, its parameters (bounds, whether they are optimized on a log
scale, a grid of starting values) and a vectorized log-prediction, so adding a law is a few lines.

Every law is fitted in log space (residual = log prediction - log loss; docs/fitting.md), so each law gives
`log_predict(theta, X)`: theta has shape (..., n_params) in natural units, X maps input names to arrays that
broadcast against theta[..., :1] (shape (n,) for one fit, (B, n) for a batch of bootstrap replicas).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Param:
    name: str
    min: float
    max: float
    log: bool = False  # optimized as log(value): for positive scale parameters spanning decades (A, B, a)
    doc: str = ""


@dataclass(frozen=True)
class Law:
    name: str
    formula: str
    inputs: tuple[str, ...]  # ("compute",) or ("params", "tokens")
    params: tuple[Param, ...]
    log_predict: Callable[[np.ndarray, dict], np.ndarray]
    starts: Callable[[dict, np.ndarray], np.ndarray]  # (X, loss) -> starting grid, shape (S, n_params), natural units
    doc: str = ""
    derived: dict = field(default_factory=dict)
    # what the law is fitted to and a backtest scores it on: "frontier" (each IsoFLOP set's compute-efficient
    # point) or "runs" (every run, at its own params and tokens)
    points: str = "frontier"
    # d log_predict / d (internal coordinates), shape (..., n, n_params); finite differences where None
    log_jacobian: Callable[[np.ndarray, dict], np.ndarray] | None = None

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def features(self, compute=None, params=None, tokens=None) -> dict:
        """Input arrays for log_predict from raw columns."""
        if self.inputs == ("compute",):
            return {"logC": np.log(np.asarray(compute, dtype=float))}
        return {"logN": np.log(np.asarray(params, dtype=float)), "logD": np.log(np.asarray(tokens, dtype=float))}

    # internal (optimizer) coordinates: log for log-scaled parameters
    def to_internal(self, theta):
        theta = np.array(theta, dtype=float)
        for i, p in enumerate(self.params):
            if p.log:
                theta[..., i] = np.log(np.maximum(theta[..., i], 1e-300))
        return theta

    def to_natural(self, u):
        u = np.array(u, dtype=float)
        for i, p in enumerate(self.params):
            if p.log:
                u[..., i] = np.exp(np.clip(u[..., i], -700, 700))
        return u

    def internal_bounds(self):
        lo = np.array([np.log(max(p.min, 1e-300)) if p.log else p.min for p in self.params])
        hi = np.array([np.log(p.max) if p.log else p.max for p in self.params])
        return lo, hi


def _col(theta, i):
    return theta[..., i : i + 1]


# ---- compute: L = a * C^b + c (GPT-4 technical report, section 3) -------------------------------------------


def _compute_log_predict(theta, X):
    a, b, c = _col(theta, 0), _col(theta, 1), _col(theta, 2)
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log(a) + b * X["logC"], np.log(c))


def _compute_log_jacobian(theta, X):
    a, b, c = _col(theta, 0), _col(theta, 1), _col(theta, 2)
    with np.errstate(divide="ignore", over="ignore"):
        power = np.exp(np.log(a) + b * X["logC"])
        total = power + c
        w = power / total
        return np.stack(np.broadcast_arrays(w, w * X["logC"], 1.0 / total), axis=-1)  # d/dlog a, d/db, d/dc


def _compute_starts(X, loss):
    """lmfit-style guess on a grid: for each exponent b and floor c (a fraction of the lowest loss), a is the
    log-space least-squares value given b and c."""
    logc, lmin = X["logC"], float(np.min(loss))
    starts = []
    for b, frac in itertools.product((-0.02, -0.05, -0.1, -0.2, -0.35, -0.6), (0.0, 0.3, 0.6, 0.8, 0.9, 0.97)):
        c = frac * lmin
        log_a = float(np.median(np.log(loss - c) - b * logc))
        starts.append((np.exp(log_a), b, c))
    return np.array(starts)


COMPUTE = Law(
    name="compute",
    formula="L = a * C^b + c",
    inputs=("compute",),
    params=(
        Param("a", 1e-30, 1e80, log=True, doc="scale (loss units at C = 1 FLOP)"),
        Param("b", -3.0, 0.0, doc="exponent, negative"),
        Param("c", 0.0, 1e6, doc="irreducible loss, >= 0"),
    ),
    log_predict=_compute_log_predict,
    log_jacobian=_compute_log_jacobian,
    starts=_compute_starts,
    doc="GPT-4's predictable-scaling law: final loss against training compute, with an irreducible floor c.",
)


# ---- power: L = a * C^b (Kaplan et al. 2020, no floor) --------------------------------------------------------


def _power_log_predict(theta, X):
    return np.log(_col(theta, 0)) + _col(theta, 1) * X["logC"]


def _power_log_jacobian(theta, X):
    one = np.ones_like(_col(theta, 0) * X["logC"])
    return np.stack([one, one * X["logC"]], axis=-1)


def _power_starts(X, loss):
    b, log_a = np.polyfit(X["logC"], np.log(loss), 1)
    return np.array([(np.exp(log_a), min(b, -1e-4))])


POWER = Law(
    name="power",
    formula="L = a * C^b",
    inputs=("compute",),
    params=(Param("a", 1e-30, 1e80, log=True), Param("b", -3.0, 0.0)),
    log_predict=_power_log_predict,
    log_jacobian=_power_log_jacobian,
    starts=_power_starts,
    doc="Kaplan et al. 2020's pure power law (no floor): overestimates gains at long range.",
)


# ---- chinchilla: L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, approach 3) ------------------------------


def _chinchilla_terms(theta, X):
    """The log of each term; a sixth parameter gamma (chinchilla_nd) scales the data term by N^gamma."""
    E, A, B, alpha, beta = (_col(theta, i) for i in range(5))
    gamma = _col(theta, 5) if np.shape(theta)[-1] > 5 else 0.0
    with np.errstate(divide="ignore"):
        return np.log(A) - alpha * X["logN"], np.log(B) + gamma * X["logN"] - beta * X["logD"], np.log(E)


def _chinchilla_log_predict(theta, X):
    ta, tb, te = _chinchilla_terms(theta, X)
    return np.logaddexp(np.logaddexp(ta, tb), te)


def _chinchilla_log_jacobian(theta, X):
    ta, tb, te = _chinchilla_terms(theta, X)
    total = np.logaddexp(np.logaddexp(ta, tb), te)
    wa, wb, we = np.exp(ta - total), np.exp(tb - total), np.exp(te - total)  # softmax weights of the 3 terms
    # internal coordinates: log E, log A, log B, alpha, beta (and gamma for chinchilla_nd)
    cols = [we, wa, wb, -wa * X["logN"], -wb * X["logD"]] + ([wb * X["logN"]] if np.shape(theta)[-1] > 5 else [])
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def _chinchilla_starts(X, loss):
    """The grid of Hoffmann et al. (2022, appendix D.2) as used by Besiroglu et al. (2024): alpha, beta in
    {0, 0.5, ..., 2}, log E in {-1, -0.5, ..., 1}, log A and log B in {0, 5, ..., 25} (4,500 starts)."""
    grid = itertools.product(
        np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 25.1, 5.0), np.arange(0.0, 25.1, 5.0),
        np.arange(0.0, 2.01, 0.5), np.arange(0.0, 2.01, 0.5),
    )
    return np.array([(np.exp(e), np.exp(a), np.exp(b), al, be) for e, a, b, al, be in grid])


def optimal_allocation(theta, compute):
    """Compute-optimal N*(C), D*(C) from chinchilla parameters (Hoffmann et al. 2022, eq. 4), using C = 6ND:
    N* = G (C/6)^(beta/(alpha+beta)), D* = (C/6)^(alpha/(alpha+beta)) / G, G = (alpha A / (beta B))^(1/(alpha+beta)).
    """
    E, A, B, alpha, beta = (np.asarray(theta)[..., i] for i in range(5))
    compute = np.asarray(compute, dtype=float)
    s = alpha + beta
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # alpha or beta at 0: an all-N/all-D limit
        G = (alpha * A / (beta * B)) ** (1.0 / s)
        n_opt = G * (compute / 6.0) ** (beta / s)
        d_opt = (compute / 6.0) ** (alpha / s) / G
    return n_opt, d_opt


CHINCHILLA = Law(
    name="chinchilla",
    formula="L = E + A / N^alpha + B / D^beta",
    inputs=("params", "tokens"),
    params=(
        Param("E", 1e-6, 1e3, log=True, doc="irreducible loss"),
        Param("A", 1e-6, 1e15, log=True),
        Param("B", 1e-6, 1e15, log=True),
        Param("alpha", 0.0, 5.0, doc="parameter exponent"),
        Param("beta", 0.0, 5.0, doc="data exponent"),
    ),
    log_predict=_chinchilla_log_predict,
    log_jacobian=_chinchilla_log_jacobian,
    starts=_chinchilla_starts,
    doc="Hoffmann et al. 2022 approach 3: loss against parameters N and tokens D; gives compute-optimal N*, D*.",
    derived={"optimal_allocation": optimal_allocation},
    points="runs",
)


# ---- tied: L = E + A/N^alpha + B/D^alpha (Gadre et al. 2024: one exponent for params and data) ----------------


def _tied_full(theta):
    E, A, B, alpha = (_col(theta, i) for i in range(4))
    return np.concatenate([E, A, B, alpha, alpha], axis=-1)


def _tied_log_predict(theta, X):
    return _chinchilla_log_predict(_tied_full(theta), X)


def _tied_log_jacobian(theta, X):
    J = _chinchilla_log_jacobian(_tied_full(theta), X)
    return np.concatenate([J[..., :3], J[..., 3:4] + J[..., 4:5]], axis=-1)


def _tied_starts(X, loss):
    grid = itertools.product(np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 25.1, 5.0), np.arange(0.0, 25.1, 5.0),
                             np.arange(0.0, 2.01, 0.25))
    return np.array([(np.exp(e), np.exp(a), np.exp(b), al) for e, a, b, al in grid])


TIED = Law(
    name="chinchilla_tied",
    formula="L = E + A / N^alpha + B / D^alpha",
    inputs=("params", "tokens"),
    params=(
        Param("E", 1e-6, 1e3, log=True, doc="irreducible loss"),
        Param("A", 1e-6, 1e15, log=True),
        Param("B", 1e-6, 1e15, log=True),
        Param("alpha", 0.0, 5.0, doc="one exponent for params and data"),
    ),
    log_predict=_tied_log_predict,
    log_jacobian=_tied_log_jacobian,
    starts=_tied_starts,
    doc="Gadre et al. 2024's reduced law: one exponent for N and D; fewer free parameters, a better-identified floor.",
    derived={"optimal_allocation": lambda theta, c: optimal_allocation(_tied_full(np.asarray(theta)), c)},
    points="runs",
)


# ---- chinchilla_nd: L = E + A/N^alpha + B N^gamma / D^beta (an N x D interaction, after Farseer) --------------


def _nd_starts(X, loss):
    """The chinchilla grid at gamma in {-0.25, 0, 0.25}, every other point of it (6,750 starts)."""
    return np.array([(*row, g) for row in _chinchilla_starts(X, loss)[::2] for g in (-0.25, 0.0, 0.25)])


def nd_optimal_allocation(theta, compute):
    """N*(C), D*(C) of the N x D law with C = 6ND: the data term is B (C/6)^-beta N^(beta+gamma), so
    N* = G (C/6)^(beta/(alpha+beta+gamma)), G = (alpha A / ((beta+gamma) B))^(1/(alpha+beta+gamma)), D* = C/(6 N*)."""
    E, A, B, alpha, beta, gamma = (np.asarray(theta)[..., i] for i in range(6))
    compute = np.asarray(compute, dtype=float)
    s = alpha + beta + gamma
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n_opt = (alpha * A / ((beta + gamma) * B)) ** (1.0 / s) * (compute / 6.0) ** (beta / s)
        d_opt = compute / (6.0 * n_opt)
    return n_opt, d_opt


ND = replace(
    CHINCHILLA,
    name="chinchilla_nd",
    formula="L = E + A / N^alpha + B N^gamma / D^beta",
    params=CHINCHILLA.params + (
        Param("gamma", -1.0, 1.0, doc="how the data term grows with model size (0: chinchilla)"),
    ),
    starts=_nd_starts,
    doc="Chinchilla with an N x D interaction: the data term's coefficient scales with model size, the first-order "
        "form of Farseer's N-dependent data term (Li et al. 2025).",
    derived={"optimal_allocation": nd_optimal_allocation},
)


LAWS = {law.name: law for law in (COMPUTE, POWER, CHINCHILLA, TIED, ND)}


FLOOR_NAMES = ("c", "E")  # the irreducible loss of the compute and chinchilla laws


def with_floor(law: Law, value: float) -> Law:
    """`law` with its irreducible loss fixed at `value` (a floor known from outside the table: a larger related
    fit, a loss-to-loss transfer, a planning assumption; `--floor`). The parameter stays in the law, its bounds
    pinned to the value, so the fit file, the bootstrap and the intervals treat it as a fixed parameter."""
    j = next((i for i, p in enumerate(law.params) if p.name in FLOOR_NAMES), None)
    if j is None:
        raise InputError(f"--floor: the {law.name} law has no irreducible loss to fix")
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"--floor must be a positive number, got {value}")
    p = law.params[j]
    pinned = replace(p, min=float(value), max=float(value), doc=f"irreducible loss, fixed at {value:g} (--floor)")
    return replace(law, params=law.params[:j] + (pinned,) + law.params[j + 1 :])


def pinned(law: Law) -> list[str]:
    """The names of the law's parameters fixed by their bounds (with_floor)."""
    return [p.name for p in law.params if p.min == p.max]


def get_law(name: str) -> Law:
    try:
        return LAWS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown law {name!r} (choose from {', '.join(LAWS)})") from None
