"""Fitting a law to runs: the points it is fitted to, the fit itself, its uncertainty, and predictions.

How a fit is made (method.md section 3):
1. Residuals in log space, r = log L_law - log L_observed, under a Huber loss (delta 1e-3 by default, as Hoffmann
   et al. 2022 and Besiroglu et al. 2024) or plain least squares (`delta=None`).
2. Every start of the law's grid is optimized at once (solver.solve_batch), the best few are polished with lmfit
   (solver.polish: scipy's trust-region least squares under the same loss, tight tolerances), and the lowest
   objective wins. lmfit is the polishing step only: its own uncertainty (the covariance of a least-squares
   problem, conf_interval's F-test profiles) assumes Gaussian residuals and a minimum away from bounds, which a
   Huber fit whose floor sits near 0 does not have; the bootstrap below does not assume either.
3. Parameters at a bound are set to it, held fixed for the covariance, and said. Covariance from the Jacobian at
   the optimum; bootstrap over runs (default 1,000 seeded resamples, each refitted from the optimum, batched).

A prediction's interval is built in intervals.py, term by term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import defaults, intervals
from .errors import InputError
from .frontier import frontier, seed_noise, unbracketed_warning
from .laws import Law, get_law
from .runs import RunTable
from .solver import huber_cost, polish, solve_batch
from .uncertainty import bootstrap, covariance, floor_profile, floor_warnings

MAX_EXTRAPOLATION = 1e4  # beyond 10,000x the largest fitted compute, predictions carry a warning


@dataclass
class FitData:
    """The points a law is fitted to: the frontier (compute/power) or all runs (chinchilla)."""

    compute: np.ndarray
    loss: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    names: list[str]
    frontier: list[dict] | None = None


def fit_data(table: RunTable, law: Law, all_points: bool = False) -> FitData:
    if law.inputs == ("compute",):
        if all_points:
            return FitData(table.compute, table.loss, table.params, table.tokens, list(table.names))
        pts = frontier(table)
        return FitData(
            np.array([p.compute for p in pts]), np.array([p.loss for p in pts]),
            np.array([p.params for p in pts]), np.array([p.tokens for p in pts]),
            [table.names[p.best] if len(p.members) == 1 else f"frontier@{p.compute:.3g}" for p in pts],
            [p.as_dict(table) for p in pts],
        )
    if not table.has_params_tokens:
        bad = [r["_where"] for r in table.records if r.get("params") is None or r.get("tokens") is None]
        raise InputError(f"{bad[0]}: the {law.name} law needs params and tokens for every run")
    return FitData(table.compute, table.loss, table.params, table.tokens, list(table.names))


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
    inputs: list[dict] = field(default_factory=list)
    n_starts: int = 0
    seed_noise: dict | None = None  # {"sigma", "dof", "groups", "each"}: log-loss scatter of repeated runs
    compute_convention: str | None = None  # how the fitted compute was counted (runs.CONVENTIONS)
    # the floor's profile likelihood: {"param", "range": [lo, hi], "level", "thetas": laws it admits} (floor_profile)
    profile: dict | None = None

    @property
    def n_points(self) -> int:
        return len(self.data.loss)

    @property
    def dof(self) -> int:
        return self.n_points - len(self.values) + len(self.at_bound)

    @property
    def max_compute(self) -> float:
        return float(np.max(self.data.compute))

    def value(self, name: str) -> float:
        return float(self.values[self.law.names.index(name)])

    @property
    def params(self) -> dict[str, ParamEstimate]:
        """The lmfit-like view of the parameters, by name."""
        qs = {}
        if self.bootstrap is not None:
            levels = ("0.025", "0.05", "0.5", "0.95", "0.975")
            q = np.quantile(self.bootstrap, [float(x) for x in levels], axis=0)
            qs = {n: dict(zip(levels, map(float, q[:, i]))) for i, n in enumerate(self.law.names)}
        return {p.name: ParamEstimate(p.name, float(v), float(s), p.min, p.max, p.name in self.at_bound,
                                      qs.get(p.name, {}))
                for p, v, s in zip(self.law.params, self.values, self.stderr)}

    # ---- predictions ------------------------------------------------------------------------------------------

    def log_predict(self, X, theta=None) -> np.ndarray:
        return self.law.log_predict(self.values if theta is None else theta, X)

    def predict(self, compute=None, params=None, tokens=None, level: float = defaults.LEVEL) -> list[dict]:
        """Predicted loss with a `level` interval at each target. Compute-law fits take `compute` (in the fit's
        compute convention); chinchilla fits take `params` and `tokens`, or `compute` alone for the
        compute-optimal split (C = 6ND)."""
        law = self.law
        if law.inputs == ("compute",):
            if compute is None:
                raise InputError(f"a {law.name} fit predicts from compute: give --compute")
            compute = np.atleast_1d(np.asarray(compute, dtype=float))
            n = np.full(compute.shape, np.nan) if params is None else np.atleast_1d(np.asarray(params, float))
            d = np.full(compute.shape, np.nan) if tokens is None else np.atleast_1d(np.asarray(tokens, float))
        else:
            if params is not None and tokens is not None:
                n = np.atleast_1d(np.asarray(params, dtype=float))
                d = np.atleast_1d(np.asarray(tokens, dtype=float))
                compute = 6.0 * n * d if compute is None else np.atleast_1d(np.asarray(compute, float))
            elif compute is not None and params is None and tokens is None:
                compute = np.atleast_1d(np.asarray(compute, dtype=float))
                n, d = law.derived["optimal_allocation"](self.values, compute)
                n, d = np.atleast_1d(n), np.atleast_1d(d)
            else:
                raise InputError("a chinchilla fit predicts from --params and --tokens, or from --compute alone "
                                 "(the compute-optimal split)")
        if not (0 < level < 1):
            raise InputError(f"--level must be between 0 and 1, got {level}")
        X = law.features(compute=compute, params=n, tokens=d)
        center = np.reshape(self.log_predict(X), -1)
        lo_sig, hi_sig, parts = self.sigmas(X, compute, level, center)
        mult = intervals.z_of(level)
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
            if ratio > MAX_EXTRAPOLATION:
                rec["warning"] = (f"target is {ratio:,.0f}x the largest fitted compute, beyond the 10,000x that "
                                  f"predictable-scaling evidence covers")
            out.append(rec)
        return out

    def compute_6nd(self, params, tokens) -> list[float]:
        """Targets given as params and tokens, as compute for a compute-law fit: 6ND, where the fit counts compute
        that way (or as its table reported it, taken to be 6ND); an InputError where it counts exact FLOPs."""
        if self.compute_convention in ("6nd", "reported"):
            return [6.0 * a * b for a, b in zip(params, tokens)]
        from .runs import CONVENTIONS

        conv = self.compute_convention
        raise InputError(f"this fit counts compute as {conv} ({CONVENTIONS.get(conv, conv)}), and --params/--tokens "
                         f"give 6ND = 6 N D, which is not that (exact/6ND is 1.15-1.28 for small models): give "
                         f"--compute in the fit's convention, or refit with --compute-convention 6nd")

    def sigmas(self, X, compute, level, center):
        """Log-space standard deviations (lower side, upper side) of a new run's loss, and their parts."""
        m = len(np.atleast_1d(compute))
        boot_lp = None if self.bootstrap is None else self.law.log_predict(self._admitted(self.bootstrap), X)
        boot = intervals.bootstrap_term(boot_lp, center, level)
        delta = intervals.delta_term(self.gradient(X), self.covariance, level, self.dof)
        prof = None
        if self.profile and self.profile.get("thetas"):
            prof = intervals.profile_term(self.law.log_predict(np.asarray(self.profile["thetas"]), X), center, level)
        if boot is None and delta is None:
            return None, None, {"bootstrap": None, "delta": None, "noise": None, "model": None}
        # the bootstrap captures the law's non-linearity (asymmetric intervals); the delta method stands in where
        # the bootstrap could not be run
        parameter = boot if boot is not None else (delta, delta)
        if prof is not None:  # never narrower than the floor's admitted range
            parameter = (np.maximum(parameter[0], prof[0]), np.maximum(parameter[1], prof[1]))
        noise = intervals.noise_term(m, level, self.noise_sigma, self.dof, self.seed_noise)
        model = intervals.model_term(compute, self.max_compute, self.model_error_per_decade)
        lo, hi = intervals.combine(parameter, noise, model)
        return lo, hi, {"bootstrap": None if boot is None else (boot[0] + boot[1]) / 2, "delta": delta,
                        "noise": noise, "model": model}

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
        return np.stack(grads, axis=-1)

    # ---- the one human-readable summary (the fit command, the sweep's end step) ------------------------------

    def report(self) -> list[str]:
        """The fit in a few lines, as the fit command and a sweep's end step print it (summary.fit_lines)."""
        from .summary import fit_lines

        return fit_lines(self)

    # ---- the fit file (fitfile.py) ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        from .fitfile import fit_to_dict

        return fit_to_dict(self)

    @classmethod
    def from_dict(cls, obj: dict, source: str = "fit file") -> "Fit":
        from .fitfile import fit_from_dict

        return fit_from_dict(obj, source)


def fit_law(
    table: RunTable,
    law: Law | str,
    delta: float | None = defaults.HUBER_DELTA,
    n_bootstrap: int = defaults.BOOTSTRAP,
    seed: int = 0,
    all_points: bool = False,
    model_error_per_decade: float = intervals.MODEL_ERROR_PER_DECADE,
    inputs: list | None = None,
    starts=None,
) -> Fit:
    """Fit `law` to `table` (see the module's docstring). `starts`: (S, n_params) starting values in natural units to
    use instead of the law's grid (a nested backtest starts from the full fit's optimum and a thinned grid)."""
    if law == "auto":  # law averaging by nested backtest (ensemble.py)
        from .ensemble import fit_auto

        return fit_auto(table, delta=delta, n_bootstrap=n_bootstrap, seed=seed, inputs=inputs)
    law = get_law(law) if isinstance(law, str) else law
    if delta is not None and delta <= 0:
        raise InputError(f"--huber-delta must be positive, got {delta} (use --no-huber for least squares)")
    if table.convention == "mixed" and law.inputs == ("compute",):
        raise InputError(f"{', '.join(table.sources)}: the runs count compute in different conventions; "
                         f"read them with one (load_runs(convention=...))")
    data = fit_data(table, law, all_points)
    n, p = len(data.loss), len(law.params)
    src = ", ".join(table.sources)
    if n < p:
        raise InputError(f"{src}: {n} points to fit, but the {law.name} law has {p} parameters "
                         f"({'frontier points' if law.inputs == ('compute',) and not all_points else 'runs'})")
    warnings = list(table.warnings)
    if n <= p + 1:
        warnings.append(f"only {n} points for {p} parameters: the fit interpolates and its uncertainty cannot be "
                        f"estimated reliably (need at least {p + 2})")
    edge = unbracketed_warning(data.frontier or [])
    if edge:
        warnings.append(edge)
    X = law.features(data.compute, data.params, data.tokens)
    logL = np.log(data.loss)
    best_u, best_cost, converged, n_starts = _optimize(law, X, data.loss, delta, starts)
    lo, hi = law.internal_bounds()
    # parameters at a bound are set to it (lmfit's bound transform leaves e.g. c = 1e-25 for c >= 0), held fixed for
    # the covariance, and said
    at_bound = []
    for i, pp in enumerate(law.params):
        if min(abs(best_u[i] - lo[i]), abs(best_u[i] - hi[i])) <= 1e-6 * max(1.0, abs(best_u[i])):
            best_u[i] = lo[i] if abs(best_u[i] - lo[i]) <= abs(best_u[i] - hi[i]) else hi[i]
            at_bound.append(pp.name)
    values = law.to_natural(best_u)
    residuals = np.reshape(law.log_predict(values, X) - logL, -1)
    if at_bound:
        warnings.append(f"parameter(s) {', '.join(at_bound)} at a bound: the law's form is not supported by "
                        f"these data there; intervals treat them as fixed")
    dof = n - p + len(at_bound)
    rss = float(np.sum(residuals**2))
    noise_sigma = math.sqrt(rss / dof) if dof >= 1 else None
    cov, stderr = covariance(law, X, best_u, values, at_bound, noise_sigma)
    if cov is None:
        warnings.append("covariance (delta-method) interval cannot be computed: "
                        + ("too few points" if dof < 1 else "singular Jacobian"))
    samples = None
    if n_bootstrap > 0:
        samples = bootstrap(law, X, logL, best_u, delta, n_bootstrap, seed, n, p)
        if samples is None or len(samples) < 20:
            warnings.append("bootstrap failed: too few distinct points for resamples to be fitted")
            samples = None
    profile = floor_profile(law, X, logL, best_u, residuals, delta)
    if profile is not None:
        lo_c, hi_c = profile["range"]
        name = profile["param"]
        if name in at_bound or hi_c - lo_c > 0.5 * max(values[law.names.index(name)], 1e-12):
            warnings.append(f"the floor {name} is not identified by these data: {name} from {lo_c:.4g} to {hi_c:.4g} "
                            f"fits them about as well (profile likelihood, 90%); predictions beyond the fitted range "
                            f"depend on it, and their intervals span every law in that range")
    elif samples is not None:
        warnings += floor_warnings(law, values, samples, at_bound)
    if not converged:
        warnings.append("the optimizer did not report convergence: treat the parameters with care")
    return Fit(law=law, values=values, stderr=stderr, covariance=cov, data=data, residuals=residuals, delta=delta,
               cost=best_cost, converged=converged, noise_sigma=noise_sigma, bootstrap=samples,
               bootstrap_requested=n_bootstrap, seed=seed, model_error_per_decade=model_error_per_decade,
               at_bound=at_bound, warnings=warnings, inputs=inputs or [], n_starts=n_starts,
               seed_noise=seed_noise(table), compute_convention=table.convention, profile=profile)


def _optimize(law: Law, X, loss, delta, starts=None):
    """The best optimum over the law's start grid: every start batched (solve_batch), the best 24 refined, the best
    three distinct ones polished by lmfit. Returns (u, cost, converged, n_starts)."""
    lo, hi = law.internal_bounds()
    logL = np.log(loss)
    starts = law.starts(X, loss) if starts is None else np.asarray(starts, dtype=float)
    starts = np.clip(law.to_internal(starts), lo, hi)
    u, cost, _ = solve_batch(law, X, logL, starts, delta, max_iter=40)
    keep = np.argsort(cost)[: min(len(cost), 24)]
    u, cost, done = solve_batch(law, X, logL, u[keep], delta, max_iter=500)
    order = np.argsort(cost)
    best_u, best_cost, best_ok = u[order[0]], cost[order[0]], bool(done[order[0]])
    tried = []
    # the batched solver's converged optimum stands (tests/test_solver_intervals.py: it is what scipy's
    # least_squares finds); lmfit polishes only where it stopped short, since importing lmfit costs more than a
    # whole fit (1.25 s, and more where pandas is installed, which lmfit then imports)
    for k in order[:3] if not done[order[0]] else []:
        if any(np.allclose(u[k], t, rtol=1e-4, atol=1e-6) for t in tried):
            continue
        tried.append(u[k])
        up, ok = polish(law, X, logL, u[k], delta)
        with np.errstate(all="ignore"):
            cp = float(huber_cost(law.log_predict(law.to_natural(up), X) - logL, delta))
        if cp <= best_cost * (1 + 1e-12):
            best_u, best_cost, best_ok = up, cp, ok or best_ok
    # a local optimum check: the polished point must not be beaten by any grid run
    converged = bool(best_ok) and best_cost <= float(np.min(cost)) * (1 + 1e-9) + 1e-15
    return np.array(best_u, dtype=float), float(best_cost), converged, len(starts)
