"""`scalepredict forecast`: the loss a run will reach (at its last step, or at any step asked for) from its curve so
far and its learning-rate schedule, with an interval; and the same run under another schedule.

The schedule after the last logged step must be known: given (`--schedule`: a spec or a CSV of step and LR, checked
against the LR the log recorded), the plan's (a scalepredict sweep's own runs), or the log's own where it already
covers the step asked for. Otherwise the run is refused with one line saying what to give.

The points fitted: the curve's finite losses after its early transient (the first EARLY share of the logged steps,
and the warmup), where a law of the whole run's loss under its schedule does not yet hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import defaults
from .config import TrainConfig
from .core import schedules
from .core.curves import MIN_POINTS, Segment, fit_curves
from .errors import InputError
from .files import read_json_object
from .ingest import pick_metric, read_logs
from .plan import lr_at

EARLY = 0.1  # the first 10% of a curve's logged steps (and its warmup) are left out of the fit
LR_NAME = re.compile(r"(^|[/_.\-])(lr|learning_rate|learning-rate)([/_.\-]|$)|^lr-", re.I)


@dataclass
class RunCurve:
    run: str
    metric: str
    steps: np.ndarray
    loss: np.ndarray
    lr_steps: np.ndarray | None
    lr_values: np.ndarray | None
    source: str


def run_curves(paths, metric: str | None, fmt: str = "auto") -> list[RunCurve]:
    """Each run's loss curve (its metric, else the reader's validation loss) and its logged LR, where it has one."""
    out = []
    for path, kind, curves in read_logs(paths, fmt):
        if kind == "runs":
            raise InputError(f"{path}: a run table holds final losses, not curves: give the runs' logs")
        out += curves_of(path, kind, curves, metric)
    return out


def curves_of(path, kind: str, curves, metric: str | None) -> list[RunCurve]:
    """The RunCurves of one log as read_logs read it."""
    out = []
    for c in pick_metric(curves, kind, metric, path):
        lr = next((x for x in curves if x.run == c.run and LR_NAME.search(x.metric)), None)
        ok = np.isfinite(np.asarray(c.values, float))
        out.append(RunCurve(c.run, c.metric, np.asarray(c.steps, int)[ok], np.asarray(c.values, float)[ok],
                            None if lr is None else np.asarray(lr.steps, int),
                            None if lr is None else np.asarray(lr.values, float), str(path)))
    return out


def plan_schedule(curve: RunCurve) -> schedules.Schedule | None:
    """The planned schedule of a scalepredict sweep's run (runs/<id>/log.jsonl beside its sweep.json), or None."""
    log = Path(curve.source)
    sweep = log.parent.parent.parent
    if log.name != "log.jsonl" or not (sweep / "sweep.json").is_file():
        return None
    meta = read_json_object(sweep / "sweep.json", "a sweep file (sweep.json)")
    row = next((p for p in list(meta.get("plan") or []) + list(meta.get("bracket") or [])
                if isinstance(p, dict) and p.get("run") == log.parent.name), None)
    train = (meta.get("config") or {}).get("train") or {}
    if row is None or not isinstance(row.get("steps"), int):
        return None
    t = TrainConfig(**{k: v for k, v in train.items() if k in TrainConfig.__dataclass_fields__})
    spec = _Spec(row["steps"], row.get("warmup_steps", 1) or 1, float(row.get("lr", t.lr)))
    return schedules.Schedule(np.array([lr_at(i, spec, t) for i in range(spec.steps)]), "plan")


@dataclass
class _Spec:  # the fields of a RunSpec that lr_at reads
    steps: int
    warmup_steps: int
    lr: float


def schedule_for(curve: RunCurve, given: schedules.Schedule | None, need: int | None) -> schedules.Schedule:
    where = f"{curve.source}: run '{curve.run}'"
    if given is not None:
        if curve.lr_steps is not None:
            schedules.check_agrees(given, curve.lr_steps, curve.lr_values, where)
        return given
    planned = plan_schedule(curve)
    if planned is not None:
        return planned
    last = int(curve.steps[-1]) if len(curve.steps) else 0
    if curve.lr_steps is not None and need is not None and int(np.max(curve.lr_steps)) + 1 >= need:
        # the LR between the steps it was logged at (every 10th step, say): linear between its neighbours
        order = np.argsort(curve.lr_steps, kind="stable")
        lr = np.interp(np.arange(int(np.max(curve.lr_steps)) + 1), curve.lr_steps[order], curve.lr_values[order])
        return schedules.Schedule(lr, "log")
    raise InputError(f"{where}: its learning rate after step {last} is unknown; give --schedule (a spec such as "
                     f"cosine:total=20000,warmup=700,final=0.1, or a CSV of step,lr)")


def fitted_points(curve: RunCurve, sched: schedules.Schedule) -> Segment:
    warmup = int(np.argmax(sched.lr >= 0.999 * sched.peak)) if len(sched.lr) else 0
    last = int(curve.steps[-1]) if len(curve.steps) else 0
    keep = (curve.steps > max(warmup, EARLY * last)) & (curve.steps <= sched.total) & (curve.loss > 0)
    if keep.sum() < MIN_POINTS:
        raise InputError(f"{curve.source}: run '{curve.run}': {int(keep.sum())} points of {curve.metric} after its "
                         f"first {EARLY:.0%} and its warmup; a forecast needs at least {MIN_POINTS} (the curve is too "
                         f"short)")
    return Segment(sched.lr, curve.steps[keep], curve.loss[keep], curve.run)


def forecast_run(curve: RunCurve, given=None, at_step: int | None = None, level: float = defaults.LEVEL,
                 law: str = "auto", what_if=None, n_boot: int = 300) -> dict:
    """One run's forecast: the loss at `at_step` (default: the schedule's last step) with its interval."""
    sched = schedule_for(curve, given, at_step)
    target = at_step if at_step is not None else sched.total
    if not 1 <= target <= sched.total:
        raise InputError(f"--at-step {target}: outside the schedule's steps 1..{sched.total} ({sched.source})")
    seg = fitted_points(curve, sched)
    fit = fit_curves([seg], law, n_boot=n_boot)
    p = fit.predict(sched.lr, [target], level)[0]
    out = {"run": curve.run, "metric": curve.metric, "source": curve.source, "step": target, "loss": p["loss"],
           "lower": p["lower"], "upper": p["upper"], "level": level, "law": fit.law_name,
           "points": len(seg.steps), "last_step": int(curve.steps[-1]), "schedule": sched.source,
           "warnings": unseen_decay(curve, seg, sched.lr, target),
           "_fit": fit, "_schedule": sched, "_segment": seg}
    if "laws" in p:
        out["laws"] = p["laws"]
    if what_if is not None:
        w = fit.predict(what_if.lr, [what_if.total], level)[0]
        out["warnings"] += unseen_decay(curve, seg, what_if.lr, what_if.total)
        out["what_if"] = {"schedule": what_if.source, "step": what_if.total, "loss": w["loss"], "lower": w["lower"],
                          "upper": w["upper"]}
    return out


DECAY_SEEN = 0.05  # a fall of the LR below 95% of its peak within the fitted points is a decay the laws can measure


def unseen_decay(curve: RunCurve, seg: Segment, lr: np.ndarray, target: int) -> list[str]:
    """A warning (a list of one, else none) where the LR decays before `target` but not within the fitted points:
    the annealing law's C and the multi-power law's B (what a decay is worth) are then fitted on no decay at all,
    and the forecast's drop is theirs alone, not the curve's (modded-nanogpt's WSD run forecast from its constant
    half: the laws spread from -0.2% to +3.5% at its end)."""
    first, last = int(seg.steps[0]), int(seg.steps[-1])
    peak = float(np.max(lr)) if len(lr) else 0.0
    if peak <= 0 or last >= target:
        return []
    seen = float(np.min(lr[first:last])) if last > first else peak
    ahead = float(np.min(lr[last:target]))
    if seen < (1 - DECAY_SEEN) * peak or ahead >= (1 - DECAY_SEEN) * peak:
        return []
    return [f"{curve.source}: run '{curve.run}': its LR decays after step {last} but not within the curve fitted; "
            f"the drop that decay brings by step {target} is extrapolated by the laws, not measured on this run "
            f"(trust the interval over the point)"]


def public(result: dict) -> dict:
    """A forecast without its fit and schedule (what --json prints)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}
