"""Weights & Biases run histories as users save them: `run.history()` or `run.scan_history()` dumped to CSV, JSONL or
Parquet (pandas' to_csv / to_json(lines=True) / to_parquet), one file per run or many runs in one file with a run
column. Told apart from a run table by W&B's own columns (`_step`, `_runtime`, `_timestamp`).

Read as a stream, one row at a time: each metric keeps compact float arrays (8 bytes a value), so a history is held
in memory once, at a fraction of its size on disk. Tokens and compute come from the columns that count them: a
token counter (`throughput/total_tokens`, `tokens_seen`, ...) gives each point's tokens; a cumulative FLOP counter
(`throughput/total_training_Gflops`, `total_flops`, ...) gives the run's compute at its last step, in FLOPs (the
unit prefix of its name applied: G 1e9, T 1e12, P 1e15, E 1e18).
"""

from __future__ import annotations

import csv
import json
import re
from array import array
from pathlib import Path

from ..errors import InputError
from .curve import Curve

W_B_COLUMNS = ("_step", "_runtime", "_timestamp")
RUNS_TABLE_COLUMNS = ("State", "Notes", "User", "Tags", "Created", "Runtime", "Sweep")
RUN_COLUMNS = ("run", "run_id", "run_name", "name", "Name", "id")
SKIP = ("_runtime", "_timestamp", "_wandb.runtime", "epoch")
TOKEN_COLUMN = re.compile(r"(^|[/_.])(total_tokens|tokens_seen|num_tokens|consumed_tokens|tokens|ntokens|"
                          r"num_input_tokens_seen)$", re.I)
FLOP_COLUMN = re.compile(r"(total|cumulative)[_/]?(training_|train_)?(?P<unit>[gtpe]?)flo(p|ps|s)$|^(total_)?flos$", re.I)
UNITS = {"": 1.0, "g": 1e9, "t": 1e12, "p": 1e15, "e": 1e18}


def is_history(path: Path, head: str) -> bool:
    """A W&B history dump: a CSV header or a first JSON object with W&B's `_step`, `_runtime` or `_timestamp`, or
    a Parquet file (its columns are checked when read)."""
    if path.suffix.lower() == ".parquet":
        return True
    first = head.lstrip().split("\n", 1)[0]
    if first.startswith("{"):
        try:
            row = json.loads(first)
        except json.JSONDecodeError:
            return False
        return isinstance(row, dict) and any(k in row for k in W_B_COLUMNS)
    try:
        cols = [c.strip().strip('"') for c in next(csv.reader([first]), [])]
    except csv.Error:
        return False
    if sum(c in cols for c in RUNS_TABLE_COLUMNS) >= 2:
        return False  # the runs table's export: one row per run, its summary (ingest.wandb)
    return "_step" in cols or sum(c in cols for c in W_B_COLUMNS) >= 2


def _rows(path: Path):
    """(line, row) pairs of a history file, streamed: CSV rows as dicts of strings, JSONL rows as dicts, Parquet
    record batches (through pyarrow, where installed)."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(f"{path}: reading Parquet needs pyarrow: pip install 'scalepredict[wandb]'") from None
        try:
            f = pq.ParquetFile(path)
            n = 1
            for batch in f.iter_batches(batch_size=65536):
                for row in batch.to_pylist():
                    yield n, row
                    n += 1
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"{path}: not a readable Parquet file ({e})") from None
        return
    with open(path, "r", encoding="utf-8", errors="replace", newline="") as f:
        first = f.readline()
        if first.lstrip().startswith("{"):
            for n, line in enumerate([first], 1):
                yield n, _json_row(path, n, line)
            for n, line in enumerate(f, 2):
                if line.strip():
                    try:
                        yield n, _json_row(path, n, line)
                    except InputError:
                        if not line.endswith("\n"):
                            return  # a last line cut short
                        raise
            return
        n = 1
        try:
            header = next(csv.reader([first]), [])
            for n, fields in enumerate(csv.reader(f), 2):
                if fields:
                    yield n, dict(zip(header, fields))
        except csv.Error as e:
            raise InputError(f"{path}, line {n + 1}: not a CSV row ({e})") from None


def _json_row(path, n, line):
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
    if not isinstance(row, dict):
        raise InputError(f"{path}, line {n}: expected a JSON object")
    return row


def _float(v):
    if v is None or v == "" or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class _Run:
    __slots__ = ("steps", "values", "tokens", "compute")

    def __init__(self):
        self.steps: dict[str, array] = {}
        self.values: dict[str, array] = {}
        self.tokens = array("d")  # (step, tokens) pairs, flattened
        self.compute = None


def read_history(path: Path, text=None, pattern=None) -> list[Curve]:
    runs: dict[str, _Run] = {}
    run_col = token_col = flop_col = None
    unit = 1.0
    seen_header = False
    for n, row in _rows(Path(path)):
        if not seen_header:
            seen_header = True
            keys = list(row)
            if "_step" not in keys and not any(k in keys for k in W_B_COLUMNS):
                raise InputError(f"{path}: no _step column: not a W&B history")
            run_col = next((k for k in RUN_COLUMNS if k in keys), None)
            token_col = next((k for k in keys if TOKEN_COLUMN.search(k)), None)
            for k in keys:
                m = FLOP_COLUMN.search(k)
                if m:
                    flop_col, unit = k, UNITS[(m.group("unit") or "").lower()]
                    break
        step = _float(row.get("_step"))
        if step is None:
            continue
        name = str(row.get(run_col) or Path(path).stem) if run_col else Path(path).stem
        run = runs.get(name)
        if run is None:
            run = runs[name] = _Run()
        for k, v in row.items():
            if k in SKIP or k == "_step" or k == run_col:
                continue
            x = _float(v)
            if x is None:
                continue
            if k == token_col:
                run.tokens.extend((step, x))
            elif k == flop_col:
                run.compute = x * unit
            if k not in run.values:
                run.steps[k], run.values[k] = array("d"), array("d")
            run.steps[k].append(step)
            run.values[k].append(x)
    if not seen_header:
        raise InputError(f"{path}: empty history")
    curves = []
    for name, run in runs.items():
        tok = dict(zip(run.tokens[0::2], run.tokens[1::2])) if token_col else {}
        meta = {"compute": run.compute, "compute_unit": flop_col} if run.compute else {}
        for k, steps in run.steps.items():
            if k in (token_col, flop_col):
                continue
            st = [int(s) for s in steps]
            vals = list(run.values[k])
            tokens = [tok.get(s) for s in steps] if tok else None
            if tokens is not None and all(t is None for t in tokens):
                tokens = None
            curves.append(Curve(name, k, st, vals, tokens, str(path), meta=dict(meta)))
    return curves


VAL_WORDS = re.compile(r"(^|[/_.\-])(val|valid|validation|eval|evaluation|test|heldout)([/_.\-]|$)", re.I)
LOSS_WORDS = re.compile(r"loss|crossentropy|cross_entropy|\bce\b|nll", re.I)


def validation_metric(names) -> str | None:
    """The validation loss among a history's metric names: the one that names both a held-out split and a loss
    (`val/loss`, `eval/c4_en-validation/CrossEntropyLoss`), where there is exactly one; else None."""
    found = [n for n in names if VAL_WORDS.search(n) and LOSS_WORDS.search(n) and "ppl" not in n.lower()
             and "perplexity" not in n.lower()]
    return found[0] if len(found) == 1 else None
