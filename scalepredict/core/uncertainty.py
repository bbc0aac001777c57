"""The uncertainty of a fitted law: the covariance at the optimum (the delta method's input), the bootstrap over
runs, and the profile likelihood of the floor (c or E), the least identified parameter and the one that matters
most far out (docs/fitting.md). single.fit_single calls these; intervals.py turns them into a prediction's interval.
"""

from __future__ import annotations

import numpy as np

from .. import defaults
from . import intervals
from .laws import FLOOR_NAMES, Law
from .solver import solve_batch


PROFILE_LEVEL = defaults.LEVEL  # the floor range the intervals span
ADMIT_LEVEL = 0.99  # bootstrap refits whose floor this profile range rejects are left out of the intervals


def floor_profile(law: Law, X, logL, u_best, residuals, delta, level: float = PROFILE_LEVEL, n_grid: int = 32):
    """The profile likelihood of the floor (c or E): on a grid from its lower bound to 99.9% of the lowest observed
    loss, the other parameters refitted with the floor held fixed; the grid values whose Gaussian profile
    likelihood ratio n log(RSS / RSS_best) is within the chi-square(1) quantile at `level` are admitted. Where the
    free fit has no residual to compare with (as many points as parameters), no floor on the grid can be rejected:
    every one the other parameters can be fitted at is admitted. Returns {"param", "range", "level", "thetas"}
    (thetas: the admitted laws, natural units), or None where the law has no floor or too few points."""
    j = next((i for i, p in enumerate(law.params) if p.name in FLOOR_NAMES), None)
    n = len(logL)
    if j is None or n < len(law.params) or law.params[j].min == law.params[j].max:  # none, too few points, fixed
        return None
    top = 0.999 * float(np.exp(np.min(logL)))
    lo_nat = max(law.params[j].min, 0.0)
    grid = np.linspace(lo_nat, top, n_grid)
    if law.params[j].log:
        grid = np.geomspace(max(lo_nat, 1e-3 * top), top, n_grid)
    starts = np.tile(u_best, (n_grid, 1))
    starts[:, j] = law.to_internal(np.column_stack([grid] * len(law.params)))[:, j] if law.params[j].log else grid
    fixed = np.zeros(len(law.params), bool)
    fixed[j] = True
    u, cost, _ = solve_batch(law, X, logL, starts, delta, max_iter=300, fixed=fixed)
    with np.errstate(all="ignore"):
        r = law.log_predict(law.to_natural(u), X) - logL
    rss = np.sum(r**2, axis=-1)
    rss_best = max(float(np.sum(residuals**2)), 1e-300)
    chi2_1 = intervals.z_of(level) ** 2  # the chi-square(1) quantile at `level`
    ratio = n * np.log(np.maximum(rss, 1e-300) / rss_best)
    saturated = n <= len(law.params)  # the free fit interpolates: nothing to reject a floor with
    ok = np.isfinite(rss) & ((ratio <= chi2_1) | saturated)
    if not ok.any():
        return None
    thetas = law.to_natural(u[ok])
    # a wider range, at ADMIT_LEVEL: the bootstrap refits whose floor lies outside it are left out of the intervals
    wide = np.isfinite(rss) & ((ratio <= intervals.z_of(ADMIT_LEVEL) ** 2) | saturated)
    return {"param": law.params[j].name, "range": [float(grid[ok].min()), float(grid[ok].max())], "level": level,
            "thetas": thetas.tolist(), "admit_range": [float(grid[wide].min()), float(grid[wide].max())],
            "admit_level": ADMIT_LEVEL}


def floor_warnings(law, values, samples, at_bound) -> list[str]:
    """An irreducible floor the data cannot pin down moves every far extrapolation: say so."""
    out = []
    for j, pp in enumerate(law.params):
        if pp.name in ("c", "E") and pp.name not in at_bound and values[j] > 0:
            q_lo, q_hi = np.quantile(samples[:, j], [0.05, 0.95])
            if q_lo < 0.5 * values[j] or q_hi > 1.5 * values[j]:
                out.append(f"the floor {pp.name} = {values[j]:.4g} is not pinned down by these data (bootstrap "
                           f"90% range {q_lo:.4g} to {q_hi:.4g}); predictions far beyond the fitted range "
                           f"depend on it, and their intervals are wide for that reason")
    return out


def covariance(law, X, u, values, at_bound, noise_sigma):
    """s^2 (J^T J)^-1 in internal coordinates over the free parameters, mapped to natural units."""
    p = len(values)
    free = [i for i, pp in enumerate(law.params) if pp.name not in at_bound]
    stderr = np.full(p, np.nan)
    if noise_sigma is None or not free:
        return None, stderr
    J = []
    for i in free:
        h = 1e-6 * max(1.0, abs(u[i]))
        up, um = u.copy(), u.copy()
        up[i] += h
        um[i] -= h
        J.append((np.reshape(law.log_predict(law.to_natural(up), X), -1)
                  - np.reshape(law.log_predict(law.to_natural(um), X), -1)) / (2 * h))
    J = np.stack(J, axis=1)
    JTJ = J.T @ J
    if not np.all(np.isfinite(JTJ)) or np.linalg.cond(JTJ) > 1e14:
        return None, stderr
    cov_free = noise_sigma**2 * np.linalg.inv(JTJ)
    # natural = exp(internal) for log parameters: d natural / d internal = natural
    scale = np.array([values[i] if law.params[i].log else 1.0 for i in free])
    cov = np.zeros((p, p))
    cov[np.ix_(free, free)] = cov_free * np.outer(scale, scale)
    stderr[free] = np.sqrt(np.diag(cov)[free])
    return cov, stderr


def bootstrap(law, X, logL, u_best, delta, B, seed, n, p):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(B, n))
    distinct = np.array([len(np.unique(row)) for row in idx])
    idx = idx[distinct >= p]
    if len(idx) == 0:
        return None
    Xb = {k: v[idx] for k, v in X.items()}
    u, cost, _ = solve_batch(law, Xb, logL[idx], np.tile(u_best, (len(idx), 1)), delta, max_iter=200)
    # every refit counts, converged or not: the ones still moving after 200 iterations are those sliding along a
    # flat direction of the objective (a floor c or E that the data do not pin down, or a bound). Dropping them
    # biased the spread towards the full-data optimum's side (found by experiments/validate_cpu.py).
    samples = law.to_natural(u[np.isfinite(cost)])
    return samples[np.all(np.isfinite(samples), axis=1)]
