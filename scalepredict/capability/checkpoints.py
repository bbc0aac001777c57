"""Step 2 of the task law on every checkpoint, as the OLMo ladder fits it (Bhagia et al. 2024): each run's history
of its task loss and of a metric, smoothed by a moving average over a few checkpoints, its first part left out,
gives many (task loss, accuracy) points where the runs' final values give one each. A sigmoid fitted on a handful of
final values cannot place its bend; hundreds of checkpoints can. The points of one run are not independent, so the
interval still comes from the runs: step 2's bootstrap resamples whole runs (links.fit_link's `groups`).

The same histories say how noisy a metric is: its checkpoint-to-checkpoint scatter at the largest runs (the
difference of neighbouring checkpoints over sqrt 2, after the first part), the quantity the ladder paper found
behind the tasks it mispredicts.

A checkpoint file is a run table with one row per run and step: a run column, a step column, the task loss and the
metrics (CSV, JSONL or a JSON array), e.g. one exported from W&B histories or lm-eval results per checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..runs import read_rows

SMOOTH = 5  # a moving average over this many checkpoints (the ladder paper's)
SKIP = 0.1  # the first 10% of each run's steps are left out (the paper's)


@dataclass
class Checkpoints:
    """run -> column -> (steps, values), sorted by step."""

    runs: dict
    source: str

    def history(self, run: str, column: str):
        return self.runs.get(run, {}).get(column)


def cell_number(value, where: str, column: str) -> float:
    """A table cell as a number: NaN where empty, one line naming the cell where it is not a finite number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}, column {column}: {value!r} is not a number") from None
    if math.isinf(x):
        raise InputError(f"{where}, column {column}: {value!r} is not finite")
    return x


def read_checkpoints(path, columns, run_col: str = "run", step_col: str = "step") -> Checkpoints:
    """The histories of `columns` per run from a checkpoint table (see the module's docstring): a metric it does
    not have is fitted on the runs' final values (said by tasks.py); a table with none of them, a row without its
    run or step, a value that is not a number, or two values at one step of a run is one InputError."""
    rows = read_rows(path).rows
    if not rows:
        raise InputError(f"{path}: no rows")
    seen = set().union(*(set(r) for _, r in rows))
    for col in (run_col, step_col):
        if col not in seen:
            raise InputError(f"{path}: no column {col!r} (columns: {', '.join(sorted(seen))}); a checkpoint table "
                             f"has one row per run and step")
    if not any(c in seen for c in columns):
        raise InputError(f"{path}: none of the columns {', '.join(columns)} (columns: {', '.join(sorted(seen))})")
    acc: dict = {}
    for line, r in rows:
        where = f"{path}, line {line}"
        run = r.get(run_col)
        if run is None or not str(run).strip():
            raise InputError(f"{where}: column {run_col} is empty")
        step = cell_number(r.get(step_col), where, step_col)
        if not (math.isfinite(step) and step >= 0 and step == int(step)):
            raise InputError(f"{where}, column {step_col}: {r.get(step_col)!r} is not a whole number >= 0")
        per = acc.setdefault(str(run), {})
        for c in columns:
            v = cell_number(r.get(c), where, c)
            if math.isfinite(v):
                steps = per.setdefault(c, {})
                if int(step) in steps and steps[int(step)] != v:
                    raise InputError(f"{where}: run {run} has two values of {c} at step {int(step)}")
                steps[int(step)] = v
    runs = {run: {c: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)])) for c, d in cols.items()}
            for run, cols in acc.items()}
    return Checkpoints(runs, str(path))


def smoothed(steps, values, window: int = SMOOTH, skip: float = SKIP):
    """(steps, values) after the first `skip` share of the run's last step, averaged over `window` neighbouring
    checkpoints (trailing: each point is the mean of it and the window - 1 before it)."""
    steps, values = np.asarray(steps), np.asarray(values, float)
    keep = steps > skip * steps.max()
    steps, values = steps[keep], values[keep]
    w = max(1, min(int(window), len(values)))
    if len(values) == 0:
        return steps, values
    return steps[w - 1 :], np.convolve(values, np.ones(w) / w, mode="valid")


def step2_points(ck: Checkpoints, loss_col: str, metric: str, runs, window: int = SMOOTH, skip: float = SKIP):
    """Step 2's points from the checkpoints of `runs`: (task loss, metric, run of each point), both histories
    smoothed at the steps they share. Runs without both histories are skipped."""
    xs, ys, groups = [], [], []
    for run in runs:
        hl, hm = ck.history(run, loss_col), ck.history(run, metric)
        if hl is None or hm is None:
            continue
        common = np.intersect1d(hl[0], hm[0])
        if len(common) == 0:
            continue
        x = hl[1][np.searchsorted(hl[0], common)]
        y = hm[1][np.searchsorted(hm[0], common)]
        s, xs_ = smoothed(common, x, window, skip)
        _, ys_ = smoothed(common, y, window, skip)
        xs.append(xs_)
        ys.append(ys_)
        groups += [run] * len(s)
    if not xs:
        return np.empty(0), np.empty(0), []
    return np.concatenate(xs), np.concatenate(ys), groups


def checkpoint_noise(ck: Checkpoints, metric: str, runs, skip: float = SKIP) -> float | None:
    """The metric's checkpoint-to-checkpoint scatter (sd of neighbouring differences / sqrt 2, after the first
    `skip` of the run) at the largest runs: the last of `runs` (ordered by compute) that has at least 4 checkpoints,
    averaged with the one before it where that has them too. None where no run has enough."""
    out = []
    for run in reversed(list(runs)):
        h = ck.history(run, metric)
        if h is None:
            continue
        keep = h[0] > skip * h[0].max()
        v = h[1][keep]
        if len(v) >= 4:
            out.append(float(np.std(np.diff(v), ddof=1) / math.sqrt(2)))
        if len(out) == 2:
            break
    return float(np.mean(out)) if out else None
