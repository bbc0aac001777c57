"""From curves to a run table: the metric a fit uses, one row per run (its final value, or the mean of its last k
points; every point with `intermediate`), params and tokens from what the user and the log say, each row checked
as a run table's rows are, and the table itself (`load_table`, from run tables and logs alike)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runs import RunTable, check_numbers, load_runs, resolve_conventions
from .curve import Curve
from .history import validation_metric
from .meta import compile_name_pattern, load_run_meta, meta_for, name_meta
from .registry import DEFAULT_METRIC, read_logs

def pick_metric(curves: list[Curve], fmt: str, metric: str | None, path) -> list[Curve]:
    names = sorted({c.metric for c in curves})
    if metric:
        chosen = [c for c in curves if c.metric == metric]
        if not chosen:
            raise InputError(f"{path}: no metric '{metric}' in this log (metrics: {', '.join(names)})")
        return chosen
    if fmt in ("wandb_history", "mlflow", "wandb_run"):
        val = validation_metric(names)
        if val:
            return [c for c in curves if c.metric == val]
    for cand in (DEFAULT_METRIC.get(fmt), "eval_loss", "val_loss", "eval/loss", "loss", "train_loss", "value"):
        chosen = [c for c in curves if c.metric == cand]
        if chosen:
            return chosen
    loss_like = [c for c in curves if "loss" in c.metric.lower()]
    if len({c.metric for c in loss_like}) == 1:
        return loss_like
    raise InputError(f"{path}: choose a metric with --metric (metrics: {', '.join(names)})")


def curves_to_records(curves, params=None, tokens_per_step=None, last_k: int = 1, intermediate: bool = False,
                      run_meta=None, name_pattern=None):
    """Run-table rows from curves: the final value (mean of the last k points) per curve, or every point with
    `intermediate`. Params and tokens: run-meta row > params/tokens_per_step given > the run's name (name_pattern,
    compiled) > what the log says."""
    recs = []
    for c in curves:
        m = dict(c.meta)
        m.update(name_meta(c.run, name_pattern))
        m.update({k: v for k, v in (("params", params), ("tokens_per_step", tokens_per_step)) if v})
        m.update(meta_for(c.run, run_meta))
        pts = [(s, v, (c.tokens[i] if c.tokens else None)) for i, (s, v) in enumerate(zip(c.steps, c.values))
               if math.isfinite(v)]
        if not pts or not math.isfinite(c.values[-1]):  # it ends diverged: its last finite value is no final loss
            recs.append({"run": c.run, "metric": c.metric, "status": "diverged", "source": c.source,
                         "diverged_at": next((f["step"] for f in c.flags if f["kind"] == "diverged"), None)})
            continue
        chosen = pts if intermediate else [pts[-1]]
        for s, v, tok in chosen:
            last = s == pts[-1][0]
            value = v if intermediate else float(np.mean([p[1] for p in pts[-last_k:]]))
            rec = {"run": c.run, "metric": c.metric, "step": s, "loss": value, "source": c.source, "final": last}
            if tok is None and last and m.get("tokens"):
                tok = m["tokens"]
            if tok is None and m.get("tokens_per_step"):
                tok = s * m["tokens_per_step"]
            if tok:
                rec["tokens"] = tok
            if m.get("params"):
                rec["params"] = m["params"]
                if m.get("params_from") and m["params"] != params:
                    rec["params_from"] = m["params_from"]
            if "params" in rec and "tokens" in rec:
                rec["compute"], rec["derived"] = 6.0 * rec["params"] * rec["tokens"], ["compute"]
                rec["compute_convention"] = "6nd"
            elif last and m.get("compute"):
                rec["compute"], rec["compute_from"] = m["compute"], "the log's own FLOP count"
                rec["compute_convention"] = "reported"
            if m.get("budget"):
                rec["budget"] = m["budget"]
            if m.get("state") in ("crashed", "failed", "killed"):
                rec["status"] = "failed"
            if any(f["kind"] == "diverged" for f in c.flags):
                rec["flags"] = c.flags
            recs.append(rec)
    return recs


def records_from_logs(read, metric=None, params=None, tokens_per_step=None, last_k: int = 1,
                      intermediate: bool = False, run_meta=None, name_pattern=None) -> list[dict]:
    """Run-table rows from logs read by read_logs (run tables among them are skipped): the metric of each
    (pick_metric), one row per run. Where no --metric was given and a log has no validation loss, its training
    loss is used and each row says so in its `note`."""
    recs = []
    for path, kind, curves in read:
        if kind != "runs":
            chosen = pick_metric(curves, kind, metric, path)
            rows = curves_to_records(chosen, params, tokens_per_step, last_k, intermediate, run_meta, name_pattern)
            name = chosen[0].metric if chosen else ""
            if metric is None and TRAIN.search(name):
                for r in rows:
                    r["note"] = (f"{path}: no validation loss in this log; its training loss '{name}' is used "
                                 f"(--metric chooses another)")
            recs += rows
    return recs


TRAIN = re.compile(r"(^|[/_.\-])(train|training|trl)([/_.\-]|$)", re.I)


def load_table(inputs, fmt: str = "auto", columns: dict | None = None, intermediate: bool = False,
               metric: str | None = None, params: float | None = None, tokens_per_step: float | None = None,
               pattern: str | None = None, last_k: int = 1, run_meta=None,
               compute_convention: str | None = None, name_pattern: str | None = None, read=None) -> RunTable:
    """A run table from run tables and/or training logs (each log gives one row per run and metric). `read`: the
    inputs as `read_logs` returned them, where the caller has read them already (one read for several tables)."""
    if isinstance(run_meta, (str, Path)):
        run_meta = load_run_meta(run_meta)
    if read is None:
        read = read_logs(inputs, fmt, pattern)
    tables = [path for path, kind, _ in read if kind == "runs"]
    records, excluded = [], []
    if tables:
        t = load_runs(tables, columns, intermediate=intermediate, convention=compute_convention)
        records, excluded = t.records, t.excluded
    rx = compile_name_pattern(name_pattern) if name_pattern else None
    warnings = sorted({c.meta["note"] for _, _, curves in read for c in curves if c.meta.get("note")})
    for r in records_from_logs(read, metric, params, tokens_per_step, last_k, intermediate, run_meta, rx):
        r["_where"] = f"{r['source']}, run '{r['run']}'"
        if r.get("status") in ("diverged", "failed"):
            excluded.append({**r, "reason": f"status {r['status']}"})
            at = f" at step {r['diverged_at']}" if r.get("diverged_at") is not None else ""
            warnings.append(f"{r['_where']}: {r['metric']} " + (f"diverged{at} (not finite at its end): left out of "
                            f"the fit" if r["status"] == "diverged" else "is a failed run: left out of the fit"))
            continue
        if "compute" not in r:
            raise InputError(f"{r['source']}: run '{r['run']}' has no compute: give --params and --tokens-per-step, "
                             f"or --run-meta FILE with params and tokens (or tokens_per_step) per run")
        check_numbers(r, r["_where"], f"{r['metric']} at step {r.get('step')}")
        if r.get("note") and r["note"] not in warnings:
            warnings.append(r["note"])
        if r.get("flags"):
            warnings.append(f"{r['_where']}: {r['metric']} was not finite at some step before its end (a recovered "
                            f"spike?); its final value is used")
        records.append(r)
    if not records:
        raise InputError(f"{', '.join(map(str, inputs))}: no usable runs")
    records, converted = resolve_conventions(records, compute_convention)
    return RunTable(records, [str(p) for p in inputs], excluded, warnings + converted)
