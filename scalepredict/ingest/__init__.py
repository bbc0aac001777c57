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

import functools
import json
import re
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..runs import RunTable, load_runs, resolve_conventions
from .curve import Curve
from .hf_trainer import looks_like_results, read_results, read_trainer_state
from .lightning import read_metrics_csv
from .meta import compile_name_pattern, load_run_meta, meta_for, name_meta
from .stdout import TEXT_FORMATS, clean_line, compile_pattern, read_text, text_curves
from .history import is_history, read_history, validation_metric
from .mlflow_store import is_store, read_store
from .wandb_run import is_run, read_run
from .tensorboard import read_event_files
from .wandb import WANDB_RUN_COLUMNS, read_chart_export, read_runs_export

__all__ = ["Curve", "FORMATS", "compile_name_pattern", "TEXT_FORMATS", "curves_to_records", "detect", "load_run_meta", "load_table",
           "pick_metric", "read_curves", "read_logs", "records_from_logs"]

# ---- the registry: every format, how it is detected, its default metric and its reader ----------------------


@dataclass(frozen=True)
class Reader:
    """One log format: `detect(path, text)` says whether a file is one (None: only with --format), `read(path, text,
    pattern)` returns its curves, `metric` is the curve a fit uses by default. `text`: whether the reader takes the
    file's text (False: it reads the path itself, as a folder of event files)."""

    name: str
    doc: str
    read: Callable
    metric: str | None = None
    detect: Callable | None = None
    text: bool = True


def _json(path, text, kind):
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); truncated?") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: not a Hugging Face {kind} JSON object")
    return obj


def _first_line(text):
    return (text or "")[:20000].split("\n", 1)[0]


def _head(text):
    return (text or "")[:20000]


def _is_results(path, text):
    if not _head(text).lstrip().startswith("{") or '"log_history"' in _head(text):
        return False
    try:
        return looks_like_results(json.loads(text))
    except json.JSONDecodeError:
        return False


def _is_wandb_runs(path, text):
    header = [h.strip().strip('"') for h in _first_line(text).split(",")]
    return "Name" in header and sum(h in WANDB_RUN_COLUMNS for h in header) >= 2


def _is_lightning(path, text):
    cols = [c.strip().lower() for c in _first_line(text).split(",")]
    return "step" in cols and ("epoch" in cols or any("loss" in c for c in cols)) and "compute" not in cols


def _text_reader(fmt):
    return lambda path, text, pattern: text_curves(path, text, TEXT_FORMATS[fmt], fmt)


_TEXT_DOCS = {"llmc": "llm.c stdout", "nanogpt": "nanoGPT stdout", "modded_nanogpt": "modded-nanogpt stdout",
              "megatron": "Megatron-LM / Megatron-DeepSpeed stdout", "torchtitan": "torchtitan console log",
              "build_nanogpt": "build-nanogpt log.txt"}

# in detection order: the first whose detect() says yes wins; the stdout formats are told apart by which matches
# the most lines (best_text_format)
READERS = [
    Reader("wandb_run", "W&B run folders on disk: wandb/run-*/ or offline-run-*/, a wandb/ folder of them, or a "
           "run's .wandb file (extra .[wandb])", read_run, None, lambda path, text: is_run(path), text=False),
    Reader("mlflow", "an MLflow tracking store: an mlruns/ folder, one experiment or run of it, or a SQLite file "
           "(extra .[mlflow])", read_store, None, lambda path, text: is_store(path), text=False),
    Reader("tensorboard", "TensorBoard event files or a run folder (extra .[tensorboard])",
           lambda path, text, pattern: read_event_files(path), "eval/loss",
           lambda path, text: path.is_dir() or "tfevents" in path.name, text=False),
    Reader("wandb_history", "a W&B run history (run.history() / scan_history()) saved as CSV, JSONL or Parquet",
           read_history, None, lambda path, text: is_history(path, _head(text)), text=False),
    Reader("hf_trainer", "Hugging Face Trainer trainer_state.json",
           lambda path, text, pattern: read_trainer_state(path, _json(path, text, "trainer_state")), "eval_loss",
           lambda path, text: '"log_history"' in _head(text)),
    Reader("hf_results", "Hugging Face all_results.json / eval_results.json",
           lambda path, text, pattern: read_results(path, _json(path, text, "results")), "eval_loss", _is_results),
    Reader("runs", "a run table: JSONL, a JSON array, or CSV", lambda path, text, pattern: [], None,
           lambda path, text: re.match(r"\s*(\{|\[\s*(\{|\]))", _head(text)) is not None),
    Reader("wandb", "a W&B chart's Export CSV", lambda path, text, pattern: read_chart_export(path, text), None,
           lambda path, text: _first_line(text).startswith(('"Step"', "Step,"))),
    Reader("wandb_runs", "the W&B runs table's Export CSV", lambda path, text, pattern: read_runs_export(path, text),
           None, _is_wandb_runs),
    *[Reader(fmt, _TEXT_DOCS.get(fmt, fmt), _text_reader(fmt), "val_loss",
             lambda path, text, fmt=fmt: best_text_format(text) == fmt) for fmt in TEXT_FORMATS],
    Reader("lightning", "PyTorch Lightning CSVLogger metrics.csv (+ hparams.yaml)",
           lambda path, text, pattern: read_metrics_csv(path, text), "val_loss", _is_lightning),
    Reader("pattern", "any text log, with --pattern (named groups step and value)",
           lambda path, text, pattern: text_curves(path, text, [(compile_pattern(pattern), "value")], "pattern"),
           "value"),
]
BY_NAME = {r.name: r for r in READERS}
FORMATS = ("auto", *BY_NAME)
DEFAULT_METRIC = {r.name: r.metric for r in READERS if r.metric}


@functools.lru_cache(maxsize=4)
def best_text_format(text: str) -> str | None:
    """The stdout format whose patterns match the most lines of the file (the whole file: modded-nanogpt prints its
    own source code first), or None where none matches."""
    lines = [clean_line(line) for line in text.splitlines()[:200_000]]
    counts = {fmt: sum(1 for line in lines for rx, _ in pats if rx.search(line)) for fmt, pats in TEXT_FORMATS.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def detect(path: Path, text: str | None) -> str:
    """The format of a text log (the formats read from the path itself were tried first: _detect_streamed)."""
    for r in READERS:
        if r.text and r.detect is not None and r.detect(path, text):
            return r.name
    if "," in _first_line(text):
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
    text = None
    if fmt == "auto":
        head = None if path.is_dir() else read_head(path)
        fmt = _detect_streamed(path, head)
        if fmt is None:  # the formats that are told apart by their whole text
            text = read_text(path)
            fmt = detect(path, text)
    if fmt == "runs":
        return "runs", []
    reader = BY_NAME[fmt]
    if reader.text and text is None:
        text = read_text(path)
    curves = reader.read(path, text, pattern)
    curves = [c.clean() for c in curves if c.steps]
    if not curves:
        raise InputError(f"{path}: no curves found in this {fmt} log")
    return fmt, curves


def read_head(path: Path, size: int = 65536) -> str:
    """The first `size` bytes of a file as text (for detection), or an InputError (missing, empty, a folder)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(size)
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder (give the log file, or a TensorBoard run folder)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if not raw.strip():
        raise InputError(f"{path}: empty file")
    return raw.decode("utf-8", errors="replace")


def _detect_streamed(path: Path, head: str | None) -> str | None:
    """The formats read from the path itself (event files, W&B histories), told from the first bytes."""
    for r in READERS:
        if not r.text and r.detect is not None and r.detect(path, head):
            return r.name
    return None


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


def expand(inputs) -> list[Path]:
    """The inputs, with a folder that is not a TensorBoard run (no event files in it) replaced by the files in it,
    sorted (a folder of per-run logs or history dumps); hidden files are skipped."""
    out = []
    for p in map(Path, inputs):
        if p.is_dir() and not any(p.rglob("*tfevents*")) and not is_store(p) and not is_run(p):
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            if not files:
                raise InputError(f"{p}: an empty folder")
            out += files
        else:
            out.append(p)
    return out


def read_logs(inputs, fmt: str = "auto", pattern: str | None = None) -> list[tuple[Path, str, list[Curve]]]:
    """(path, format, curves) for each input; run tables come back with format "runs" and no curves."""
    return [(p, *read_curves(p, fmt, pattern)) for p in expand(inputs)]


def records_from_logs(read, metric=None, params=None, tokens_per_step=None, last_k: int = 1,
                      intermediate: bool = False, run_meta=None, name_pattern=None) -> list[dict]:
    recs = []
    for path, kind, curves in read:
        if kind != "runs":
            recs += curves_to_records(pick_metric(curves, kind, metric, path), params, tokens_per_step, last_k,
                                      intermediate, run_meta, name_pattern)
    return recs


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
    for r in records_from_logs(read, metric, params, tokens_per_step, last_k, intermediate, run_meta, rx):
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
