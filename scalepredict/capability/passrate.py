"""GPT-4's pass-rate law: the mean log pass rate over a benchmark's problems as a power law of compute.

    -E_problems[ log pass_rate(C) ] = alpha * C^(-k)          (GPT-4 Technical Report, 2023, section 3.1)

fitted in log space (log M = log alpha - k log C, least squares) over the problems every fitted model solves at
least once (GPT-4's restriction: log 0 is -inf; how many problems were kept is reported). The interval bootstraps
models and problems together (each replicate resamples both, then refits) and adds a residual drawn from the fit's
own scatter. The per-problem pass rates the law implies at the target come from each kept problem's own scale with
the shared exponent: -log p_j(C) = alpha_j C^(-k), alpha_j by least squares over the models.

Input: one row per (model, problem): the model's compute (or params and tokens: 6ND), the problem, and either
`samples` and `passes` (k samples, successes) or `pass_rate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import __version__, defaults
from ..core import checks
from ..core.intervals import range_warning, residual_inflation
from ..core.result import FitData
from ..errors import InputError
from ..runs import location, number, read_rows

MIN_MODELS = 3
N_DRAWS = 4000  # residual draws where there is no bootstrap


@dataclass
class PassTable:
    models: list[str]
    compute: np.ndarray  # (M,)
    problems: list[str]
    rate: np.ndarray  # (M, P) pass rates, NaN where a model has no result on a problem
    source: str = ""
    convention: str = "reported"


def _col(row: dict, *names):
    for n in names:
        if n in row and row[n] is not None and str(row[n]).strip() != "":
            return n, row[n]
    return None, None


def read_pass_table(path, columns: dict | None = None) -> PassTable:
    """Read a pass table (CSV, JSONL or JSON array): one row per model and problem. Every fault is an InputError
    naming the file, line and column."""
    columns = {k: v for k, v in (columns or {}).items() if v}
    rows = read_rows(path).rows
    if not rows:
        raise InputError(f"{path}: no rows")
    c_model = columns.get("model", "model")
    c_problem = columns.get("problem", "problem")
    present = set().union(*(r.keys() for _, r in rows))
    for need in (c_model, c_problem):
        if need not in present:
            raise InputError(f"{path}: no '{need}' column (columns: {', '.join(sorted(present))})")
    compute, models, cells = {}, [], {}
    conv = "6nd"
    for lineno, row in rows:
        where = location(path, lineno)
        model, problem = str(row.get(c_model, "")).strip(), str(row.get(c_problem, "")).strip()
        if not model:
            raise InputError(f"{location(path, lineno, c_model)}: no model name")
        if not problem:
            raise InputError(f"{location(path, lineno, c_problem)}: no problem name")
        name, v = _col(row, columns.get("compute", "compute"))
        if name:
            c = number(v, path, lineno, name)
            conv = "reported"
        else:
            pn, pv = _col(row, columns.get("params", "params"))
            tn, tv = _col(row, columns.get("tokens", "tokens"))
            if not (pn and tn):
                raise InputError(f"{where}: needs compute, or params and tokens")
            c = 6.0 * number(pv, path, lineno, pn) * number(tv, path, lineno, tn)
        if not c > 0:
            raise InputError(f"{where}: compute must be positive, got {c:g}")
        if model in compute and not math.isclose(compute[model], c, rel_tol=1e-9):
            raise InputError(f"{where}: model {model} has compute {c:.6g} here and {compute[model]:.6g} on an "
                             f"earlier line")
        if model not in compute:
            compute[model] = c
            models.append(model)
        sn, sv = _col(row, columns.get("samples", "samples"), "k", "n_samples")
        pn_, pv_ = _col(row, columns.get("passes", "passes"), "successes", "n_correct", "correct")
        rn, rv = _col(row, columns.get("pass_rate", "pass_rate"), "rate", "pass@1")
        if sn and pn_:
            n, s = number(sv, path, lineno, sn), number(pv_, path, lineno, pn_)
            if n < 1 or n != int(n):
                raise InputError(f"{location(path, lineno, sn)}: samples must be a whole number >= 1, got {sv}")
            if s < 0 or s != int(s):
                raise InputError(f"{location(path, lineno, pn_)}: passes must be a whole number >= 0, got {pv_}")
            if s > n:
                raise InputError(f"{location(path, lineno, pn_)}: {int(s)} passes out of {int(n)} samples")
            rate = s / n
        elif rn:
            rate = number(rv, path, lineno, rn)
            if not 0.0 <= rate <= 1.0:
                raise InputError(f"{location(path, lineno, rn)}: pass rate {rate:g} is not in [0, 1]")
        else:
            raise InputError(f"{where}: needs samples and passes, or pass_rate")
        if (model, problem) in cells:
            raise InputError(f"{where}: model {model}, problem {problem} appears twice")
        cells[(model, problem)] = rate
    problems = sorted({p for _, p in cells})
    order = sorted(models, key=lambda m: compute[m])
    rate = np.full((len(order), len(problems)), np.nan)
    pidx = {p: j for j, p in enumerate(problems)}
    midx = {m: i for i, m in enumerate(order)}
    for (m, p), r in cells.items():
        rate[midx[m], pidx[p]] = r
    return PassTable(order, np.array([compute[m] for m in order]), problems, rate, str(path), conv)


def _metric(rate: np.ndarray) -> np.ndarray:
    """-mean log pass rate per model over the columns given."""
    return -np.mean(np.log(rate), axis=1)


def _line(logc: np.ndarray, logm: np.ndarray) -> tuple[float, float]:
    """(log alpha, k) of log M = log alpha - k log C by least squares."""
    A = np.vstack([np.ones_like(logc), -logc]).T
    (la, k), *_ = np.linalg.lstsq(A, logm, rcond=None)
    return float(la), float(k)


@dataclass
class PassRateFit:
    models: list[str]
    compute: np.ndarray
    metric: np.ndarray  # -mean log pass rate per model, over the kept problems
    problems: list[str]  # kept
    dropped: list[str]  # problems some fitted model never solved
    log_alpha: float
    k: float
    boot: np.ndarray  # (B, 2) log alpha, k
    residuals: np.ndarray
    problem_alpha: np.ndarray  # per kept problem
    problem_boot: np.ndarray  # (B, P) per-problem alphas in each replicate
    source: str = ""
    convention: str = "reported"
    warnings: list[str] = field(default_factory=list)
    seed: int = 0

    kind = "passrate"
    name = "passrate"
    formula = "-mean log pass_rate = alpha * C^(-k)"

    @property
    def max_compute(self) -> float:
        return float(np.max(self.compute))

    @property
    def compute_convention(self) -> str:
        return self.convention

    @property
    def data(self):
        """The fitted points: each model's compute and -mean log pass rate."""
        nan = np.full(len(self.models), np.nan)
        return FitData(self.compute, self.metric, nan, nan, list(self.models))

    @property
    def alpha(self) -> float:
        return math.exp(self.log_alpha)

    def value(self, compute) -> np.ndarray:
        return np.exp(self.log_alpha - self.k * np.log(np.asarray(compute, float)))

    def predict(self, compute=None, params=None, tokens=None, level: float = defaults.LEVEL) -> list[dict]:
        """Per target compute (or params and tokens: 6ND): the mean log pass rate's negative (the law's M) with its
        interval, and the pass rates it implies per kept problem (and their mean: the expected share of problems
        solved per sample)."""
        targets = [] if compute is None else list(np.atleast_1d(np.asarray(compute, float)))
        if params is not None or tokens is not None:
            n, d = np.atleast_1d(np.asarray(params, float)), np.atleast_1d(np.asarray(tokens, float))
            if len(n) != len(d):
                raise InputError("give --params and --tokens together, as many of each")
            targets += list(6.0 * n * d)
        if not targets:
            raise InputError("nothing to predict: give --compute (or --params with --tokens)")
        q = [(1 - level) / 2, (1 + level) / 2]
        rng = np.random.default_rng(self.seed)
        scale = residual_inflation(len(self.residuals), len(self.residuals) - 2)
        out = []
        for c in targets:
            if not (math.isfinite(c) and c > 0):
                raise InputError(f"--compute: {c:g} is not a positive number")
            lc = math.log(c)
            center = self.log_alpha - self.k * lc
            if len(self.boot):
                draws = self.boot[:, 0] - self.boot[:, 1] * lc
            else:  # no bootstrap: the point estimate with the fit's own scatter
                draws = np.full(N_DRAWS, center)
            draws = draws + rng.choice(self.residuals, len(draws)) * scale
            m_lo, m_hi = np.exp(np.quantile(draws, q))
            per = np.exp(-self.problem_alpha * c ** (-self.k))
            if len(self.problem_boot) and len(self.problem_boot) == len(self.boot):
                pb, ks = self.problem_boot, self.boot[:, 1][:, None]
            else:
                pb, ks = self.problem_alpha[None, :], np.array([[self.k]])
            mean_draws = np.exp(-pb * c ** (-ks)).mean(axis=1)
            mp_lo, mp_hi = np.quantile(mean_draws, q)
            metric = math.exp(center)
            rec = {"compute": float(c), "metric": metric, "lower": float(min(m_lo, metric)),
                   "upper": float(max(m_hi, metric)), "level": level, "mean_pass_rate": float(per.mean()),
                   "mean_pass_rate_lower": float(min(mp_lo, per.mean())),
                   "mean_pass_rate_upper": float(max(mp_hi, per.mean())),
                   "problems": {p: float(r) for p, r in zip(self.problems, per)},
                   "extrapolation": float(c / np.max(self.compute))}
            warning = range_warning(c, float(np.min(self.compute)), float(np.max(self.compute)))
            if warning:
                rec["warning"] = warning
            out.append(rec)
        return out

    def to_dict(self) -> dict:
        return {"format": checks.FIT_FORMAT, "version": __version__, "kind": "passrate", "formula": self.formula,
                "alpha": self.alpha, "log_alpha": self.log_alpha, "k": self.k, "models": self.models,
                "compute": self.compute.tolist(), "metric": self.metric.tolist(), "problems": self.problems,
                "dropped": self.dropped, "boot": self.boot.tolist(), "residuals": self.residuals.tolist(),
                "problem_alpha": self.problem_alpha.tolist(), "problem_boot": self.problem_boot.tolist(),
                "source": self.source, "compute_convention": self.convention, "warnings": self.warnings,
                "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict, source: str = "pass-rate fit") -> "PassRateFit":
        checks.check_format(d, source)
        models, problems = checks.strings(d, "models", source), checks.strings(d, "problems", source)
        if len(models) < 2 or not problems:
            raise InputError(f"{source}: needs at least 2 models and 1 problem")
        compute = checks.vector(d, "compute", source, len(models))
        if np.any(compute <= 0):
            raise InputError(f"{source}: field 'compute' must be positive")
        boot = checks.matrix(d, "boot", source, (None, 2)) if d.get("boot") else np.empty((0, 2))
        pboot = checks.matrix(d, "problem_boot", source, (None, len(problems))) if d.get("problem_boot") \
            else np.empty((0, len(problems)))
        residuals = checks.vector(d, "residuals", source)
        if not len(residuals):
            raise InputError(f"{source}: field 'residuals' is empty")
        return cls(models, compute, checks.vector(d, "metric", source, len(models)), problems,
                   checks.strings(d, "dropped", source), checks.number(d, "log_alpha", source),
                   checks.number(d, "k", source), boot, residuals,
                   checks.vector(d, "problem_alpha", source, len(problems)), pboot, str(d.get("source", "")),
                   checks.convention(d, source), checks.strings(d, "warnings", source),
                   int(checks.number(d, "seed", source, optional=True, default=0)))


def _problem_alpha(rate: np.ndarray, compute: np.ndarray, k: float) -> np.ndarray:
    """Each problem's alpha_j in -log p_j = alpha_j C^(-k), least squares over the models (zero-rate cells out)."""
    x = compute[:, None] ** (-k)
    y = -np.log(rate)
    ok = np.isfinite(y)
    return np.sum(np.where(ok, x * y, 0.0), axis=0) / np.maximum(np.sum(np.where(ok, x * x, 0.0), axis=0), 1e-300)


def fit_pass_rate(table: PassTable, n_boot: int = defaults.PASSRATE_BOOTSTRAP, seed: int = 0, max_compute: float | None = None
                  ) -> PassRateFit:
    """Fit the law on the models up to `max_compute` (all by default) over the problems each of them solved."""
    keep_m = np.ones(len(table.models), bool) if max_compute is None else table.compute <= max_compute
    models = [m for m, k in zip(table.models, keep_m) if k]
    if len(set(table.compute[keep_m])) < MIN_MODELS:
        raise InputError(f"{table.source}: {len(models)} model(s) at {len(set(table.compute[keep_m]))} distinct "
                         f"compute(s); the pass-rate law needs at least {MIN_MODELS}")
    rate = table.rate[keep_m]
    solved = np.all(np.isfinite(rate) & (rate > 0), axis=0)
    problems = [p for p, s in zip(table.problems, solved) if s]
    dropped = [p for p, s in zip(table.problems, solved) if not s]
    if not problems:
        raise InputError(f"{table.source}: no problem is solved at least once by every fitted model ({len(models)} "
                         f"models, {len(table.problems)} problems): the mean log pass rate is -inf for all")
    r = rate[:, solved]
    c = table.compute[keep_m]
    metric = _metric(r)
    if np.any(metric <= 0):
        bad = models[int(np.argmin(metric))]
        raise InputError(f"{table.source}: model {bad} solves every kept problem in every sample: the mean log pass "
                         f"rate is 0 and its log undefined; give more samples or harder problems")
    logc, logm = np.log(c), np.log(metric)
    la, k = _line(logc, logm)
    resid = logm - (la - k * logc)
    rng = np.random.default_rng(seed)
    boot, pboot = [], []
    n_m, n_p = len(models), len(problems)
    for _ in range(n_boot):
        mi = rng.integers(0, n_m, n_m)
        if len(np.unique(c[mi])) < 2:
            continue
        pj = rng.integers(0, n_p, n_p)
        m = _metric(r[np.ix_(mi, pj)])
        if np.any(m <= 0):  # a resample of problems every model always solves: log 0, no law to fit
            continue
        bla, bk = _line(logc[mi], np.log(m))
        boot.append((bla, bk))
        pboot.append(_problem_alpha(r[mi], c[mi], bk))
    warnings = []
    if dropped:
        warnings.append(f"{len(dropped)} of {len(table.problems)} problems left out: some fitted model never solved "
                        f"them (GPT-4's restriction)")
    if k <= 0:
        warnings.append(f"k = {k:.3g} <= 0: the mean log pass rate does not fall with compute on these models "
                        f"(inverse scaling?); the extrapolation says so, but check the fit")
    return PassRateFit(models, c, metric, problems, dropped, la, k, np.array(boot).reshape(-1, 2), resid,
                       _problem_alpha(r, c, k), np.array(pboot).reshape(-1, n_p), table.source, table.convention,
                       warnings, seed)

