"""Task accuracy from small runs: the two-step task law, and the direct form beside it.

Step 1 predicts a task loss (the loss on a held-out corpus, or a task's bits per byte) at the target with any loss
law the project has (`fit.fit_law`: compute, chinchilla, chinchilla_tied, power, or the auto ensemble). Step 2
maps that loss to the task's accuracy, fitted on the small runs' own (loss, accuracy) pairs:

  sigmoid      acc = b + a / (1 + exp(k (L - L0)))     Bhagia et al. 2024 (the OLMo ladder): b the chance level
                                                       (fixed where --chance gives it), a + b <= 1 the ceiling
  sigmoid1     acc = b + (1 - b) / (1 + exp(k (L - L0)))   the same with the ceiling at 1: where the runs see
                                                       only the foot of the curve, a free ceiling is not identified
  exponential  err = eps - k exp(-gamma L)             Gadre et al. 2024 (average top-1 error against C4 loss)
  auto         per metric, the form that best predicts the runs of lowest loss when fitted on the others

The direct form fits accuracy against compute alone (the sigmoid in -log10 C), as later work reports it can beat
the two steps; it is fitted and predicted beside them for comparison.

Intervals carry both steps: step 1's predictive interval is sampled (a split normal in log loss, its own bootstrap,
noise and model-error terms included), step 2 is bootstrapped over runs, and each draw gets a resampled residual of
step 2 (a benchmark's accuracy scatters from model to model around the curve, and a new model will too).
Everything is computed in accuracy (higher is better); a metric whose name says error (err, error) is reported as
error. Rates must be fractions in [0, 1].
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field

import numpy as np

from . import defaults
from .errors import InputError

FORMS = ("auto", "sigmoid", "sigmoid1", "exponential")
HOLDOUTS = (0.15, 0.3, 0.5)  # auto: each form is fitted on the runs of highest loss and scored on these shares of
# lowest loss (averaged)
N_BOOT = 200
N_DRAWS = 4000
MIN_RUNS = 5


def metric_kind(name: str) -> str:
    """'error' where the metric's name says so (err_arc_easy, top1_error, error/hellaswag), else 'accuracy'."""
    return "error" if re.search(r"(^|[^a-z])err", name.lower()) else "accuracy"


# ---- the links ------------------------------------------------------------------------------------------------


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
        return {"form": self.form, "x": self.x_name, "params": dict(zip(PARAM_NAMES[self.form], map(float, self.values))),
                "boot": self.boot.tolist(), "residuals": self.residuals.tolist(), "chance": self.chance,
                "dof": self.dof, "residual_sigma": self.sigma}

    @classmethod
    def from_dict(cls, d: dict) -> "Link":
        names = PARAM_NAMES[d["form"]]
        return cls(d["form"], d["x"], np.array([d["params"][n] for n in names]), np.array(d["boot"], float).reshape(
            -1, len(names)), np.array(d["residuals"], float), d.get("chance"), int(d["dof"]))


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
    from scipy.optimize import least_squares

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


def fit_link(form: str, x, y, chance=None, n_boot: int = N_BOOT, seed: int = 0, x_name: str = "loss") -> Link:
    """Fit accuracy y against x with `form`, then refit on `n_boot` resamples of the runs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    values = _solve(form, x, y, chance)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if len(np.unique(x[idx])) < 3:
            continue
        boot.append(_solve(form, x[idx], y[idx], chance, starts=[values]))
    n_free = len(PARAM_NAMES[form]) - (1 if form != "exponential" and chance is not None else 0)
    resid = y - link_value(form, x, values)
    return Link(form, x_name, values, np.array(boot).reshape(-1, len(values)), resid, chance,
                max(len(x) - n_free, 1))


def form_scores(x, y, chance=None, forms=("sigmoid", "sigmoid1", "exponential")) -> dict:
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
    """Weights of the forms from their hold-out errors: exp(-error / tau) with tau the best error (at least half a
    point), as the loss laws' ensemble weighs its laws (docs/fitting.md). Forms that could not be fitted get none."""
    ok = {f: v for f, v in scores.items() if v is not None}
    if not ok:
        return {"sigmoid": 1.0}
    tau = max(min(ok.values()), 0.005)
    w = {f: math.exp(-(v - min(ok.values())) / tau) for f, v in ok.items()}
    total = sum(w.values())
    return {f: v / total for f, v in w.items() if v / total >= 0.01}


def draw(link: Link, x_draws: np.ndarray, rng) -> np.ndarray:
    """Accuracy draws: each x draw through a bootstrap refit of the link, plus a resampled residual (scaled up
    for the parameters fitted, as a new model's scatter around the curve)."""
    m = len(x_draws)
    boot = link.boot if len(link.boot) else link.values[None, :]
    p = boot[rng.integers(0, len(boot), m)]
    y = np.clip(LINKS[link.form](x_draws[:, None], p)[:, 0], 0.0, 1.0)
    n = len(link.residuals)
    scale = math.sqrt(n / max(link.dof, 1))
    y = y + rng.choice(link.residuals, m) * scale
    return np.clip(y, 0.0, 1.0)


# ---- the capability fit ---------------------------------------------------------------------------------------


@dataclass
class MetricFit:
    name: str
    kind: str  # accuracy | error: how it is read and reported
    chance: float | None  # in accuracy
    runs: list[str]
    loss: np.ndarray  # the runs' task loss (step 2's x)
    compute: np.ndarray
    acc: np.ndarray  # the runs' accuracy
    links: list  # step 2: one Link per form kept (auto: several, weighted)
    weights: list
    direct: Link | None
    scores: dict | None = None  # auto: each form's hold-out error
    task_loss: str = "loss"  # the step-1 loss this metric follows

    @property
    def link(self) -> Link:
        """The form of largest weight."""
        return self.links[int(np.argmax(self.weights))]

    def accuracy(self, loss) -> np.ndarray:
        """Step 2's accuracy at a task loss: the weighted mean of the forms kept."""
        return sum(w * l(np.asarray(loss, float)) for l, w in zip(self.links, self.weights))

    def draws(self, loss_draws, rng) -> np.ndarray:
        """Accuracy draws through the forms kept, each form getting its weight's share of the draws."""
        n = len(loss_draws)
        which = rng.choice(len(self.links), n, p=np.asarray(self.weights) / np.sum(self.weights))
        out = np.empty(n)
        for i, l in enumerate(self.links):
            sel = which == i
            if sel.any():
                out[sel] = draw(l, loss_draws[sel], rng)
        return out

    def as_metric(self, acc):
        """Accuracy as the metric reads (1 - accuracy for an error metric)."""
        return 1.0 - np.asarray(acc) if self.kind == "error" else np.asarray(acc)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "chance": self.chance, "runs": self.runs,
                "loss": self.loss.tolist(), "compute": self.compute.tolist(), "accuracy": self.acc.tolist(),
                "links": [l.to_dict() for l in self.links], "weights": list(map(float, self.weights)),
                "direct": self.direct.to_dict() if self.direct else None, "scores": self.scores,
                "task_loss": self.task_loss}

    @classmethod
    def from_dict(cls, d: dict) -> "MetricFit":
        return cls(d["name"], d["kind"], d.get("chance"), list(d["runs"]), np.array(d["loss"], float),
                   np.array(d["compute"], float), np.array(d["accuracy"], float),
                   [Link.from_dict(l) for l in d["links"]], list(d["weights"]),
                   Link.from_dict(d["direct"]) if d.get("direct") else None, d.get("scores"), d["task_loss"])


@dataclass
class TaskFit:
    """Step 1 (a loss fit per task loss) and, per metric, step 2 and the direct form."""

    steps1: dict  # task loss name -> fit.Fit or ensemble.Ensemble
    metrics: list[MetricFit]
    warnings: list[str] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)  # metrics not fitted, with the reason
    seed: int = 0

    kind = "tasks"

    @property
    def step1(self):
        """The first task loss's fit (the only one where every metric follows one loss)."""
        return next(iter(self.steps1.values()))

    @property
    def task_loss(self) -> str:
        return ", ".join(self.steps1)

    def step1_of(self, m: MetricFit):
        return self.steps1[m.task_loss]

    @staticmethod
    def _loss_predictions(step1, compute, params, tokens, level):
        by_compute = step1.law.inputs == ("compute",) and not hasattr(step1, "members")
        if params is not None and tokens is not None and by_compute:
            compute = step1.compute_6nd(params, tokens) if compute is None else compute
            return step1.predict(compute=compute, params=params, tokens=tokens, level=level)
        if params is not None and tokens is not None:
            return step1.predict(params=params, tokens=tokens, level=level)
        return step1.predict(compute=compute, level=level)

    def predict(self, compute=None, params=None, tokens=None, level: float = defaults.LEVEL) -> list[dict]:
        """Per target and metric: the two-step prediction with its interval, the direct form's, and the task loss
        step 1 predicts there."""
        from .intervals import z_of

        by_loss = {name: self._loss_predictions(s1, compute, params, tokens, level) for name, s1 in
                   self.steps1.items()}
        z = z_of(level)
        q_lo, q_hi = (1 - level) / 2, (1 + level) / 2
        out = []
        n_targets = len(next(iter(by_loss.values())))
        for i in range(n_targets):
            rng = np.random.default_rng([self.seed, i])
            e = rng.standard_normal(N_DRAWS)
            draws = {}
            for name, lps in by_loss.items():  # one draw of the target's task losses, shared by their metrics
                lp = lps[i]
                center = math.log(lp["loss"])
                s_lo = (center - math.log(lp["lower"])) / z if lp["lower"] is not None else 0.0
                s_hi = (math.log(lp["upper"]) - center) / z if lp["upper"] is not None else 0.0
                draws[name] = np.exp(center + np.where(e < 0, e * s_lo, e * s_hi))
            for mf in self.metrics:
                lp = by_loss[mf.task_loss][i]
                c = lp["compute"]
                two = mf.draws(draws[mf.task_loss], rng)
                row = {"metric": mf.name, "kind": mf.kind, "compute": c, "params": lp.get("params"),
                       "tokens": lp.get("tokens"), "task_loss_name": mf.task_loss, "task_loss": lp["loss"],
                       "task_loss_lower": lp["lower"], "task_loss_upper": lp["upper"], "level": level}
                val = float(mf.as_metric(mf.accuracy(np.array([lp["loss"]]))[0]))
                lo, hi = (float(v) for v in mf.as_metric(np.quantile(two, [q_lo, q_hi])))
                row.update({"value": val, "lower": min(lo, hi), "upper": max(lo, hi)})
                if mf.direct is not None:
                    d = draw(mf.direct, np.full(N_DRAWS, -math.log10(c)), rng)
                    dval = float(mf.as_metric(mf.direct(np.array([-math.log10(c)]))[0]))
                    dlo, dhi = (float(v) for v in mf.as_metric(np.quantile(d, [q_lo, q_hi])))
                    row["direct"] = {"value": dval, "lower": min(dlo, dhi), "upper": max(dlo, dhi)}
                lo_seen, hi_seen = float(np.min(mf.loss)), float(np.max(mf.loss))
                if lp["loss"] < lo_seen - 0.5 * (hi_seen - lo_seen):
                    row["warning"] = (f"{mf.name}: the predicted task loss {lp['loss']:.3g} is far below the fitted "
                                      f"runs' ({lo_seen:.3g}..{hi_seen:.3g}): step 2 extrapolates its curve")
                out.append(row)
        return out

    def to_dict(self) -> dict:
        return {"format": 1, "kind": "tasks", "steps1": {k: v.to_dict() for k, v in self.steps1.items()},
                "metrics": [m.to_dict() for m in self.metrics], "warnings": self.warnings,
                "left_out": self.left_out, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict, source: str = "tasks file") -> "TaskFit":
        from .fitfile import fit_from_dict

        try:
            return cls({k: fit_from_dict(v, source) for k, v in d["steps1"].items()},
                       [MetricFit.from_dict(m) for m in d["metrics"]], list(d.get("warnings", [])),
                       list(d.get("left_out", [])), int(d.get("seed", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{source}: not a valid task fit file ({type(e).__name__}: {e})") from None


def _flat(y, chance) -> str | None:
    """Why a metric cannot be fitted: at or below chance at every scale, or no trend with the loss."""
    if chance is not None and np.all(y <= chance + 0.01):
        return f"at or below chance ({chance:g}) at every scale"
    if np.ptp(y) < 1e-9:
        return "the same value at every scale"
    return None


def fit_tasks(table, metrics: dict, task_loss: str, law: str = "auto", forms=("auto",), chance=None,
              n_boot: int = N_BOOT, seed: int = 0, explicit: set | None = None, direct: bool = True,
              **fit_kw) -> TaskFit:
    """Fit step 1 (`law` on the table's loss, the task loss) and, per metric ({name: per-run values aligned with the
    table, NaN where a run lacks it}), step 2 in the first of `forms` (and the direct form). A metric named
    explicitly (`explicit`) that cannot be fitted is an InputError; one a pattern matched is left out with the
    reason. `chance`: {metric: chance accuracy} or one number for all, in the metric's own sense."""
    return fit_task_groups([(task_loss, table, metrics)], law, forms, chance, n_boot, seed, explicit, direct,
                           **fit_kw)


def fit_task_groups(groups, law: str = "auto", forms=("auto",), chance=None, n_boot: int = N_BOOT, seed: int = 0,
                    explicit: set | None = None, direct: bool = True, left_out=None, **fit_kw) -> TaskFit:
    """`fit_tasks` for several task losses: `groups` is [(task loss name, its run table, {metric: values})], each
    metric following its group's loss (a task's accuracy and its own bits per byte, say)."""
    from .fit import fit_law

    form = forms[0]
    fitted, left_out, steps1 = [], list(left_out or []), {}
    for task_loss, table, metrics in groups:
        names = [str(n) for n in table.names]
        todo = []
        for name, values in metrics.items():
            kind = metric_kind(name)
            y = np.asarray(values, float)
            acc = 1.0 - y if kind == "error" else y
            ch = chance.get(name) if isinstance(chance, dict) else chance
            ch_acc = None if ch is None else (1.0 - ch if kind == "error" else ch)
            ok = np.isfinite(acc) & np.isfinite(table.loss)
            why = f"{int(ok.sum())} runs have it; step 2 needs at least {MIN_RUNS}" if ok.sum() < MIN_RUNS \
                else _flat(acc[ok], ch_acc)
            if why:
                if explicit and name in explicit:
                    raise InputError(f"{name}: {why}; nothing to fit")
                left_out.append({"metric": name, "reason": why})
                continue
            todo.append((name, kind, ch_acc, ok, acc))
        if not todo:
            continue
        steps1[task_loss] = fit_law(table, law, seed=seed, **fit_kw)
        for name, kind, ch_acc, ok, acc in todo:
            x, a, c = table.loss[ok], acc[ok], table.compute[ok]
            scores = form_scores(x, a, ch_acc) if form == "auto" else None
            weights = form_weights(scores) if form == "auto" else {form: 1.0}
            links = [fit_link(f, x, a, ch_acc if f != "exponential" else None, n_boot, seed) for f in weights]
            dlink = fit_link("sigmoid", -np.log10(c), a, ch_acc, n_boot, seed, x_name="-log10(compute)") \
                if direct else None
            fitted.append(MetricFit(name, kind, ch_acc, [n for n, k in zip(names, ok) if k], x, c, a, links,
                                    list(weights.values()), dlink, scores, task_loss))
    if not fitted:
        raise InputError("no metric could be fitted: " + "; ".join(f"{d['metric']}: {d['reason']}" for d in left_out))
    warnings = [f"left out {d['metric']}: {d['reason']}" for d in left_out]
    return TaskFit(steps1, fitted, warnings, left_out, seed)


# ---- reading the metrics --------------------------------------------------------------------------------------


def expand_metrics(patterns, available) -> tuple[list[str], set]:
    """Metric names from names and shell patterns ('err_*'); the names given literally, for strict errors."""
    out, explicit = [], set()
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            hits = sorted(n for n in available if fnmatch.fnmatchcase(n, pat))
            if not hits:
                raise InputError(f"--metric {pat}: matches no column (columns: {', '.join(sorted(available))})")
            out += [h for h in hits if h not in out]
        else:
            if pat not in available:
                raise InputError(f"--metric {pat}: no such column or metric (have: {', '.join(sorted(available))})")
            explicit.add(pat)
            if pat not in out:
                out.append(pat)
    return out, explicit


def _rate(v, where, name) -> float:
    if v is None or (isinstance(v, str) and not v.strip()):
        return math.nan
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{where}, column {name}: {v!r} is not a number") from None
    if math.isnan(x):
        return math.nan
    if not 0.0 <= x <= 1.0:
        hint = " (a percentage? give fractions in [0, 1])" if 1.0 < x <= 100.0 else ""
        raise InputError(f"{where}, column {name}: {x:g} is not a rate in [0, 1]{hint}")
    return x


def metric_values(table, names, log_values=None) -> dict:
    """{metric: per-run values aligned with `table`}: from each record's own columns (a run table), else from
    `log_values` ({metric: {run: value}}, read from logs)."""
    out = {}
    for name in names:
        vals = []
        for rec, run in zip(table.records, table.names):
            if name in rec:
                vals.append(_rate(rec[name], rec.get("_where", rec.get("source", "?")), name))
            elif log_values and name in log_values and run in log_values[name]:
                vals.append(_rate(log_values[name][run], rec.get("source", "?"), name))
            else:
                vals.append(math.nan)
        out[name] = np.array(vals)
    return out


def average_metric(values: dict, names) -> tuple[str, np.ndarray]:
    """The mean of several metrics per run (all of one kind), named after them: Gadre et al.'s average error."""
    kinds = {metric_kind(n) for n in names}
    if len(kinds) > 1:
        raise InputError("--average: the metrics mix accuracies and errors; average one kind")
    mean = np.vstack([values[n] for n in names]).mean(axis=0)  # NaN for a run that lacks one of them
    prefix = "mean_err" if kinds == {"error"} else "mean_acc"
    return f"{prefix}({len(names)} tasks)", mean


def pair_task_losses(task_loss: str, patterns, names) -> dict:
    """{metric: its task loss}. A task loss with a `*` pairs each metric a pattern matched with the loss named by the
    pattern's `*` text: `-m 'acc_*' --task-loss 'bpb_*'` gives acc_hellaswag the loss bpb_hellaswag."""
    if "*" not in task_loss:
        return {n: task_loss for n in names}
    out = {}
    for n in names:
        for pat in patterns:
            if "*" in pat and fnmatch.fnmatchcase(n, pat):
                rx = re.escape(pat).replace(r"\*", "(.*)", 1).replace(r"\*", ".*")
                m = re.fullmatch(rx, n)
                if m:
                    out[n] = task_loss.replace("*", m.group(1), 1)
                    break
        else:
            raise InputError(f"--task-loss {task_loss}: pairs with metrics a '*' pattern matched, and {n} was named "
                             f"(give it its own --task-loss in another fit-tasks)")
    return out


def read_task_inputs(inputs, task_loss: str, patterns, fmt: str = "auto", columns: dict | None = None,
                     params=None, tokens_per_step=None, run_meta=None, name_pattern=None, compute_convention=None,
                     average: bool = False):
    """The runs and each metric's per-run values, grouped by the task loss each metric follows, from run tables
    (columns) and logs (logged metrics, joined to the runs by name). Returns ([(task loss, table with that loss,
    {metric: values})], the names given literally, the metrics left out for want of their task loss)."""
    from .ingest import compile_name_pattern, load_run_meta, load_table, read_logs, records_from_logs
    from .runs import read_rows

    cols = {k: v for k, v in (columns or {}).items() if v}
    read = read_logs(inputs, fmt, None)  # once: every task loss's table below is built from it
    meta = load_run_meta(run_meta) if run_meta else None
    available = set()
    for path, kind, curves in read:
        if kind == "runs":
            _, rows = read_rows(path)
            available |= set().union(*(set(r) for _, r in rows)) if rows else set()
        else:
            available |= {c.metric for c in curves}
    names, explicit = expand_metrics(patterns, available)
    if average and "*" in task_loss:
        raise InputError("--average follows one task loss: give --task-loss a name, not a pattern")
    pairs = pair_task_losses(task_loss, patterns, names)
    logs = [(p, k, c) for p, k, c in read if k != "runs"]
    log_values: dict = {}
    if logs:
        rx = compile_name_pattern(name_pattern) if name_pattern else None
        for name in names:
            for item in logs:
                if any(c.metric == name for c in item[2]):
                    for r in records_from_logs([item], name, params, tokens_per_step, 1, False, meta, rx):
                        if "loss" in r:
                            log_values.setdefault(name, {})[str(r["run"])] = r["loss"]
    groups, left_out = [], []
    for loss_name in dict.fromkeys(pairs.values()):
        mine = [n for n in names if pairs[n] == loss_name]
        if loss_name not in available:
            for n in mine:
                if n in explicit or "*" not in task_loss:
                    raise InputError(f"--task-loss {loss_name}: no such column or metric (for {n}; have: "
                                     f"{', '.join(sorted(available))})")
                left_out.append({"metric": n, "reason": f"no task loss {loss_name} beside it"})
            continue
        table = load_table(inputs, fmt=fmt, columns={**cols, "loss": loss_name}, metric=loss_name, params=params,
                           tokens_per_step=tokens_per_step, run_meta=meta, compute_convention=compute_convention,
                           name_pattern=name_pattern, read=read)
        values = metric_values(table, mine, log_values)
        if average:
            avg_name, avg = average_metric(values, mine)
            values[avg_name] = avg
            explicit = set(explicit) | {avg_name}
        groups.append((loss_name, table, values))
    return groups, explicit, left_out
