"""Every checkpoint into the scaling fit: a run's checkpoints made into the finals of shorter runs of the same recipe,
through a law of its curve under its schedule (`--checkpoints`).

The middle of a cosine run is not the end of a shorter run: its learning rate has not annealed, so its loss sits
above what a run of that length reaches (Porian et al. 2024), and fitting it as a final bends the law. A law of the
curve under the schedule says what the same run would have reached had its schedule been compressed to end at step
s: its loss at s under the run's schedule shape resampled to s steps. The law is the multi-power law (Luo et al.
2025; curves.py), fitted on the run's curve together with the other runs of the same model that cost no more than
it (another length is another schedule in steps, which is what tells the law how the loss answers an earlier
decay; a costlier run would leak into a backtest). Each run gives such points at a few fractions of its length,
scaled so that the law's value at the run's own end matches the run's final loss in the table (the law's error at
the end cancels; what remains is its error between s and the end). Each point is a row with the run's params, the
tokens and compute of s steps, the budget of its IsoFLOP set times s / steps (the sizes of a set stopped at the same
fraction form a set of their own), `checkpoint: true` and `checkpoint_of` its run (checkpointrows.py).

The Hitchhiker's guide to scaling-law estimation (Choshen et al. 2024) finds intermediate checkpoints make fits
more reliable; the law average weighs each law with and without them by its nested backtest (ensemble.py), and
`experiments/checkpoints_in_fit.py` measures whether they help (docs/curves.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .core import schedules
from .core.curves import Segment, fit_curves
from .errors import InputError
from .forecast import RunCurve, curves_of, fitted_points, schedule_for
from .ingest import read_logs
from .runs import RunTable

class NoCurves(InputError):
    """No run of the table has a curve with a known schedule: no checkpoint can be made."""


MAX_POINTS = 80  # a curve's points fitted, evenly spaced (the last kept): a run logged every 10 steps has thousands
FRACTIONS = (0.25, 0.5, 0.75)  # of a run's steps: where its checkpoints become the finals of shorter runs
CURVE_LAW = "multipower"


def shortened(sched: schedules.Schedule, s: int) -> np.ndarray:
    """The schedule's shape resampled to end at step s (warmup and decay compressed alike)."""
    T = sched.total
    return np.interp(np.arange(s) * (T / s), np.arange(T), sched.lr)


def annealed_losses(curve: RunCurve, final_loss: float, fractions=FRACTIONS, law: str = CURVE_LAW,
                    companions=()) -> list[tuple]:
    """(step, loss) of the run compressed to end at each fraction of its steps (see the module's docstring).
    `companions`: other runs of the same model (another length, another schedule), fitted with it by one law."""
    segs = []
    for c in companions:
        try:
            segs.append(_prepared(c)[1])
        except InputError:
            continue
    return _annealed(_prepared(curve), segs, final_loss, fractions, law)


def _prepared(curve: RunCurve) -> tuple[schedules.Schedule, Segment]:
    """The run's schedule up to its last logged step, and its points to fit (thinned); an InputError where its
    schedule is unknown or it has too few points."""
    sched = schedule_for(curve, None, int(curve.steps[-1]) if len(curve.steps) else None)
    seg = _thinned(fitted_points(curve, sched))
    end = min(sched.total, int(curve.steps[-1]))
    return schedules.Schedule(sched.lr[:end], sched.source), seg


def _annealed(run: tuple, companions: list, final_loss: float, fractions, law: str) -> list[tuple]:
    """annealed_losses on a prepared run (_prepared) and its companions' segments."""
    sched, seg = run
    end = sched.total
    fit = fit_curves([seg, *companions], law, n_boot=0)
    at_end = float(np.reshape(fit.log_predict(sched.lr, [end]), -1)[0])
    out = []
    for f in fractions:
        s = int(round(f * end))
        if s < 2:
            continue
        ls = float(np.reshape(fit.log_predict(shortened(sched, s), [s]), -1)[0])
        loss = final_loss * math.exp(ls - at_end)
        if math.isfinite(loss) and loss > 0:
            out.append((s, loss))
    return out


def _thinned(seg: Segment) -> Segment:
    """At most MAX_POINTS of the segment's points, evenly spaced, its last kept (the multi-power law's cost grows
    with the points, and neighbouring points of a long curve add little)."""
    if len(seg.steps) <= MAX_POINTS:
        return seg
    idx = np.unique(np.round(np.linspace(0, len(seg.steps) - 1, MAX_POINTS)).astype(int))
    return Segment(seg.lr, seg.steps[idx], seg.loss[idx], seg.name)


def _curves_by_run(read, metric: str | None) -> dict:
    """Each run's curve: from the logs among the inputs, and for a sweep's run table (runs.jsonl) from its runs'
    logs beside it (runs/<run>/log.jsonl)."""
    out = {}
    for path, kind, curves in read:
        if kind == "runs":
            for log in sorted(Path(path).parent.glob("runs/*/log.jsonl")):
                for p, k, cs in read_logs([log]):
                    for c in curves_of(p, k, cs, metric):
                        out.setdefault(log.parent.name, c)
            continue
        for c in curves_of(path, kind, curves, metric):
            out.setdefault(c.run, c)
    return out


def _companions(table: RunTable, rec: dict, curves: dict) -> list[str]:
    """The other runs of the same model (same params) that cost no more than `rec` and have a curve: fitted with
    it, they tell the law how the loss answers the schedule; a more expensive run would leak into a backtest."""
    if rec.get("params") is None or rec.get("compute") is None:
        return []
    return [o["run"] for o in table.records
            if o is not rec and o.get("run") in curves and not o.get("checkpoint") and o.get("params") is not None
            and math.isclose(float(o["params"]), float(rec["params"]), rel_tol=1e-6)
            and o.get("compute") is not None and float(o["compute"]) <= float(rec["compute"])]


def with_annealed_checkpoints(table: RunTable, read, metric: str | None = None, fractions=FRACTIONS,
                              law: str = CURVE_LAW) -> RunTable:
    """The table with its runs' checkpoints as annealed rows (see the module's docstring). A run without a curve
    or a known schedule keeps its final alone, and the table's warnings say so."""
    curves = _curves_by_run(read, metric)
    finals = [r for r in table.records if not r.get("checkpoint")]
    prepared, why = {}, {}  # run -> _prepared(its curve), or the InputError saying why it cannot be: each made once
    for run in {str(r.get("run")) for r in finals} & curves.keys():
        try:
            prepared[run] = _prepared(curves[run])
        except InputError as e:
            why[run] = e
    rows, missing = [], []
    for r in finals:
        run = str(r.get("run"))
        if run not in curves:
            missing.append(f"{run} (no curve)")
            continue
        err = why.get(run)
        if err is None:
            own = prepared[run]
            segs = [prepared[o][1] for o in _companions(table, r, curves) if o in prepared]
            try:
                points = _annealed(own, segs, float(r["loss"]), fractions, law)
            except InputError as e:
                err = e
        if err is not None:
            missing.append(f"{run} ({str(err).split(': ', 2)[-1]})")
            continue
        end = float(own[0].total)  # the step the fractions are counted of
        for s, loss in points:
            share = s / end
            row = {k: v for k, v in r.items() if k not in ("final", "flags", "note")}
            row.update({"run": f"{run}@{s}", "step": s, "loss": loss, "checkpoint": True, "checkpoint_of": run})
            for k in ("tokens", "compute", "budget"):
                if r.get(k) is not None:
                    row[k] = float(r[k]) * share
            rows.append(row)
    if not rows:
        raise NoCurves(f"{', '.join(table.sources)}: --checkpoints: no run has a curve with a known schedule "
                         f"({'; '.join(missing[:3])}{'...' if len(missing) > 3 else ''})")
    warnings = list(table.warnings)
    if missing:
        warnings.append(f"--checkpoints: {len(missing)} runs keep their final alone: {', '.join(missing[:5])}"
                        f"{'...' if len(missing) > 5 else ''}")
    return RunTable(table.records + rows, table.sources, table.excluded, warnings)
