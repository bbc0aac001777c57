"""Fitting one law to runs: the points it is fitted to, the optimum over a start grid, and its uncertainty.

How a fit is made (docs/fitting.md; Hoffmann et al. 2022 appendix D.2, Besiroglu et al. 2024):
1. Residuals in log space, r = log L_law - log L_observed, under a Huber loss (delta 1e-3 by default, as Hoffmann
   et al. 2022 and Besiroglu et al. 2024) or plain least squares (`delta=None`).
2. Every start of the law's grid is optimized at once (solver.solve_batch), the best few are polished with lmfit
   (solver.polish: scipy's trust-region least squares under the same loss, tight tolerances), and the lowest
   objective wins. lmfit is the polishing step only: its own uncertainty (the covariance of a least-squares
   problem, conf_interval's F-test profiles) assumes Gaussian residuals and a minimum away from bounds, which a
   Huber fit whose floor sits near 0 does not have; the bootstrap below does not assume either.
3. Parameters at a bound are set to it, held fixed for the covariance, and said. Covariance from the Jacobian at
   the optimum; bootstrap over runs (default 1,000 seeded resamples, each refitted from the optimum, batched).

The result is a result.Fit; a prediction's interval is built in intervals.py, term by term.
"""

from __future__ import annotations

import math

import numpy as np

from .. import defaults
from ..errors import InputError
from ..frontier import frontier, seed_noise, unbracketed_warning
from ..runs import RunTable
from . import intervals
from .laws import Law, get_law, pinned
from .result import Fit, FitData
from .solver import huber_cost, polish, solve_batch
from .uncertainty import bootstrap, covariance, floor_profile, floor_warnings


def fit_data(table: RunTable, law: Law, all_points: bool = False) -> FitData:
    """The points `law` is fitted to: the frontier (compute laws; every run with `all_points`) or every run (N-D
    laws, which need params and tokens for each)."""
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


def fit_single(
    table: RunTable,
    law: Law | str,
    delta: float | None = defaults.HUBER_DELTA,
    n_bootstrap: int = defaults.BOOTSTRAP,
    seed: int = 0,
    all_points: bool = False,
    model_error_per_decade: float = intervals.MODEL_ERROR_PER_DECADE,
    sources: list | None = None,
    starts=None,
) -> Fit:
    """Fit `law` to `table` (see the module's docstring). `starts`: (S, n_params) starting values in natural units to
    use instead of the law's grid (a nested backtest starts from the full fit's optimum and a thinned grid).
    `sources`: the fitted files' paths and hashes, kept in the fit file."""
    law = get_law(law) if isinstance(law, str) else law
    check_delta(delta)
    if table.convention == "mixed" and law.inputs == ("compute",):
        raise InputError(f"{', '.join(table.sources)}: the runs count compute in different conventions; "
                         f"read them with one (load_runs(convention=...))")
    data = fit_data(table, law, all_points)
    n, p = len(data.loss), len(law.params)
    if n < p:
        raise InputError(f"{', '.join(table.sources)}: {n} points to fit, but the {law.name} law has {p} parameters "
                         f"({'frontier points' if law.points == 'frontier' and not all_points else 'runs'})")
    warnings = list(table.warnings)
    if n <= p + 1:
        warnings.append(f"only {n} points for {p} parameters: the fit interpolates and its uncertainty cannot be "
                        f"estimated reliably (need at least {p + 2})")
    edge = unbracketed_warning(data.frontier or [])
    if edge:
        warnings.append(edge)
    X = law.features(data.compute, data.n_params, data.tokens)
    logL = np.log(data.loss)
    best_u, best_cost, converged, n_starts = _optimize(law, X, data.loss, delta, starts)
    at_bound = _snap_to_bounds(law, best_u)
    values = law.to_natural(best_u)
    residuals = np.reshape(law.log_predict(values, X) - logL, -1)
    fixed = pinned(law)
    if [b for b in at_bound if b not in fixed]:
        warnings.append(f"parameter(s) {', '.join(b for b in at_bound if b not in fixed)} at a bound: the law's "
                        f"form is not supported by these data there; intervals treat them as fixed")
    warnings += [f"the floor {name} is fixed at {values[law.names.index(name)]:.4g} (--floor), not fitted"
                 for name in fixed]
    dof = n - p + len(at_bound)
    rss = float(np.sum(residuals**2))
    noise_sigma = math.sqrt(rss / dof) if dof >= 1 else None
    cov, stderr = covariance(law, X, best_u, values, at_bound, noise_sigma)
    if cov is None:
        warnings.append("covariance (delta-method) interval cannot be computed: "
                        + ("too few points" if dof < 1 else "singular Jacobian"))
    samples = None
    if n_bootstrap > 0 and dof >= 1:
        samples = bootstrap(law, X, logL, best_u, delta, n_bootstrap, seed, n, p)
        if samples is None or len(samples) < 20:
            warnings.append("bootstrap failed: too few distinct points for resamples to be fitted")
            samples = None
    profile = floor_profile(law, X, logL, best_u, residuals, delta)
    warnings += _floor_warnings(law, values, samples, at_bound, profile)
    if not converged:
        warnings.append("the optimizer did not report convergence: treat the parameters with care")
    return Fit(law=law, values=values, stderr=stderr, covariance=cov, data=data, residuals=residuals, delta=delta,
               cost=best_cost, converged=converged, noise_sigma=noise_sigma, bootstrap=samples,
               bootstrap_requested=n_bootstrap, seed=seed, model_error_per_decade=model_error_per_decade,
               at_bound=at_bound, warnings=warnings, input_files=sources or [], n_starts=n_starts,
               seed_noise=seed_noise(table), compute_convention=table.convention, profile=profile)


def check_delta(delta) -> None:
    """The Huber delta: a positive finite number, or None for plain least squares."""
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise InputError(f"--huber-delta must be a positive number, got {delta} (use --no-huber for least squares)")


def _snap_to_bounds(law: Law, u: np.ndarray) -> list[str]:
    """Parameters within rounding of a bound are set to it (lmfit's bound transform leaves e.g. c = 1e-25 for
    c >= 0), to be held fixed for the covariance and said; their names."""
    lo, hi = law.internal_bounds()
    at_bound = []
    for i, pp in enumerate(law.params):
        if min(abs(u[i] - lo[i]), abs(u[i] - hi[i])) <= 1e-6 * max(1.0, abs(u[i])):
            u[i] = lo[i] if abs(u[i] - lo[i]) <= abs(u[i] - hi[i]) else hi[i]
            at_bound.append(pp.name)
    return at_bound


def _floor_warnings(law, values, samples, at_bound, profile) -> list[str]:
    """What the fit says of its floor: not identified by the profile likelihood, or spread by the bootstrap."""
    if profile is not None:
        lo_c, hi_c = profile["range"]
        name = profile["param"]
        if name in at_bound or hi_c - lo_c > 0.5 * max(values[law.names.index(name)], 1e-12):
            return [f"the floor {name} is not identified by these data: {name} from {lo_c:.4g} to {hi_c:.4g} fits "
                    f"them about as well (profile likelihood, 90%); predictions beyond the fitted range depend on it, "
                    f"and their intervals span every law in that range"]
        return []
    return floor_warnings(law, values, samples, at_bound) if samples is not None else []


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
