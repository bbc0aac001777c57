"""The batched solver against scipy's own robust least squares, and each term of the prediction interval on its
own."""

import numpy as np
import pytest
from scipy import optimize, stats

from scalepredict.core import intervals
from scalepredict.core.laws import LAWS, get_law
from scalepredict.core.solver import huber_cost, solve_batch


def _problem(law_name, seed):
    rng = np.random.default_rng(seed)
    law = get_law(law_name)
    if law_name == "compute":
        C = np.logspace(17, 21, 14)
        loss = (300 * C**-0.12 + 1.6) * np.exp(rng.normal(0, 0.01, C.size))
        X = law.features(compute=C)
    else:
        N = np.repeat(np.logspace(7, 9, 6), 4)
        D = N * np.tile([5.0, 20.0, 80.0, 320.0], 6)
        loss = (1.7 + 400 / N**0.34 + 2000 / D**0.37) * np.exp(rng.normal(0, 0.01, N.size))
        X = law.features(params=N, tokens=D)
    return law, X, np.log(loss)


@pytest.mark.parametrize("law_name, seed", [("compute", 0), ("compute", 1), ("chinchilla", 0), ("chinchilla", 1)])
def test_batched_solver_finds_what_scipy_least_squares_huber_finds(law_name, seed):
    """From the same starts (a spread of the law's grid), the batched solver's best optimum is scipy's best: the
    same objective (or lower) and the same parameters."""
    law, X, logL = _problem(law_name, seed)
    delta = 1e-3
    lo, hi = law.internal_bounds()
    grid = np.clip(law.to_internal(law.starts(X, np.exp(logL))), lo, hi)
    starts = grid[np.linspace(0, len(grid) - 1, min(len(grid), 24)).astype(int)]
    u, cost, _ = solve_batch(law, X, logL, starts, delta, max_iter=500)

    def resid(v):
        return np.reshape(law.log_predict(law.to_natural(v), X), -1) - logL

    refs = [optimize.least_squares(resid, s, bounds=(lo, hi), loss="huber", f_scale=delta, xtol=1e-15, ftol=1e-15,
                                   gtol=1e-15, max_nfev=20000).x for s in starts]
    ref_costs = [float(huber_cost(resid(x), delta)) for x in refs]
    best, ref_best = int(np.argmin(cost)), int(np.argmin(ref_costs))
    assert cost[best] <= ref_costs[ref_best] * (1 + 1e-6)  # at least as low an objective
    assert np.allclose(law.to_natural(u[best]), law.to_natural(refs[ref_best]), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("name", [n for n, law in LAWS.items() if law.log_jacobian is not None])
def test_each_analytic_jacobian_matches_central_differences(name):
    """d log L / d (internal coordinates) as the law states it, against central differences at a generic point:
    agreement to 1e-6 relative means the solver's Gauss-Newton steps follow the true gradient."""
    law = get_law(name)
    rng = np.random.default_rng(1)
    N, D = 10 ** rng.uniform(7, 9, 6), 10 ** rng.uniform(9, 11, 6)
    X = law.features(compute=6 * N * D, params=N, tokens=D)
    natural = {"a": 300.0, "b": -0.1, "c": 1.7, "E": 1.7, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.3,
               "gamma": 0.05}
    u = law.to_internal(np.array([natural[k] for k in law.names]))
    J = np.reshape(law.log_jacobian(law.to_natural(u), X), (6, -1))
    for j in range(len(u)):
        h = 1e-6 * max(1.0, abs(u[j]))
        up, dn = u.copy(), u.copy()
        up[j] += h
        dn[j] -= h
        fd = (np.reshape(law.log_predict(law.to_natural(up), X), -1)
              - np.reshape(law.log_predict(law.to_natural(dn), X), -1)) / (2 * h)
        np.testing.assert_allclose(J[:, j], fd, rtol=1e-6, atol=1e-9)


def test_bootstrap_term_is_the_quantile_spread_over_z():
    rng = np.random.default_rng(0)
    lp = rng.normal(0.5, 0.02, size=(2000, 3))
    center = np.array([0.5, 0.49, 0.51])
    lo, hi = intervals.bootstrap_term(lp, center, 0.9)
    q05, q95 = np.nanquantile(lp, [0.05, 0.95], axis=0)
    z = stats.norm.ppf(0.95)
    assert np.allclose(lo, np.maximum(center - q05, 0) / z) and np.allclose(hi, np.maximum(q95 - center, 0) / z)
    assert intervals.bootstrap_term(lp[:19], center, 0.9) is None  # too few replicas


def test_delta_term_is_student_scaled_gcg():
    g = np.array([[1.0, 2.0], [0.5, -1.0]])
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    t = stats.t.ppf(0.95, 5) / stats.norm.ppf(0.95)
    expect = t * np.sqrt([g[0] @ cov @ g[0], g[1] @ cov @ g[1]])
    assert np.allclose(intervals.delta_term(g, cov, 0.9, 5), expect)
    assert intervals.delta_term(g, None, 0.9, 5) is None


def test_noise_term_never_goes_below_the_seed_scatter():
    t8 = stats.t.ppf(0.95, 8) / stats.norm.ppf(0.95)
    t2 = stats.t.ppf(0.95, 2) / stats.norm.ppf(0.95)
    assert np.allclose(intervals.noise_term(2, 0.9, 0.01, 8, None), t8 * 0.01)
    seeds = {"sigma": 0.02, "dof": 2}
    assert np.allclose(intervals.noise_term(2, 0.9, 0.01, 8, seeds), t2 * 0.02)
    assert np.allclose(intervals.noise_term(1, 0.9, 0.05, 8, seeds), t8 * 0.05)


def test_model_term_grows_per_decade_beyond_the_fitted_range():
    m = intervals.model_term([1e18, 1e20, 1e22], 1e20, per_decade=0.003)
    assert np.allclose(m, [0.0, 0.0, 0.006])


def test_terms_add_in_quadrature():
    lo, hi = intervals.combine((np.array([0.03]), np.array([0.04])), np.array([0.0]), np.array([0.0]))
    assert lo[0] == pytest.approx(0.03) and hi[0] == pytest.approx(0.04)
    lo, hi = intervals.combine((np.array([0.03]), np.array([0.0])), np.array([0.04]), np.array([0.0]))
    assert lo[0] == pytest.approx(0.05) and hi[0] == pytest.approx(0.04)
