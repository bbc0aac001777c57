"""fit-tasks' inputs: the metrics named by names and patterns, each run's values of them from run tables and logs
(read through ingest), the task loss each metric follows, the chance levels, and the runs up to a compute."""

from __future__ import annotations

import fnmatch
import math
import re

import numpy as np

from ..errors import InputError
from ..ingest import compile_name_pattern, load_run_meta, load_table, read_logs, records_from_logs
from ..runs import read_rows
from .checkpoints import cell_number
from .tasks import metric_kind


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
    x = cell_number(v, where, name)
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
    cols = {k: v for k, v in (columns or {}).items() if v}
    read = read_logs(inputs, fmt, None)  # once: every task loss's table below is built from it
    meta = load_run_meta(run_meta) if run_meta else None
    available = set()
    for path, kind, curves in read:
        if kind == "runs":
            rows = read_rows(path).rows
            available |= set().union(*(set(r) for _, r in rows)) if rows else set()
        else:
            available |= {c.metric for c in curves}
    names, explicit = expand_metrics(patterns, available)
    if average and "*" in task_loss:
        raise InputError("--average follows one task loss: give --task-loss a name, not a pattern")
    pairs = pair_task_losses(task_loss, patterns, names)
    same = [n for n in names if pairs[n] == n]
    if same:
        raise InputError(f"--metric {same[0]}: is also the task loss it would follow (--task-loss {task_loss}); "
                         f"step 2 maps a task loss to another metric")
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


def up_to_compute(groups, max_compute: float | None):
    """The groups of read_task_inputs with only the runs at or below `max_compute` (all where it is None)."""
    if max_compute is None:
        return groups
    kept = []
    for name, table, values in groups:
        keep = table.compute <= max_compute
        if not keep.any():
            raise InputError(f"--max-compute {max_compute:g}: no run at or below it")
        kept.append((name, table.subset(keep), {k: v[keep] for k, v in values.items()}))
    return kept


def parse_chances(values, metrics) -> dict | None:
    """--chance: one number for every metric and/or METRIC=VALUE pairs, in the metric's own sense (an error
    metric's chance is its error at chance). A METRIC=VALUE pair wins over a plain number whatever their order; a
    metric (or the plain number) given twice with different values is refused."""
    if not values:
        return None
    every, named = None, {}
    for v in values:
        name, _, text = str(v).rpartition("=")
        try:
            x = float(text)
        except ValueError:
            raise InputError(f"--chance: {v!r} is not a number or METRIC=NUMBER") from None
        if not 0 <= x <= 1:
            raise InputError(f"--chance: {text} is not a rate in [0, 1]")
        if name:
            if name not in metrics:
                raise InputError(f"--chance {v}: no metric {name!r} (metrics: {', '.join(metrics)})")
            if name in named and named[name] != x:
                raise InputError(f"--chance: {name} given twice ({named[name]:g} and {x:g})")
            named[name] = x
        else:
            if every is not None and every != x:
                raise InputError(f"--chance: two chance levels for every metric ({every:g} and {x:g}); give "
                                 f"METRIC=VALUE for each")
            every = x
    return {m: named.get(m, every) for m in metrics if m in named or every is not None}
