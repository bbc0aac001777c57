"""Weights & Biases run histories as users save them: `run.history()` or `run.scan_history()` dumped to CSV, JSONL or
Parquet (pandas' to_csv / to_json(lines=True) / to_parquet), one file per run or many runs in one file with a run
column. Told apart from a run table by W&B's own columns (`_step`, `_runtime`, `_timestamp`).

Read as a stream: CSV and Parquet in blocks through pyarrow where it is installed (the `wandb` extra; hundreds of MB/s),
else row by row with the csv module; JSONL row by row. Memory stays bounded however long the history: each curve
keeps its last KEEP_LAST points exactly (a fit uses the final value, or the mean of the last k) and at most
KEEP_THIN earlier points, evenly thinned, for the curve's shape; it says how many points it read. Tokens and compute come from the columns that count them: a
token counter (`throughput/total_tokens`, `tokens_seen`, ...) gives each point's tokens; a cumulative FLOP counter
(`throughput/total_training_Gflops`, `total_flops`, ...) gives the run's compute at its last step, in FLOPs (the
unit prefix of its name applied: G 1e9, T 1e12, P 1e15, E 1e18).
"""

from __future__ import annotations

import csv
import json
import math
import re
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
    """(line, row) pairs of a JSONL or CSV history, streamed: JSONL rows as dicts, CSV rows as dicts of strings
    (Parquet, and CSV where pyarrow is installed, are read in blocks by _arrow_batches)."""
    with open(path, "r", encoding="utf-8", errors="replace", newline="") as f:
        first = f.readline()
        if first.lstrip().startswith("{"):
            yield 1, _json_row(path, 1, first)
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


KEEP_LAST = 1000  # points kept exactly at the end of every curve
KEEP_THIN = 10000  # earlier points kept, evenly thinned


class _Points:
    """One curve's points, in bounded memory: the last KEEP_LAST exactly, earlier ones thinned to about KEEP_THIN
    (every stride-th point, the stride doubling as the run goes on); `n` counts every point read."""

    __slots__ = ("head_s", "head_v", "tail_s", "tail_v", "stride", "n")

    def __init__(self):
        self.head_s, self.head_v, self.tail_s, self.tail_v = [], [], [], []
        self.stride, self.n = 1, 0

    def extend(self, steps, values):
        import numpy as np

        self.tail_s.append(np.array(steps, dtype=float))  # a copy: never a view into the reader's block
        self.tail_v.append(np.array(values, dtype=float))
        self.n += len(steps)
        total = sum(len(a) for a in self.tail_s)
        if total > 4 * KEEP_LAST:
            s, v = np.concatenate(self.tail_s), np.concatenate(self.tail_v)
            old_s, old_v = s[:-KEEP_LAST], v[:-KEEP_LAST]
            # copies, not views: a view would keep the whole concatenation alive
            self.head_s.append(old_s[:: self.stride].copy())
            self.head_v.append(old_v[:: self.stride].copy())
            self.tail_s, self.tail_v = [s[-KEEP_LAST:].copy()], [v[-KEEP_LAST:].copy()]
            if sum(len(a) for a in self.head_s) > KEEP_THIN:
                hs, hv = np.concatenate(self.head_s), np.concatenate(self.head_v)
                self.head_s, self.head_v = [hs[::2].copy()], [hv[::2].copy()]
                self.stride *= 2

    def arrays(self):
        import numpy as np

        s = np.concatenate(self.head_s + self.tail_s) if self.n else np.array([])
        v = np.concatenate(self.head_v + self.tail_v) if self.n else np.array([])
        return s, v


def _arrow_batches(path: Path, kind: str):
    """Column batches of a CSV or Parquet file through pyarrow, every column but a run name as float64 (None where
    pyarrow is not installed and the file is a CSV)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq
    except ImportError:
        if kind == "parquet":
            raise InputError(f"{path}: reading Parquet needs pyarrow: pip install 'scalepredict[wandb]'") from None
        return None

    def gen():
        try:
            if kind == "parquet":
                for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 16):
                    yield batch
                return
            with open(path, "rb") as f:
                header = next(csv.reader([f.readline().decode("utf-8")]), [])  # strict: pyarrow's names are
            types = {c: (pa.string() if c in RUN_COLUMNS else pa.float64()) for c in header}
            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22, use_threads=False),
                                   convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True))
            yield from reader
        except (pa.ArrowException, OSError, ValueError, UnicodeError, csv.Error) as e:
            raise InputError(f"{path}: not a readable W&B history ({str(e).splitlines()[0]})") from None

    return gen()


def _roles(path, names) -> tuple:
    """The columns that are not metrics: (run name, token counter, cumulative FLOP counter, its unit in FLOPs)."""
    if "_step" not in names:
        raise InputError(f"{path}: no _step column: not a W&B history")
    run_col = next((k for k in RUN_COLUMNS if k in names), None)
    token_col = next((k for k in names if TOKEN_COLUMN.search(k)), None)
    for k in names:
        m = FLOP_COLUMN.search(k)
        if m:
            return run_col, token_col, k, UNITS[(m.group("unit") or "").lower()]
    return run_col, token_col, None, 1.0


def _read_columnar(path: Path, batches) -> list[Curve]:
    import numpy as np

    curves: dict[tuple, _Points] = {}
    tokens: dict[str, _Points] = {}
    compute: dict[str, float] = {}
    run_col = token_col = flop_col = None
    unit, names = 1.0, None
    for batch in batches:
        if names is None:
            try:
                names = list(batch.schema.names)
            except UnicodeError:
                raise InputError(f"{path}: column names are not UTF-8 text") from None
            run_col, token_col, flop_col, unit = _roles(path, names)
        cols = {k: batch.column(i) for i, k in enumerate(names)}
        step = cols["_step"].to_numpy(zero_copy_only=False).astype(float)  # non-finite steps are left out below
        runs = np.array(cols[run_col].to_pylist(), dtype=object) if run_col else None
        for name in ([Path(path).stem] if runs is None else sorted({str(r) for r in runs if r is not None})):
            sel = np.isfinite(step) if runs is None else (runs == name) & np.isfinite(step)
            for k in names:
                if k in SKIP or k in ("_step", run_col):
                    continue
                v = cols[k].to_numpy(zero_copy_only=False)
                if v.dtype.kind not in "fiu":
                    continue
                v = v.astype(float)
                ok = sel & ~np.isnan(v) if v.dtype.kind == "f" else sel
                if not ok.any():
                    continue
                if k == token_col:
                    tokens.setdefault(name, _Points()).extend(step[ok], v[ok])
                    continue
                if k == flop_col:
                    compute[name] = float(v[ok][-1]) * unit
                    continue
                curves.setdefault((name, k), _Points()).extend(step[ok], v[ok])
    if names is None:
        raise InputError(f"{path}: empty history")
    return _curves(path, curves, tokens, compute, flop_col)


def _curves(path, curves, tokens, compute, flop_col) -> list[Curve]:
    out = []
    tok_maps = {}
    for name, pts in tokens.items():
        s, v = pts.arrays()
        tok_maps[name] = dict(zip(s.tolist(), v.tolist()))
    for (name, metric), pts in curves.items():
        s, v = pts.arrays()
        tm = tok_maps.get(name)
        toks = [tm.get(x) for x in s.tolist()] if tm else None
        if toks is not None and all(t is None for t in toks):
            toks = None
        meta = {"points_read": pts.n}
        if name in compute:
            meta.update(compute=compute[name], compute_unit=flop_col)
        out.append(Curve(name, metric, [int(x) for x in s], v.tolist(), toks, str(path), meta=meta))
    return out


def read_history(path: Path, text=None, pattern=None) -> list[Curve]:
    path = Path(path)
    kind = "parquet" if path.suffix.lower() == ".parquet" else "text"
    if kind == "text":
        with open(path, "rb") as f:
            first = f.read(4096).lstrip()
        kind = "jsonl" if first.startswith(b"{") else "csv"
    if kind in ("csv", "parquet"):
        batches = _arrow_batches(path, kind)
        if batches is not None:
            return _read_columnar(path, batches)
    return _read_rows(path)


def _read_rows(path: Path) -> list[Curve]:
    """The row-by-row reader (JSONL; CSV where pyarrow is not installed), buffering 4,096 points per curve."""
    curves: dict[tuple, _Points] = {}
    tokens: dict[str, _Points] = {}
    compute: dict[str, float] = {}
    buffers: dict[tuple, tuple] = {}  # (store, key) -> (steps, values) not yet handed to the curve's _Points
    run_col = token_col = flop_col = None
    unit = 1.0
    seen_header = False

    def flush(where, key, buf):
        store = tokens if where == "tokens" else curves
        store.setdefault(key, _Points()).extend(buf[0], buf[1])
        buf[0].clear()
        buf[1].clear()

    for _, row in _rows(path):
        if not seen_header:
            seen_header = True
            run_col, token_col, flop_col, unit = _roles(path, list(row))
        step = _float(row.get("_step"))
        if step is None or not math.isfinite(step):  # a step of NaN or Infinity orders nothing: not a point
            continue
        name = str(row.get(run_col) or path.stem) if run_col else path.stem
        for k, v in row.items():
            if k in SKIP or k == "_step" or k == run_col:
                continue
            x = _float(v)
            if x is None or x != x:
                continue
            if k == flop_col:
                compute[name] = x * unit
                continue
            slot = ("tokens", name) if k == token_col else ("curves", (name, k))
            buf = buffers.get(slot)
            if buf is None:
                buf = buffers[slot] = ([], [])
            buf[0].append(step)
            buf[1].append(x)
            if len(buf[0]) >= 4096:
                flush(*slot, buf)
    if not seen_header:
        raise InputError(f"{path}: empty history")
    for slot, buf in buffers.items():
        if buf[0]:
            flush(*slot, buf)
    return _curves(path, curves, tokens, compute, flop_col)


VAL_WORDS = re.compile(r"(^|[/_.\-])(val|valid|validation|eval|evaluation|test|heldout)([/_.\-]|$)", re.I)
LOSS_WORDS = re.compile(r"loss|crossentropy|cross_entropy|\bce\b|nll", re.I)


def validation_metric(names) -> str | None:
    """The validation loss among a history's metric names: the one that names both a held-out split and a loss
    (`val/loss`, `eval/c4_en-validation/CrossEntropyLoss`), where there is exactly one; else None."""
    found = [n for n in names if VAL_WORDS.search(n) and LOSS_WORDS.search(n) and "ppl" not in n.lower()
             and "perplexity" not in n.lower()]
    return found[0] if len(found) == 1 else None
