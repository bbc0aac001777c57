"""Robust least squares in log space, for many starts at once.

`solve_batch` minimizes the Huber (or squared) objective of log-space residuals from every row of a start grid, or
for every bootstrap replica, in one batched Levenberg-Marquardt loop in numpy (IRLS Huber weights, bounds by
clipping). It finds the same optima as scipy.optimize.least_squares(loss="huber") (tests/test_fit.py checks it on
the same problems) at a fraction of the cost when there are thousands of starts or replicas. `polish` then runs
scipy's trust-region least squares through lmfit from the best candidates, at tight tolerances: the final word
on the optimum, with lmfit's bounded Parameters.
"""

from __future__ import annotations

import warnings

import numpy as np

from .laws import Law


def huber_cost(r, delta):
    """Sum over the last axis of the Huber loss of residuals `r` (plain 0.5 r^2 where delta is None)."""
    a = np.abs(r)
    if delta is None:
        c = 0.5 * r * r
    else:
        c = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    c = c.sum(axis=-1)
    return np.where(np.isfinite(c), c, np.inf)


def _take(X, idx):
    return {k: (v[idx] if v.ndim == 2 else v) for k, v in X.items()}


def solve_batch(law: Law, X: dict, logL: np.ndarray, u0: np.ndarray, delta, max_iter=300, ftol=1e-13, fixed=None):
    """Minimize the Huber (or squared) log-space objective from every row of `u0` (internal coordinates).

    X and logL are either shared (shape (n,)) or one row per start (shape (B, n), the bootstrap case). `fixed`: a
    boolean mask of parameters held at their start values. Returns (u, cost, converged) with one row per start.
    """
    lo, hi = law.internal_bounds()
    u = np.clip(np.array(u0, dtype=float), lo, hi)
    B, p = u.shape
    per_row = logL.ndim == 2
    free = (np.ones(p, bool) if fixed is None else ~np.asarray(fixed, bool)) & (lo < hi)  # pinned: fixed

    def resid(uu, idx):
        XX = _take(X, idx) if per_row else X
        LL = logL[idx] if per_row else logL
        with np.errstate(all="ignore"):
            return law.log_predict(law.to_natural(uu), XX) - LL

    def jac(ua, idx, ra):
        if law.log_jacobian is not None:
            XX = _take(X, idx) if per_row else X
            with np.errstate(all="ignore"):
                return np.array(law.log_jacobian(law.to_natural(ua), XX), dtype=float)
        # forward differences, stepping inward at an upper bound
        h = 1e-7 * np.maximum(1.0, np.abs(ua))
        h = np.where(ua + h > hi, -h, h)
        J = np.empty(ra.shape + (p,))
        for j in range(p):
            uh = ua.copy()
            uh[:, j] += h[:, j]
            J[..., j] = (resid(uh, idx) - ra) / h[:, j : j + 1]
        return J

    r = resid(u, np.arange(B))
    cost = huber_cost(r, delta)
    lam = np.full(B, 1e-3)
    done = np.zeros(B, bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        ua, ra = u[idx], r[idx]
        J = jac(ua, idx, ra)
        J[~np.isfinite(J)] = 0.0
        J[..., ~free] = 0.0
        ra_f = np.where(np.isfinite(ra), ra, 0.0)
        w = np.ones_like(ra_f) if delta is None else np.minimum(1.0, delta / np.maximum(np.abs(ra_f), 1e-300))
        JWt = np.swapaxes(J * w[..., None], 1, 2)
        A = JWt @ J
        g = (JWt @ ra_f[..., None])[..., 0]
        diag = np.einsum("bii->bi", A)
        # a fixed parameter's row is the identity (its gradient is 0): it does not move
        M = A + (lam[idx, None] * (diag + 1e-12))[:, :, None] * np.eye(p) + np.diag((~free) * 1.0)
        try:
            step = -np.linalg.solve(M, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(m, gg, rcond=None)[0] for m, gg in zip(M, g)])
        step[:, ~free] = 0.0
        trial = np.clip(ua + step, lo, hi)
        rt = resid(trial, idx)
        ct = huber_cost(rt, delta)
        better = ct < cost[idx]
        gain = cost[idx] - ct
        ib = idx[better]
        u[ib], cost[ib], r[ib] = trial[better], ct[better], rt[better]
        lam[ib] = np.maximum(lam[ib] / 3.0, 1e-12)
        lam[idx[~better]] *= 4.0
        small = better & (gain <= ftol * np.maximum(ct, 1e-300))
        stuck = lam[idx] > 1e10
        done[idx[small | stuck]] = True
    return u, cost, done


def polish(law: Law, X, logL, u_start, delta, fixed=None):
    """Polish a start with lmfit (scipy least_squares, trust-region reflective, the same Huber loss, tight
    tolerances). Returns (u, success)."""
    import lmfit

    lo, hi = law.internal_bounds()
    P = lmfit.Parameters()
    keys = []
    for i, p in enumerate(law.params):
        key = f"log_{p.name}" if p.log else p.name
        keys.append(key)
        vary = (fixed is None or not fixed[i]) and lo[i] < hi[i]
        bounds = dict(min=lo[i], max=hi[i]) if lo[i] < hi[i] else {}  # a pinned parameter: fixed, unbounded
        P.add(key, value=float(np.clip(u_start[i], lo[i], hi[i])), vary=vary, **bounds)

    def residual(P):
        u = np.array([P[k].value for k in keys])
        with np.errstate(all="ignore"):
            r = law.log_predict(law.to_natural(u), X) - logL
        return np.where(np.isfinite(r), r, 1e3)

    kws = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=20000, x_scale="jac")
    if delta is not None:
        kws.update(loss="huber", f_scale=delta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = lmfit.minimize(residual, P, method="least_squares", **kws)
    return np.array([res.params[k].value for k in keys]), bool(res.success)
