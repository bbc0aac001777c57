"""Task accuracy from small runs: the two-step task law, and the direct form beside it.

Step 1 predicts a task loss (the loss on a held-out corpus, or a task's bits per byte) at the target with any loss
law the core has (`core.fit.fit_law`: compute, chinchilla, chinchilla_tied, power, or the law average). Step 2 maps
that loss to the task's accuracy through a link (links.py), fitted on the small runs' own (loss, accuracy) pairs;
`auto` weighs the link forms by how well each predicts the runs of lowest loss when fitted on the others. The
direct form fits accuracy against compute alone (the sigmoid in -log10 C), as later work reports it can beat the
two steps; it is fitted and predicted beside them.

Intervals carry both steps: step 1's predictive interval is sampled (a split normal in log loss, its own bootstrap,
noise and model-error terms included), step 2 is bootstrapped over runs, and each draw gets a resampled residual of
step 2 (a benchmark's accuracy scatters from model to model around the curve, and a new model will too).
Everything is computed in accuracy (higher is better); a metric whose name says error (err, error) is reported as
error. Rates must be fractions in [0, 1].
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .. import __version__, defaults
from ..core import checks
from ..core.fit import fit_law, loss_fit_from_dict
from ..core.intervals import split_normal_scales
from ..errors import InputError
from .checkpoints import SKIP, SMOOTH, checkpoint_noise, step2_points
from .choose import direct_weight, inner_step1, predictability
from .links import Link, draw, fit_link, form_scores, form_weights

N_DRAWS = 4000
MIN_RUNS = 5
MIN_CK_RUNS = 3  # step 2 on checkpoints: many points per run, so fewer runs can place the curve


def metric_kind(name: str) -> str:
    """'error' where the metric's name says so (err_arc_easy, top1_error, error/hellaswag), else 'accuracy'."""
    return "error" if re.search(r"(^|[^a-z])err", name.lower()) else "accuracy"


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
    points: str = "runs"  # step 2 fitted on the runs' final values, or on their "checkpoints"
    predictability: dict | None = None  # choose.predictability: signal, noise, predictable
    direct_weight: float = 0.0  # the direct form's share of the prediction (choose.direct_weight)
    direct_scores: dict | None = None  # the holdout errors the weight came from

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
                "task_loss": self.task_loss, "points": self.points, "predictability": self.predictability,
                "direct_weight": self.direct_weight, "direct_scores": self.direct_scores}

    @classmethod
    def from_dict(cls, d: dict, where: str = "metric") -> "MetricFit":
        if not isinstance(d.get("name"), str) or d.get("kind") not in ("accuracy", "error"):
            raise InputError(f"{where}: needs a name and a kind (accuracy or error)")
        runs = checks.strings(d, "runs", where)
        n = len(runs)
        loss, compute, acc = (checks.vector(d, k, where, n) for k in ("loss", "compute", "accuracy"))
        links = [Link.from_dict(l, f"{where}: links[{i}]") for i, l in enumerate(checks.records(d, "links", where, 1))]
        weights = checks.vector(d, "weights", where, len(links))
        if np.any(weights < 0) or weights.sum() <= 0:
            raise InputError(f"{where}: field 'weights' should be non-negative with a positive sum")
        direct = checks.optional_mapping(d, "direct", where)
        chance = checks.number(d, "chance", where, optional=True, default=None)
        dw = checks.number(d, "direct_weight", where, optional=True, default=0.0)
        if not 0 <= dw <= 1 or (dw > 0 and not direct):
            raise InputError(f"{where}: field 'direct_weight' should be in [0, 1], and 0 without a direct form")
        pred = checks.optional_mapping(d, "predictability", where)
        return cls(d["name"], d["kind"], chance, runs, loss, compute, acc, links, list(weights / weights.sum()),
                   Link.from_dict(direct, f"{where}: direct") if direct else None, d.get("scores"),
                   str(d.get("task_loss", "loss")), str(d.get("points", "runs")), pred, dw, d.get("direct_scores"))


@dataclass
class TaskFit:
    """Step 1 (a loss fit per task loss) and, per metric, step 2 and the direct form; the face of every fit
    (core/result.py)."""

    steps1: dict  # task loss name -> a loss fit (core.fit: one law or the law average)
    metrics: list[MetricFit]
    warnings: list[str] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)  # metrics not fitted, with the reason
    seed: int = 0

    kind = "tasks"
    name = "tasks"

    @property
    def formula(self) -> str:
        return "two steps: task loss = L(C or N, D); metric = link(task loss)"

    @property
    def step1(self):
        """The first task loss's fit (the only one where every metric follows one loss)."""
        return next(iter(self.steps1.values()))

    @property
    def task_loss(self) -> str:
        return ", ".join(self.steps1)

    @property
    def max_compute(self) -> float:
        return max(s.max_compute for s in self.steps1.values())

    @property
    def compute_convention(self):
        return self.step1.compute_convention

    @property
    def data(self):
        return self.step1.data

    def step1_of(self, m: MetricFit):
        return self.steps1[m.task_loss]

    def predict(self, compute=None, params=None, tokens=None, level: float = defaults.LEVEL) -> list[dict]:
        """Per target and metric: the two-step prediction with its interval, the direct form's, and the task loss
        step 1 predicts there."""
        by_loss = {name: s1.predict(compute=compute, params=params, tokens=tokens, level=level)
                   for name, s1 in self.steps1.items()}
        out = []
        for i in range(len(next(iter(by_loss.values())))):
            rng = np.random.default_rng([self.seed, i])
            e = rng.standard_normal(N_DRAWS)
            draws = {}
            for name, lps in by_loss.items():  # one draw of the target's task losses, shared by their metrics
                center = math.log(lps[i]["loss"])
                s_lo, s_hi = split_normal_scales(center, lps[i]["lower"], lps[i]["upper"], level)
                draws[name] = np.exp(center + np.where(e < 0, e * s_lo, e * s_hi))
            out += [self._row(mf, by_loss[mf.task_loss][i], draws[mf.task_loss], rng, level) for mf in self.metrics]
        return out

    @staticmethod
    def _row(mf: MetricFit, lp: dict, loss_draws, rng, level) -> dict:
        q = [(1 - level) / 2, (1 + level) / 2]
        c = lp["compute"]
        row = {"metric": mf.name, "kind": mf.kind, "compute": c, "params": lp.get("params"),
               "tokens": lp.get("tokens"), "task_loss_name": mf.task_loss, "task_loss": lp["loss"],
               "task_loss_lower": lp["lower"], "task_loss_upper": lp["upper"], "level": level}
        two = mf.accuracy(np.array([lp["loss"]]))[0]
        two_draws = mf.draws(loss_draws, rng)
        val, pooled = float(two), two_draws
        lo, hi = (float(v) for v in mf.as_metric(np.quantile(two_draws, q)))
        row["two_step"] = {"value": float(mf.as_metric(two)), "lower": min(lo, hi), "upper": max(lo, hi)}
        if mf.direct is not None:
            d = draw(mf.direct, np.full(N_DRAWS, -math.log10(c)), rng)
            dacc = float(mf.direct(np.array([-math.log10(c)]))[0])
            dlo, dhi = (float(v) for v in mf.as_metric(np.quantile(d, q)))
            row["direct"] = {"value": float(mf.as_metric(dacc)), "lower": min(dlo, dhi), "upper": max(dlo, dhi)}
            w = mf.direct_weight
            if w > 0:  # the mixture of the two: its mean, and the quantiles of draws taken in the weights' shares
                val = (1 - w) * val + w * dacc
                k = int(round(w * N_DRAWS))
                pooled = np.concatenate([two_draws[: N_DRAWS - k], d[:k]])
        lo, hi = (float(v) for v in mf.as_metric(np.quantile(pooled, q)))
        row.update({"value": float(mf.as_metric(val)), "lower": min(lo, hi), "upper": max(lo, hi),
                    "direct_weight": mf.direct_weight})
        if mf.predictability is not None:
            row["predictable"] = mf.predictability["predictable"]
        lo_seen, hi_seen = float(np.min(mf.loss)), float(np.max(mf.loss))
        if mf.predictability is not None and not mf.predictability["predictable"]:
            pr = mf.predictability
            row["warning"] = (f"{mf.name}: not predictable at these scales: its noise ({pr['noise']:.3g}) is more "
                              f"than a third of its fitted change across the runs ({pr['signal']:.3g})")
        elif lp["loss"] < lo_seen - 0.5 * (hi_seen - lo_seen):
            row["warning"] = (f"{mf.name}: the predicted task loss {lp['loss']:.3g} is far below the fitted runs' "
                              f"({lo_seen:.3g}..{hi_seen:.3g}): step 2 extrapolates its curve")
        elif "warning" in lp:
            row["warning"] = lp["warning"]
        return row

    def to_dict(self) -> dict:
        return {"format": checks.FIT_FORMAT, "version": __version__, "kind": self.kind,
                "steps1": {k: v.to_dict() for k, v in self.steps1.items()},
                "metrics": [m.to_dict() for m in self.metrics], "warnings": self.warnings,
                "left_out": self.left_out, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict, source: str = "tasks file") -> "TaskFit":
        checks.check_format(d, source)
        steps = checks.mapping(d, "steps1", source)
        if not steps:
            raise InputError(f"{source}: field 'steps1' is empty")
        steps1 = {str(k): loss_fit_from_dict(checks.mapping(steps, k, f"{source}: steps1"), f"{source}: steps1.{k}")
                  for k in steps}
        metrics = [MetricFit.from_dict(m, f"{source}: metrics[{i}]")
                   for i, m in enumerate(checks.records(d, "metrics", source, 1))]
        for m in metrics:
            if m.task_loss not in steps1:
                raise InputError(f"{source}: metric {m.name} follows task loss {m.task_loss!r}, which has no step 1")
        return cls(steps1, metrics, checks.strings(d, "warnings", source), checks.optional_list(d, "left_out", source)
                   or [], int(checks.number(d, "seed", source, optional=True, default=0)))


def _flat(y, chance) -> str | None:
    """Why a metric cannot be fitted: at or below chance at every scale, or no trend with the loss."""
    if chance is not None and np.all(y <= chance + 0.01):
        return f"at or below chance ({chance:g}) at every scale"
    if np.ptp(y) < 1e-9:
        return "the same value at every scale"
    return None


def fit_tasks(table, metrics: dict, task_loss: str, law: str = "auto", forms=("auto",), chance=None,
              n_boot: int = defaults.TASK_BOOTSTRAP, seed: int = 0, explicit: set | None = None, direct: bool = True,
              **fit_kw) -> TaskFit:
    """Fit step 1 (`law` on the table's loss, the task loss) and, per metric ({name: per-run values aligned with the
    table, NaN where a run lacks it}), step 2 in the first of `forms` (and the direct form). A metric named
    explicitly (`explicit`) that cannot be fitted is an InputError; one a pattern matched is left out with the
    reason. `chance`: {metric: chance accuracy} or one number for all, in the metric's own sense."""
    return fit_task_groups([(task_loss, table, metrics)], law, forms, chance, n_boot, seed, explicit, direct,
                           **fit_kw)


def fit_task_groups(groups, law: str = "auto", forms=("auto",), chance=None, n_boot: int = defaults.TASK_BOOTSTRAP,
                    seed: int = 0, explicit: set | None = None, direct: bool = True, left_out=None,
                    checkpoints=None, smooth: int = SMOOTH, skip: float = SKIP, **fit_kw) -> TaskFit:
    """`fit_tasks` for several task losses: `groups` is [(task loss name, its run table, {metric: values})], each
    metric following its group's loss (a task's accuracy and its own bits per byte, say). `checkpoints`
    (checkpoints.Checkpoints): step 2 on every checkpoint of the fitted runs, smoothed over `smooth` checkpoints,
    the first `skip` of each run left out, bootstrapped by run."""
    form = forms[0]
    fitted, left_out, steps1, notes = [], list(left_out or []), {}, []
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
            need = MIN_RUNS if checkpoints is None else MIN_CK_RUNS
            why = f"{int(ok.sum())} runs have it; step 2 needs at least {need}" if ok.sum() < need \
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
        inner = inner_step1(table, law, seed, **fit_kw) if direct else None
        by_compute = [names[i] for i in np.argsort(table.compute)]
        for name, kind, ch_acc, ok, acc in todo:
            m, note = _fit_metric(table, names, by_compute, task_loss, name, kind, ch_acc, ok, acc, form, n_boot,
                                  seed, direct, inner, checkpoints, smooth, skip)
            fitted.append(m)
            notes += [note] if note else []
    if not fitted:
        raise InputError("no metric could be fitted: " + "; ".join(f"{d['metric']}: {d['reason']}" for d in left_out))
    warnings = [f"left out {d['metric']}: {d['reason']}" for d in left_out] + notes
    return TaskFit(steps1, fitted, warnings, left_out, seed)


def _fit_metric(table, names, by_compute, task_loss, name, kind, ch_acc, ok, acc, form, n_boot, seed, direct,
                inner, checkpoints, smooth, skip):
    """One metric's step 2 (on the runs' final values or their checkpoints), direct form, its weight and its
    predictability. Returns (MetricFit, a note or None)."""
    runs = [n for n, k in zip(names, ok) if k]
    x, a, c, groups, where, note, noise = table.loss[ok], acc[ok], table.compute[ok], None, "runs", None, None
    points = None
    if checkpoints is not None:
        px, py, pg = step2_points(checkpoints, task_loss, name, runs, smooth, skip)
        if len(set(pg)) >= max(MIN_CK_RUNS, min(MIN_RUNS, len(runs))):
            pa = 1.0 - py if kind == "error" else py
            compute_of = dict(zip(names, table.compute))
            x, a, c, groups, where = px, pa, np.array([compute_of[g] for g in pg]), pg, "checkpoints"
            runs, points = list(pg), (px, pa, pg)
            noise = checkpoint_noise(checkpoints, name, [r for r in by_compute if r in set(pg)], skip)
        else:
            note = (f"{name}: {len(set(pg))} of the fitted runs have checkpoints of it and of {task_loss}; step 2 "
                    f"uses the runs' final values")
    scores = form_scores(x, a, ch_acc) if form == "auto" else None
    weights = form_weights(scores) if form == "auto" else {form: 1.0}
    links = [fit_link(f, x, a, ch_acc if f != "exponential" else None, n_boot, seed, groups=groups)
             for f in weights]
    dlink = fit_link("sigmoid", -np.log10(table.compute[ok]), acc[ok], ch_acc, n_boot, seed,
                     x_name="-log10(compute)") if direct else None
    mf = MetricFit(name, kind, ch_acc, runs, x, c, a, links, list(weights.values()), dlink, scores, task_loss, where)
    if direct:
        mf.direct_weight, mf.direct_scores = direct_weight(table, ok, acc, ch_acc, mf.link.form, inner, points)
    fitted_change = float(np.ptp(mf.accuracy(table.loss[ok])))
    mf.predictability = predictability(fitted_change, noise if noise is not None else mf.link.sigma)
    return mf, note
