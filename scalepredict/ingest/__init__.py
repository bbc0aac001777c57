"""Readers that turn the logs other tools write into curves, and curves into a run table.

Every reader yields Curve(run, metric, steps, values, tokens). Formats, detected from content (`--format auto`):
runs (JSONL/CSV run tables), hf_trainer (trainer_state.json), lightning (CSVLogger metrics.csv, with
hparams.yaml beside it), wandb (the chart "Export CSV"), wandb_runs (the runs-table "Export CSV": one row per
run, config and summary columns), tensorboard (event files, through the `tensorboard`
package), llmc, nanogpt, modded_nanogpt and megatron stdout logs, and `pattern` (a regex with named groups
`step` and `value`, optionally `tokens` and `run`).

Params and tokens come, most specific first, from a run-meta file (one row per run or glob), from --params and
--tokens-per-step, or from the log itself (`run_meta_from`): hparams.yaml, config.json beside a trainer_state.json,
config columns of a W&B runs table, consumed tokens of Megatron; where only the shape is given, params are
Kaplan et al.'s non-embedding 12 * n_layer * d_model^2. A trainer_state.json's total_flos (the Trainer's own
6 * N * D estimate) is used as the run's compute where params or tokens are unknown.

From curves to runs: by default only the final value of each run's curve (or the mean of its last k points)
enters a fit: the middle of a cosine run is not the end of a shorter run (method.md section 4).
`intermediate=True` keeps every point as its own row, for fitting loss against tokens within one run, with that
caveat.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runs import RunTable, load_runs, resolve_conventions
from .curve import Curve
from .hf_trainer import looks_like_results, read_results, read_trainer_state
from .lightning import read_metrics_csv
from .meta import load_run_meta, meta_for
from .stdout import TEXT_FORMATS, compile_pattern, read_text, text_curves
from .tensorboard import read_event_files
from .wandb import WANDB_RUN_COLUMNS, read_chart_export, read_runs_export

__all__ = ["Curve", "FORMATS", "TEXT_FORMATS", "curves_to_records", "detect", "load_run_meta", "load_table",
           "pick_metric", "read_curves", "read_logs", "records_from_logs"]

DEFAULT_METRIC = {"build_nanogpt": "val_loss", "llmc": "val_loss", "nanogpt": "val_loss",
                  "modded_nanogpt": "val_loss", "megatron": "val_loss", "hf_trainer": "eval_loss",
                  "hf_results": "eval_loss",
                  "lightning": "val_loss", "tensorboard": "eval/loss", "pattern": "value"}

# ---- detection and dispatch --------------------------------------------------------------------------------

FORMATS = ("auto", "runs", "hf_trainer", "hf_results", "lightning", "wandb", "wandb_runs", "tensorboard", "llmc",
           "nanogpt", "modded_nanogpt", "megatron", "build_nanogpt", "pattern")


def detect(path: Path, text: str | None) -> str:
    if path.is_dir() or "tfevents" in path.name:
        return "tensorboard"
    head = text[:20000]
    stripped = head.lstrip()
    if '"log_history"' in head:
        return "hf_trainer"
    if stripped.startswith("{"):
        try:
            if looks_like_results(json.loads(text)):
                return "hf_results"
        except json.JSONDecodeError:
            pass
    if stripped.startswith(("{", "[")):
        return "runs"
    first = head.split("\n", 1)[0]
    if first.startswith('"Step"') or first.startswith("Step,"):
        return "wandb"
    header = [h.strip().strip('"') for h in first.split(",")]
    if "Name" in header and sum(h in WANDB_RUN_COLUMNS for h in header) >= 2:
        return "wandb_runs"
    # stdout logs: the format whose patterns match the most lines (the whole file: modded-nanogpt prints its
    # own source code first)
    lines = text.splitlines()[:200_000]
    counts = {fmt: sum(1 for line in lines for rx, _ in pats if rx.search(line)) for fmt, pats in TEXT_FORMATS.items()}
    best = max(counts, key=counts.get)
    if counts[best] > 0:
        return best
    cols = [c.strip().lower() for c in first.split(",")]
    if "step" in cols and ("epoch" in cols or any("loss" in c for c in cols)) and "compute" not in cols:
        return "lightning"
    if "," in first:
        return "runs"
    raise InputError(f"{path}: unknown log format (give --format, or --pattern with (?P<step>) and (?P<value>))")


def read_curves(path, fmt: str = "auto", pattern: str | None = None) -> tuple[str, list[Curve]]:
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown --format '{fmt}' (known: {', '.join(FORMATS)})")
    if pattern:
        fmt = "pattern"
    if not path.exists():
        raise InputError(f"{path}: no such file")
    text = None if (path.is_dir() or fmt == "tensorboard" or "tfevents" in path.name) else read_text(path)
    if fmt == "auto":
        fmt = detect(path, text)
    if fmt == "tensorboard":
        curves = read_event_files(path)
    elif fmt == "pattern":
        curves = text_curves(path, text, [(compile_pattern(pattern), "value")], fmt)
    elif fmt in TEXT_FORMATS:
        curves = text_curves(path, text, TEXT_FORMATS[fmt], fmt)
    elif fmt in ("hf_trainer", "hf_results"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); truncated?") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}: not a Hugging Face {'trainer_state' if fmt == 'hf_trainer' else 'results'} "
                             f"JSON object")
        curves = read_trainer_state(path, obj) if fmt == "hf_trainer" else read_results(path, obj)
    elif fmt == "lightning":
        curves = read_metrics_csv(path, text)
    elif fmt == "wandb":
        curves = read_chart_export(path, text)
    elif fmt == "wandb_runs":
        curves = read_runs_export(path, text)
    else:
        return "runs", []
    curves = [c.clean() for c in curves if c.steps]
    if not curves:
        raise InputError(f"{path}: no curves found in this {fmt} log")
    return fmt, curves


def pick_metric(curves: list[Curve], fmt: str, metric: str | None, path) -> list[Curve]:
    names = sorted({c.metric for c in curves})
    if metric:
        chosen = [c for c in curves if c.metric == metric]
        if not chosen:
            raise InputError(f"{path}: no metric '{metric}' in this log (metrics: {', '.join(names)})")
        return chosen
    for cand in (DEFAULT_METRIC.get(fmt), "eval_loss", "val_loss", "eval/loss", "loss", "train_loss", "value"):
        chosen = [c for c in curves if c.metric == cand]
        if chosen:
            return chosen
    loss_like = [c for c in curves if "loss" in c.metric.lower()]
    if len({c.metric for c in loss_like}) == 1:
        return loss_like
    raise InputError(f"{path}: choose a metric with --metric (metrics: {', '.join(names)})")


def curves_to_records(curves, params=None, tokens_per_step=None, last_k: int = 1, intermediate: bool = False,
                      run_meta=None):
    """Run-table rows from curves: the final value (mean of the last k points) per curve, or every point with
    `intermediate`. Params and tokens: run-meta row > params/tokens_per_step given > what the log says."""
    recs = []
    for c in curves:
        m = dict(c.meta)
        m.update({k: v for k, v in (("params", params), ("tokens_per_step", tokens_per_step)) if v})
        m.update(meta_for(c.run, run_meta))
        pts = [(s, v, (c.tokens[i] if c.tokens else None)) for i, (s, v) in enumerate(zip(c.steps, c.values))
               if math.isfinite(v)]
        if not pts:
            recs.append({"run": c.run, "metric": c.metric, "status": "diverged", "source": c.source})
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


def read_logs(inputs, fmt: str = "auto", pattern: str | None = None) -> list[tuple[Path, str, list[Curve]]]:
    """(path, format, curves) for each input; run tables come back with format "runs" and no curves."""
    return [(Path(p), *read_curves(p, fmt, pattern)) for p in inputs]


def records_from_logs(read, metric=None, params=None, tokens_per_step=None, last_k: int = 1,
                      intermediate: bool = False, run_meta=None) -> list[dict]:
    recs = []
    for path, kind, curves in read:
        if kind != "runs":
            recs += curves_to_records(pick_metric(curves, kind, metric, path), params, tokens_per_step, last_k,
                                      intermediate, run_meta)
    return recs


def load_table(inputs, fmt: str = "auto", columns: dict | None = None, intermediate: bool = False,
               metric: str | None = None, params: float | None = None, tokens_per_step: float | None = None,
               pattern: str | None = None, last_k: int = 1, run_meta=None,
               compute_convention: str | None = None) -> RunTable:
    """A run table from run tables and/or training logs (each log gives one row per run and metric)."""
    if isinstance(run_meta, (str, Path)):
        run_meta = load_run_meta(run_meta)
    read = read_logs(inputs, fmt, pattern)
    tables = [path for path, kind, _ in read if kind == "runs"]
    records, excluded = [], []
    if tables:
        t = load_runs(tables, columns, intermediate=intermediate, convention=compute_convention)
        records, excluded = t.records, t.excluded
    for r in records_from_logs(read, metric, params, tokens_per_step, last_k, intermediate, run_meta):
        r["_where"] = r["source"]
        if r.get("status") in ("diverged", "failed"):
            excluded.append({**r, "reason": f"status {r['status']}"})
            continue
        if "compute" not in r:
            raise InputError(f"{r['source']}: run '{r['run']}' has no compute: give --params and --tokens-per-step, "
                             f"or --run-meta FILE with params and tokens (or tokens_per_step) per run")
        records.append(r)
    if not records:
        raise InputError(f"{', '.join(map(str, inputs))}: no usable runs")
    records, warnings = resolve_conventions(records, compute_convention)
    return RunTable(records, [str(p) for p in inputs], excluded, warnings)
