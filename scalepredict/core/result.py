"""A fitted law: its parameters, the points it was fitted to, its uncertainty, its predictions with intervals, and
its own to_dict/from_dict (the fit file's content).

Every kind of fit in scalepredict (each law here, the law average in ensemble.py, the task fit and the pass-rate
fit in capability/) offers the same face, so that no caller asks which kind it holds:

    kind                "law", "average", "tasks" or "passrate" (the fit file's routing key)
    name, formula       what was fitted, in words and as a formula
    predict(compute=, params=, tokens=, level=)   one dict per target: the prediction and its interval
    max_compute         the largest fitted compute (the extrapolation is counted from it)
    compute_convention  how the fitted compute was counted (runs.CONVENTIONS)
    data                the points fitted (FitData)
    warnings            what the fit wants its reader to know
    to_dict()           the fit file's content; from_dict(obj, source) reads it back

A loss fit (a Fit or a law average) also has `inputs` (what it predicts from), `converged`, `n_points`,
`residuals` and `members` (the laws it averages, one for a single law). tests/test_conformance.py checks that every
kind predicts identically after a save/load round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .. import __version__, defaults
from ..errors import InputError
from . import checks, intervals
from .checks import FIT_FORMAT, check_format, law_of
from .intervals import range_warning
from .laws import Law, with_floor

NO_SIGMAS = {"bootstrap": None, "delta": None, "noise": None, "model": None}


class Member(NamedTuple):
    """One law a loss fit stands on: a single law's fit is its own one member; a law average has several."""

    name: str  # the candidate's name ("chinchilla (near-frontier runs)")
    law: str  # the law's name ("chinchilla")
    fit: "Fit"
    weight: float
    score: float | None  # the nested backtest's score (None: not scored)


@dataclass
class FitData:
    """The points a law is fitted to: the frontier (compute/power) or all runs (chinchilla). `n_params` is each
    point's model size (NaN where unknown), not the law's fitted parameters."""

    compute: np.ndarray
    loss: np.ndarray
    n_params: np.ndarray
    tokens: np.ndarray
    names: list[str]
    frontier: list[dict] | None = None


@dataclass
class ParamEstimate:
    """One fitted parameter, as lmfit's Parameter shows it: value, standard error, bounds, whether it sits at a
    bound, and its bootstrap quantiles ({"0.05": ..., "0.95": ...}; empty without a bootstrap)."""

    name: str
    value: float
    stderr: float
    min: float
    max: float
    at_bound: bool
    quantiles: dict = field(default_factory=dict)


@dataclass
class Fit:
    """One law fitted to runs (single.fit_single makes it)."""

    law: Law
    values: np.ndarray  # natural units, in law.params order
    stderr: np.ndarray  # NaN where it cannot be computed
    covariance: np.ndarray | None  # natural units; None where it cannot be computed
    data: FitData
    residuals: np.ndarray
    delta: float | None
    cost: float
    converged: bool
    noise_sigma: float | None  # residual scale in log space (run-to-run scatter + misfit)
    bootstrap: np.ndarray | None  # (n_ok, n_params) natural units
    bootstrap_requested: int = 0
    seed: int = 0
    model_error_per_decade: float = intervals.MODEL_ERROR_PER_DECADE
    at_bound: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    input_files: list[dict] = field(default_factory=list)  # the fitted files' paths and hashes
    n_starts: int = 0
    seed_noise: dict | None = None  # {"sigma", "dof", "groups", "each"}: log-loss scatter of repeated runs
    compute_convention: str | None = None  # how the fitted compute was counted (runs.CONVENTIONS)
    # the floor's profile likelihood: {"param", "range": [lo, hi], "level", "thetas": laws it admits} (floor_profile)
    profile: dict | None = None

    kind = "law"

    # ---- the shared face ------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.law.name

    @property
    def formula(self) -> str:
        return self.law.formula

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.law.inputs

    @property
    def members(self) -> list[Member]:
        """The laws this fit stands on: itself, with weight 1 (a law average lists several)."""
        return [Member(self.law.name, self.law.name, self, 1.0, None)]

    @property
    def n_points(self) -> int:
        return len(self.data.loss)

    @property
    def dof(self) -> int:
        return self.n_points - len(self.values) + len(self.at_bound)

    @property
    def max_compute(self) -> float:
        return float(np.max(self.data.compute))

    @property
    def target_convention(self) -> str | None:
        """The convention a target's compute is read in: the fitted runs' for a compute law, 6ND for an N-D law
        (its compute-optimal split is C = 6ND)."""
        return self.compute_convention if self.inputs == ("compute",) else "6nd"

    def value(self, name: str) -> float:
        return float(self.values[self.law.names.index(name)])

    @property
    def params(self) -> dict[str, ParamEstimate]:
        """The lmfit-like view of the fitted parameters, by name."""
        qs = {}
        if self.bootstrap is not None and len(self.bootstrap):
            levels = ("0.025", "0.05", "0.5", "0.95", "0.975")
            q = np.quantile(self.bootstrap, [float(x) for x in levels], axis=0)
            qs = {n: dict(zip(levels, map(float, q[:, i]))) for i, n in enumerate(self.law.names)}
        return {p.name: ParamEstimate(p.name, float(v), float(s), p.min, p.max, p.name in self.at_bound,
                                      qs.get(p.name, {}))
                for p, v, s in zip(self.law.params, self.values, self.stderr)}

    # ---- predictions ----------------------------------------------------------------------------------------------

    def log_predict(self, X, theta=None) -> np.ndarray:
        return self.law.log_predict(self.values if theta is None else theta, X)

    def targets(self, compute=None, params=None, tokens=None):
        """(compute, params, tokens) arrays of the targets as this law reads them: a compute law at `compute` (from
        params and tokens by 6ND where the fit counts compute so); an N-D law at params and tokens, or at the
        compute-optimal split of `compute` alone (C = 6ND)."""
        def arr(x):
            return None if x is None else np.atleast_1d(np.asarray(x, dtype=float))

        compute, n, d = arr(compute), arr(params), arr(tokens)
        if (n is None) != (d is None) or (n is not None and len(n) != len(d)):
            raise InputError("give --params and --tokens together, as many of each")
        if self.inputs == ("compute",):
            if compute is None and n is not None:
                compute = np.asarray(self.compute_6nd(n, d))
            if compute is None:
                raise InputError(f"a {self.name} fit predicts from compute: give --compute")
            nan = np.full(compute.shape, np.nan)
            return compute, (nan if n is None else n), (nan if d is None else d)
        if n is not None:
            return (6.0 * n * d if compute is None else compute), n, d
        if compute is None:
            raise InputError("give --compute, or --params with --tokens")
        n, d = self.law.derived["optimal_allocation"](self.values, compute)
        return compute, np.atleast_1d(n), np.atleast_1d(d)

    def predict(self, compute=None, params=None, tokens=None, level: float = defaults.LEVEL) -> list[dict]:
        """Predicted loss with a `level` interval at each target (see `targets` for how they are read)."""
        if not 0 < level < 1:
            raise InputError(f"--level must be between 0 and 1, got {level}")
        compute, n, d = self.targets(compute, params, tokens)
        X = self.law.features(compute=compute, params=n, tokens=d)
        with np.errstate(all="ignore"):
            center = np.reshape(self.log_predict(X), -1)
        lo_sig, hi_sig, parts = self.sigmas(X, compute, level, center)
        mult = intervals.z_of(level)
        lo_c = float(np.min(self.data.compute))
        out = []
        for i in range(len(center)):
            ratio = compute[i] / self.max_compute
            rec = {
                "compute": float(compute[i]),
                "params": None if not np.isfinite(n[i]) else float(n[i]),
                "tokens": None if not np.isfinite(d[i]) else float(d[i]),
                "loss": float(np.exp(center[i])),
                "lower": None if lo_sig is None else float(np.exp(center[i] - mult * lo_sig[i])),
                "upper": None if hi_sig is None else float(np.exp(center[i] + mult * hi_sig[i])),
                "level": level,
                "extrapolation": float(ratio),
                "sigma": {k: (None if v is None else float(v[i])) for k, v in parts.items()},
            }
            warning = range_warning(compute[i], lo_c, self.max_compute)
            if not all(v is None or (np.isfinite(v) and v > 0) for v in (rec["lower"], rec["upper"])):
                rec["lower"] = rec["upper"] = None  # an overflow far out: no interval, rather than [0, inf]
                warning = warning or "the interval is unbounded this far out (its uncertainty overflows)"
            if self.dof < 1:
                warning = (f"the fit has no degrees of freedom left ({self.n_points} points for "
                           f"{len(self.values) - len(self.at_bound)} free parameters): it interpolates its points, "
                           + ("and its interval only spans the floors those points admit" if rec["lower"] is not None
                              else "and no interval can be computed"))
            if warning:
                rec["warning"] = warning
            if not np.isfinite(rec["loss"]):
                raise InputError(f"the {self.name} law gives no finite loss at compute {compute[i]:.3g} "
                                 f"(parameters {dict(zip(self.law.names, map(float, self.values)))})")
            out.append(rec)
        return out

    def compute_6nd(self, params, tokens) -> list[float]:
        """Targets given as params and tokens, as compute for a compute-law fit: 6ND, where the fit counts compute
        that way (or as its table reported it, taken to be 6ND); an InputError where it counts exact FLOPs."""
        if self.compute_convention in ("6nd", "reported", None):
            return [6.0 * a * b for a, b in zip(params, tokens)]
        conv = self.compute_convention
        raise InputError(f"this fit counts compute as {conv} FLOPs, and --params/--tokens give 6ND = 6 N D, which is "
                         f"not that (exact/6ND is 1.15-1.28 for small models): give --compute in the fit's "
                         f"convention, or refit with --compute-convention 6nd")

    def sigmas(self, X, compute, level, center):
        """Log-space standard deviations (lower side, upper side) of a new run's loss, and their parts."""
        none, m = dict(NO_SIGMAS), len(np.atleast_1d(compute))
        if self.dof < 1:
            return self._interpolating_sigmas(X, compute, level, center, m)
        with np.errstate(all="ignore"):
            boot_lp = None if self.bootstrap is None else self.law.log_predict(self._admitted(self.bootstrap), X)
        boot = intervals.bootstrap_term(boot_lp, center, level)
        delta = intervals.delta_term(self.gradient(X), self.covariance, level, self.dof)
        prof = None
        if self.profile and self.profile.get("thetas"):
            with np.errstate(all="ignore"):
                lp = self.law.log_predict(np.asarray(self.profile["thetas"]), X)
            prof = intervals.profile_term(lp, center, level)
        if boot is None and delta is None:
            return None, None, none
        # the bootstrap captures the law's non-linearity (asymmetric intervals); the delta method stands in where
        # the bootstrap could not be run
        parameter = boot if boot is not None else (delta, delta)
        if prof is not None:  # never narrower than the floor's admitted range
            parameter = (np.maximum(parameter[0], prof[0]), np.maximum(parameter[1], prof[1]))
        noise = intervals.noise_term(m, level, self.noise_sigma, self.dof, self.seed_noise)
        model = intervals.model_term(compute, self.max_compute, self.model_error_per_decade)
        lo, hi = intervals.combine(parameter, noise, model)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            return None, None, none
        return lo, hi, {"bootstrap": None if boot is None else (boot[0] + boot[1]) / 2, "delta": delta,
                        "noise": noise, "model": model}

    def _interpolating_sigmas(self, X, compute, level, center, m):
        """A fit that interpolates its points has no residual, bootstrap or covariance to bound it with; what is left
        is the floor's profile, which then admits every floor the other parameters can follow (each law through the
        same points): the interval spans those laws' predictions, with the law error per decade beyond."""
        if not (self.profile and self.profile.get("thetas")):
            return None, None, dict(NO_SIGMAS)
        with np.errstate(all="ignore"):
            lp = self.law.log_predict(np.asarray(self.profile["thetas"]), X)
        prof = intervals.profile_term(lp, center, level)
        model = intervals.model_term(compute, self.max_compute, self.model_error_per_decade)
        lo, hi = intervals.combine(prof, np.zeros(m), model) if prof is not None else (None, None)
        if lo is None or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            return None, None, dict(NO_SIGMAS)
        return lo, hi, {**NO_SIGMAS, "model": model}

    def _admitted(self, boot: np.ndarray) -> np.ndarray:
        """The bootstrap refits whose floor the profile likelihood admits at uncertainty.ADMIT_LEVEL (99%; all of
        them where the floor is identified, or where fewer than half would remain): a resample of a few runs can put
        the floor where the whole data reject it, and such a refit would widen the interval with a law the data rule
        out. At the intervals' own 90% the simulated sweeps' coverage fell to 85%; at 99% it is 88% (was 94%)."""
        prof = self.profile
        if not prof or "range" not in prof or prof.get("param") not in self.law.names or len(boot) == 0:
            return boot
        j = self.law.names.index(prof["param"])
        lo, hi = prof.get("admit_range", prof["range"])
        pad = 1e-9 + 0.02 * (hi - lo)
        keep = (boot[:, j] >= lo - pad) & (boot[:, j] <= hi + pad)
        return boot[keep] if keep.sum() >= max(10, len(boot) // 2) else boot

    def gradient(self, X):
        """d log L / d theta (natural units) at each target, by central differences; 0 for a parameter at a bound."""
        grads = []
        for j, spec in enumerate(self.law.params):
            h = 1e-6 * max(abs(self.values[j]), 1e-8)
            tp, tm = self.values.copy(), self.values.copy()
            tp[j] = min(tp[j] + h, spec.max)
            tm[j] = max(tm[j] - h, spec.min)  # one-sided at a bound
            if spec.name in self.at_bound or tp[j] == tm[j]:
                grads.append(np.zeros(np.size(self.log_predict(X))))
                continue
            with np.errstate(all="ignore"):
                diff = np.reshape(self.law.log_predict(tp, X), -1) - np.reshape(self.law.log_predict(tm, X), -1)
            grads.append(diff / (tp[j] - tm[j]))
        return np.nan_to_num(np.stack(grads, axis=-1), nan=0.0, posinf=0.0, neginf=0.0)

    # ---- the fit file ---------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        names = self.law.names
        boot = None
        if self.bootstrap is not None:
            boot = {"n": int(len(self.bootstrap)), "requested": int(self.bootstrap_requested), "seed": int(self.seed),
                    "quantiles": {n: p.quantiles for n, p in self.params.items()},
                    "samples": self.bootstrap.tolist()}
        d = self.data
        return {
            "format": FIT_FORMAT, "version": __version__, "kind": self.kind, "law": self.law.name,
            "formula": self.law.formula,
            "params": {n: {"value": float(v), "stderr": _finite(s)} for n, v, s in zip(names, self.values, self.stderr)},
            "covariance": None if self.covariance is None else {"names": names, "matrix": self.covariance.tolist()},
            "n_points": self.n_points, "dof": self.dof,
            "x_range": {"compute": [float(d.compute.min()), float(d.compute.max())]},
            "compute_convention": self.compute_convention, "converged": bool(self.converged),
            "objective": {"loss": "linear" if self.delta is None else "huber", "delta": self.delta,
                          "value": float(self.cost), "space": "log", "n_starts": self.n_starts},
            "noise_sigma": _finite(self.noise_sigma), "seed_noise": self.seed_noise,
            "model_error_per_decade": self.model_error_per_decade, "at_bound": self.at_bound,
            "floor_fixed": next((float(v) for pp, v in zip(self.law.params, self.values) if pp.min == pp.max), None),
            "points": [{"run": nm, "compute": float(c), "params": _finite(n), "tokens": _finite(t), "loss": float(l),
                        "residual": float(r)}
                       for nm, c, n, t, l, r in zip(d.names, d.compute, d.n_params, d.tokens, d.loss, self.residuals)],
            "residuals": [float(r) for r in self.residuals],
            "frontier": d.frontier, "bootstrap": boot, "floor_profile": self.profile, "warnings": self.warnings,
            "inputs": self.input_files,
        }

    @classmethod
    def from_dict(cls, obj: dict, source: str = "fit file") -> "Fit":
        """A fit file's content read back, every field checked (checks.py): a hand-edited or damaged file is one
        InputError naming the file and the field."""
        law = law_of(obj, source)
        floor = checks.number(obj, "floor_fixed", source, optional=True, default=None)
        law = law if floor is None else with_floor(law, floor)
        names, where = law.names, f"{source}"
        check_format(obj, source)
        params = checks.mapping(obj, "params", where)
        values = checks.within_bounds(np.array([checks.number(checks.mapping(params, n, f"{where}: params"), "value",
                                                              f"{where}: params.{n}") for n in names]), law, where,
                                      "params")
        stderr = np.array([checks.number(checks.mapping(params, n, f"{where}: params"), "stderr",
                                         f"{where}: params.{n}", optional=True, default=np.nan) for n in names])
        p = len(names)
        cov = checks.optional_mapping(obj, "covariance", where)
        pts = checks.records(obj, "points", where, min_len=1)
        column = {k: np.array([checks.number(pt, k, f"{where}: points[{i}]", optional=k in ("params", "tokens"),
                                             default=np.nan) for i, pt in enumerate(pts)])
                  for k in ("compute", "loss", "params", "tokens")}
        for k in ("compute", "loss"):
            if np.any(column[k] <= 0):
                raise InputError(f"{where}: points: every {k} must be positive")
        boot = checks.optional_mapping(obj, "bootstrap", where)
        objective = checks.mapping(obj, "objective", where)
        delta = checks.number(objective, "delta", f"{where}: objective", optional=True, default=None)
        if delta is not None and delta <= 0:
            raise InputError(f"{where}: objective.delta must be positive, got {delta}")
        at_bound = checks.strings(obj, "at_bound", where)
        if set(at_bound) - set(names):
            raise InputError(f"{where}: at_bound names {sorted(set(at_bound) - set(names))}, not parameters of the "
                             f"{law.name} law")
        return cls(
            law=law, values=values, stderr=stderr,
            covariance=None if cov is None else checks.matrix(cov, "matrix", f"{where}: covariance", (p, p)),
            data=FitData(column["compute"], column["loss"], column["params"], column["tokens"],
                         [str(pt.get("run", f"point{i}")) for i, pt in enumerate(pts)],
                         checks.optional_list(obj, "frontier", where)),
            residuals=checks.vector(obj, "residuals", where, len(pts)), delta=delta,
            cost=checks.number(objective, "value", f"{where}: objective"),
            converged=checks.boolean(obj, "converged", where),
            noise_sigma=checks.number(obj, "noise_sigma", where, optional=True, default=None),
            bootstrap=None if not boot else checks.within_bounds(
                checks.matrix(boot, "samples", f"{where}: bootstrap", (None, p)), law, f"{where}: bootstrap", "samples"),
            bootstrap_requested=int(checks.number(boot, "requested", f"{where}: bootstrap")) if boot else 0,
            seed=int(checks.number(boot, "seed", f"{where}: bootstrap")) if boot else 0,
            model_error_per_decade=checks.number(obj, "model_error_per_decade", where, optional=True,
                                                 default=intervals.MODEL_ERROR_PER_DECADE),
            at_bound=at_bound, warnings=checks.strings(obj, "warnings", where),
            input_files=checks.optional_list(obj, "inputs", where) or [],
            n_starts=int(checks.number(objective, "n_starts", f"{where}: objective", optional=True, default=0)),
            seed_noise=checks.seed_noise(obj, where), compute_convention=checks.convention(obj, where),
            profile=checks.profile(obj, where, law),
        )


def _finite(x):
    return None if x is None or not np.isfinite(x) else float(x)
