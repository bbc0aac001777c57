"""Fitting a law to runs, bootstrap uncertainty, and predictions with intervals.

How a fit is made (method.md section 3):
1. Residuals in log space, r = log L_law - log L_observed, under a Huber loss (delta 1e-3 by default, as Hoffmann
   et al. 2022 and Besiroglu et al. 2024) or plain least squares (`delta=None`).
2. Every start of the law's grid is optimized (a batched Levenberg-Marquardt with IRLS Huber weights, all starts
   at once in numpy), the best few are polished with lmfit (scipy's trust-region least_squares under the same
   Huber loss, tight tolerances), and the lowest objective wins.
3. Covariance from the Jacobian at the optimum (free parameters only); bootstrap over runs (default 1,000
   seeded resamples, each refitted from the optimum, batched).

A prediction's interval adds, in log space and in quadrature: the parameter uncertainty (the wider of the
bootstrap and the delta-method spread), the run-to-run scatter around the law (residual scale), and a stated
model-error prior that grows with the extrapolation distance (see MODEL_ERROR_PER_DECADE).
"""

from __future__ import annotations

import hashlib
import math
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import InputError
from .laws import Law, get_law
from .runs import RunTable, frontier

DEFAULT_DELTA = 1e-3
DEFAULT_BOOTSTRAP = 1000
DEFAULT_LEVEL = 0.9
FIT_FORMAT = 1
# Model-error prior: the law itself is only an approximation, and published extrapolations miss by more than
# their in-sample intervals say (least-squares 95% intervals covered 61% of larger held-out scales; method.md
# section 3). We add a log-space standard deviation of this much per decade of extrapolation beyond the largest
# fitted compute. Chosen so backtests of the Chinchilla frontier cover at least the nominal 90% (95%: experiments/
# chinchilla_backtest.py prints the coverage per k) and checked not to over-cover well-specified synthetic data
# (benchmarks/coverage.py).
MODEL_ERROR_PER_DECADE = 0.003
MAX_EXTRAPOLATION = 1e4  # beyond 10,000x the largest fitted compute, predictions carry a warning


# ----------------------------------------------------------------------------------------------------------------
# Batched robust Levenberg-Marquardt


def _huber_cost(r, delta):
    a = np.abs(r)
    if delta is None:
        c = 0.5 * r * r
    else:
        c = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    c = c.sum(axis=-1)
    return np.where(np.isfinite(c), c, np.inf)


def _take(X, idx):
    return {k: (v[idx] if v.ndim == 2 else v) for k, v in X.items()}


def solve_batch(law: Law, X: dict, logL: np.ndarray, u0: np.ndarray, delta, max_iter=300, ftol=1e-13):
    """Minimize the Huber (or squared) log-space objective from every row of `u0` (internal coordinates).

    X and logL are either shared (shape (n,)) or one row per start (shape (B, n), the bootstrap case).
    Returns (u, cost, converged) with one row per start.
    """
    lo, hi = law.internal_bounds()
    u = np.clip(np.array(u0, dtype=float), lo, hi)
    B, p = u.shape
    per_row = logL.ndim == 2

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

    all_idx = np.arange(B)
    r = resid(u, all_idx)
    cost = _huber_cost(r, delta)
    lam = np.full(B, 1e-3)
    done = np.zeros(B, bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        ua, ra = u[idx], r[idx]
        J = jac(ua, idx, ra)
        bad = ~np.isfinite(J)
        J[bad] = 0.0
        ra_f = np.where(np.isfinite(ra), ra, 0.0)
        w = np.ones_like(ra_f) if delta is None else np.minimum(1.0, delta / np.maximum(np.abs(ra_f), 1e-300))
        JWt = np.swapaxes(J * w[..., None], 1, 2)
        A = JWt @ J
        g = (JWt @ ra_f[..., None])[..., 0]
        diag = np.einsum("bii->bi", A)
        M = A + (lam[idx, None] * (diag + 1e-12))[:, :, None] * np.eye(p)
        try:
            step = -np.linalg.solve(M, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(m, gg, rcond=None)[0] for m, gg in zip(M, g)])
        trial = np.clip(ua + step, lo, hi)
        rt = resid(trial, idx)
        ct = _huber_cost(rt, delta)
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


# ----------------------------------------------------------------------------------------------------------------
# Fit data and the fit itself


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
    model_error_per_decade: float = MODEL_ERROR_PER_DECADE
    at_bound: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    n_starts: int = 0
    seed_noise: dict | None = None  # {"sigma", "dof", "groups"}: log-loss scatter of repeated runs (other seeds)

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

    # ---- predictions ------------------------------------------------------------------------------------------

    def log_predict(self, X, theta=None) -> np.ndarray:
        return self.law.log_predict(self.values if theta is None else theta, X)

    def predict(self, compute=None, params=None, tokens=None, level: float = DEFAULT_LEVEL) -> list[dict]:
        """Predicted loss with a `level` interval at each target. Compute-law fits take `compute`; chinchilla fits
        take `params` and `tokens`, or `compute` alone for the compute-optimal split."""
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
        lo_sig, hi_sig, parts = self._sigmas(X, compute, level, center)
        from scipy import stats

        mult = float(stats.norm.ppf(0.5 + level / 2))
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

    def _sigmas(self, X, compute, level, center):
        """Log-space standard deviations (lower side, upper side) of a new run's loss, and their parts."""
        from scipy import stats

        z = float(stats.norm.ppf(0.5 + level / 2))
        # terms built on the estimated residual scale use Student's t with the fit's degrees of freedom
        t_over_z = float(stats.t.ppf(0.5 + level / 2, df=max(self.dof, 1))) / z
        m = len(np.atleast_1d(compute))
        boot_lo = boot_hi = None
        if self.bootstrap is not None and len(self.bootstrap) >= 20:
            lp = self.law.log_predict(self.bootstrap, X)  # (B, m)
            q_lo, q_hi = np.nanquantile(lp, [0.5 - level / 2, 0.5 + level / 2], axis=0)
            boot_lo, boot_hi = np.maximum(center - q_lo, 0) / z, np.maximum(q_hi - center, 0) / z
        delta_sig = None
        if self.covariance is not None:
            g = self._gradient(X)  # (m, p)
            delta_sig = t_over_z * np.sqrt(np.maximum(np.einsum("mi,ij,mj->m", g, self.covariance, g), 0))
        if boot_lo is None and delta_sig is None:
            return None, None, {"bootstrap": None, "delta": None, "noise": None, "model": None}
        # the bootstrap captures the law's non-linearity (asymmetric intervals); the delta method stands in where
        # the bootstrap could not be run
        p_lo, p_hi = (boot_lo, boot_hi) if boot_lo is not None else (delta_sig, delta_sig)
        noise = np.full(m, t_over_z * (self.noise_sigma or 0.0))
        if self.seed_noise and self.seed_noise.get("sigma"):
            # a few points leave the residual scale badly estimated; repeated seeds measure a run's own noise,
            # which no law can predict away: the larger of the two stands for the new run's scatter
            t_seed = float(stats.t.ppf(0.5 + level / 2, df=max(self.seed_noise["dof"], 1))) / z
            noise = np.maximum(noise, t_seed * self.seed_noise["sigma"])
        decades = np.maximum(0.0, np.log10(np.atleast_1d(compute) / self.max_compute))
        model = self.model_error_per_decade * decades
        lo = np.sqrt(p_lo**2 + noise**2 + model**2)
        hi = np.sqrt(p_hi**2 + noise**2 + model**2)
        boot = None if boot_lo is None else (boot_lo + boot_hi) / 2
        return lo, hi, {"bootstrap": boot, "delta": delta_sig, "noise": noise, "model": model}

    def _gradient(self, X):
        """d log L / d theta (natural units), by central differences."""
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

    # ---- serialization ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        names = self.law.names

        def f(x):
            return None if x is None or not np.isfinite(x) else float(x)

        boot = None
        if self.bootstrap is not None:
            qs = np.quantile(self.bootstrap, [0.025, 0.05, 0.5, 0.95, 0.975], axis=0)
            boot = {
                "n": int(len(self.bootstrap)),
                "requested": int(self.bootstrap_requested),
                "seed": int(self.seed),
                "quantiles": {n: dict(zip(("0.025", "0.05", "0.5", "0.95", "0.975"), map(float, qs[:, i])))
                              for i, n in enumerate(names)},
                "samples": self.bootstrap.tolist(),
            }
        d = self.data
        return {
            "format": FIT_FORMAT,
            "version": __version__,
            "law": self.law.name,
            "formula": self.law.formula,
            "params": {n: {"value": float(v), "stderr": f(s)} for n, v, s in zip(names, self.values, self.stderr)},
            "covariance": None if self.covariance is None else {"names": names, "matrix": self.covariance.tolist()},
            "n_points": self.n_points,
            "dof": self.dof,
            "x_range": {"compute": [float(d.compute.min()), float(d.compute.max())]},
            "converged": bool(self.converged),
            "objective": {"loss": "linear" if self.delta is None else "huber", "delta": self.delta,
                          "value": float(self.cost), "space": "log", "n_starts": self.n_starts},
            "noise_sigma": f(self.noise_sigma),
            "seed_noise": self.seed_noise,
            "model_error_per_decade": self.model_error_per_decade,
            "at_bound": self.at_bound,
            "points": [
                {"run": nm, "compute": float(c), "params": f(n), "tokens": f(t), "loss": float(l),
                 "residual": float(r)}
                for nm, c, n, t, l, r in zip(d.names, d.compute, d.params, d.tokens, d.loss, self.residuals)
            ],
            "residuals": [float(r) for r in self.residuals],
            "frontier": d.frontier,
            "bootstrap": boot,
            "warnings": self.warnings,
            "inputs": self.inputs,
        }

    @classmethod
    def from_dict(cls, obj: dict, source: str = "fit file") -> "Fit":
        try:
            if obj.get("format") != FIT_FORMAT:
                raise InputError(f"{source}: fit file format {obj.get('format')!r} from scalepredict "
                                 f"{obj.get('version', '?')}, this version reads format {FIT_FORMAT}; refit")
            law = get_law(obj["law"])
            values = np.array([obj["params"][n]["value"] for n in law.names], dtype=float)
            stderr = np.array([np.nan if obj["params"][n]["stderr"] is None else obj["params"][n]["stderr"]
                               for n in law.names], dtype=float)
            cov = obj.get("covariance")
            cov = None if cov is None else np.array(cov["matrix"], dtype=float)
            pts = obj["points"]
            g = lambda k: np.array([np.nan if p.get(k) is None else p[k] for p in pts], dtype=float)  # noqa: E731
            data = FitData(g("compute"), g("loss"), g("params"), g("tokens"), [p["run"] for p in pts],
                           obj.get("frontier"))
            boot = obj.get("bootstrap")
            samples = None if not boot else np.array(boot["samples"], dtype=float)
            obj_ = obj["objective"]
            fit = cls(law, values, stderr, cov, data, np.array(obj["residuals"], dtype=float), obj_["delta"],
                      obj_["value"], bool(obj["converged"]), obj.get("noise_sigma"), samples,
                      boot["requested"] if boot else 0, boot["seed"] if boot else 0,
                      float(obj.get("model_error_per_decade", MODEL_ERROR_PER_DECADE)), list(obj.get("at_bound", [])),
                      list(obj.get("warnings", [])), list(obj.get("inputs", [])), int(obj_.get("n_starts", 0)),
                      obj.get("seed_noise"))
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise InputError(f"{source}: not a valid scalepredict fit file ({type(e).__name__}: {e})") from None
        if values.shape != (len(law.names),) or not np.all(np.isfinite(values)):
            raise InputError(f"{source}: not a valid scalepredict fit file (bad parameter values)")
        return fit


def load_fit(path) -> Fit:
    import json

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}, line {e.lineno}: not a valid fit file (bad JSON: {e.msg})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: not a valid scalepredict fit file")
    return Fit.from_dict(obj, str(path))


def file_digest(path) -> dict:
    h = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"path": str(path), "sha256": h}


# ----------------------------------------------------------------------------------------------------------------


def _lmfit_polish(law: Law, X, logL, u_start, delta):
    """Polish a start with lmfit (scipy least_squares, trust-region reflective, same Huber loss)."""
    import lmfit

    lo, hi = law.internal_bounds()
    P = lmfit.Parameters()
    keys = []
    for i, p in enumerate(law.params):
        key = f"log_{p.name}" if p.log else p.name
        keys.append(key)
        P.add(key, value=float(np.clip(u_start[i], lo[i], hi[i])), min=lo[i], max=hi[i])

    def residual(P):
        u = np.array([P[k].value for k in keys])
        with np.errstate(all="ignore"):
            r = law.log_predict(law.to_natural(u), X) - logL
        return np.where(np.isfinite(r), r, 1e3)

    kws = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=20000, x_scale="jac")
    if delta is not None:
        kws.update(loss="huber", f_scale=delta)
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        res = lmfit.minimize(residual, P, method="least_squares", **kws)
    u = np.array([res.params[k].value for k in keys])
    return u, bool(res.success), res.message


def fit_law(
    table: RunTable,
    law: Law | str,
    delta: float | None = DEFAULT_DELTA,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    all_points: bool = False,
    model_error_per_decade: float = MODEL_ERROR_PER_DECADE,
    inputs: list | None = None,
) -> Fit:
    law = get_law(law) if isinstance(law, str) else law
    if delta is not None and delta <= 0:
        raise InputError(f"--huber-delta must be positive, got {delta} (use --no-huber for least squares)")
    data = fit_data(table, law, all_points)
    n, p = len(data.loss), len(law.params)
    src = ", ".join(table.sources)
    if n < p:
        raise InputError(f"{src}: {n} points to fit, but the {law.name} law has {p} parameters "
                         f"({'frontier points' if law.inputs == ('compute',) and not all_points else 'runs'})")
    warnings = []
    if n <= p + 1:
        warnings.append(f"only {n} points for {p} parameters: the fit interpolates and its uncertainty cannot be "
                        f"estimated reliably (need at least {p + 2})")
    edge = unbracketed_warning(data.frontier or [])
    if edge:
        warnings.append(edge)
    X = law.features(data.compute, data.params, data.tokens)
    logL = np.log(data.loss)
    lo, hi = law.internal_bounds()

    # 1. every start of the grid, batched; keep refining the best ones to convergence
    starts = np.clip(law.to_internal(law.starts(X, data.loss)), lo, hi)
    u, cost, _ = solve_batch(law, X, logL, starts, delta, max_iter=40)
    keep = np.argsort(cost)[: min(len(cost), 24)]
    u, cost, done = solve_batch(law, X, logL, u[keep], delta, max_iter=500)
    order = np.argsort(cost)

    # 2. polish the best distinct candidates with lmfit; keep the lowest objective
    best_u, best_cost, best_ok = u[order[0]], cost[order[0]], bool(done[order[0]])
    tried = []
    for k in order[:3]:
        if any(np.allclose(u[k], t, rtol=1e-4, atol=1e-6) for t in tried):
            continue
        tried.append(u[k])
        up, ok, _ = _lmfit_polish(law, X, logL, u[k], delta)
        with np.errstate(all="ignore"):
            cp = float(_huber_cost(law.log_predict(law.to_natural(up), X) - logL, delta))
        if cp <= best_cost * (1 + 1e-12):
            best_u, best_cost, best_ok = up, cp, ok or best_ok
    # 3. parameters at a bound are set to it (lmfit's bound transform leaves e.g. c = 1e-25 for c >= 0), held fixed
    # for the covariance, and said
    at_bound, best_u = [], np.array(best_u, dtype=float)
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
    cov, stderr = _covariance(law, X, logL, best_u, values, at_bound, noise_sigma)
    if cov is None:
        warnings.append("covariance (delta-method) interval cannot be computed: "
                        + ("too few points" if dof < 1 else "singular Jacobian"))

    # 4. bootstrap over the fitted points
    samples = None
    if n_bootstrap > 0:
        samples = _bootstrap(law, X, logL, best_u, delta, n_bootstrap, seed, n, p)
        if samples is None or len(samples) < 20:
            warnings.append("bootstrap failed: too few distinct points for resamples to be fitted")
            samples = None
    if samples is not None:
        # an irreducible floor the data cannot pin down moves every far extrapolation: say so
        for j, pp in enumerate(law.params):
            if pp.name in ("c", "E") and pp.name not in at_bound and values[j] > 0:
                q_lo, q_hi = np.quantile(samples[:, j], [0.05, 0.95])
                if q_lo < 0.5 * values[j] or q_hi > 1.5 * values[j]:
                    warnings.append(f"the floor {pp.name} = {values[j]:.4g} is not pinned down by these data (bootstrap "
                                    f"90% range {q_lo:.4g} to {q_hi:.4g}); predictions far beyond the fitted range "
                                    f"depend on it, and their intervals are wide for that reason")
    # a local optimum check: the polished point must not be beaten by any grid run
    converged = bool(best_ok) and best_cost <= float(np.min(cost)) * (1 + 1e-9) + 1e-15
    if not converged:
        warnings.append("the optimizer did not report convergence: treat the parameters with care")
    return Fit(law, values, stderr, cov, data, residuals, delta, best_cost, converged, noise_sigma, samples,
               n_bootstrap, seed, model_error_per_decade, at_bound, warnings, inputs or [], len(starts),
               seed_noise(table))


def unbracketed_warning(points: list[dict]) -> str | None:
    """One line naming the IsoFLOP sets whose lowest loss is at their smallest or largest size: Hoffmann's approach
    2 needs the minimum inside the set, so those frontier points are upper bounds (the law is fitted through them
    all the same)."""
    sides = {side: [f"{p['compute']:.3g}" for p in points if p.get("edge") == side] for side in ("largest", "smallest")}
    if not any(sides.values()):
        return None
    n = sum(len(v) for v in sides.values())
    where = "; ".join(f"best at the {side} size: {', '.join(v)} FLOPs" for side, v in sides.items() if v)
    return (f"{n} of {len(points)} IsoFLOP sets do not bracket their minimum ({where}): their frontier points are upper "
            f"bounds; train a size beyond that edge (a sweep's [sweep] bracket does it)")


def seed_noise(table: RunTable) -> dict | None:
    """Pooled standard deviation of log loss over groups of runs with the same params and compute (repeats with
    other seeds, as a sweep's repeats make), with its degrees of freedom; None without repeats."""
    params, compute, loss = table.params, table.compute, table.loss
    ok = np.isfinite(params) & np.isfinite(compute) & np.isfinite(loss)
    groups: dict[tuple, list[float]] = {}
    for n, c, l in zip(params[ok], compute[ok], loss[ok]):
        groups.setdefault((round(math.log(n), 6), round(math.log(c), 6)), []).append(math.log(l))
    reps = {k: np.array(g) for k, g in groups.items() if len(g) >= 2}
    dof = sum(len(g) - 1 for g in reps.values())
    if not dof:
        return None
    sigma = math.sqrt(sum(float(np.sum((g - g.mean()) ** 2)) for g in reps.values()) / dof)
    # each group's own scatter, smallest compute first: on small sweeps it grows with the budget
    each = [{"params": math.exp(n), "compute": math.exp(c), "seeds": len(g), "sigma": float(np.std(g, ddof=1))}
            for (n, c), g in sorted(reps.items(), key=lambda kv: kv[0][1])]
    return {"sigma": sigma, "dof": dof, "groups": len(reps), "each": each}


def _covariance(law, X, logL, u, values, at_bound, noise_sigma):
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


def _bootstrap(law, X, logL, u_best, delta, B, seed, n, p):
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
