"""The run table: one record per finished training run, read from JSONL or CSV, validated, and reduced to the
compute-efficient frontier that the `compute` and `power` laws are fitted on.

A record needs `loss` and either `compute` (training FLOPs) or both `params` and `tokens`; the missing one of
the three is derived with C = 6*N*D and the record says so in `derived`. Unknown keys are kept.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, read_input_bytes

NUMERIC = ("compute", "params", "tokens", "loss", "budget")
# Canonical column -> the CLI option that renames it for a foreign table.
COLUMN_OPTIONS = ("compute", "params", "tokens", "loss", "run", "budget")
BAD_STATUS = {"diverged", "failed", "error", "crashed", "nan"}


@dataclass
class RunTable:
    """Validated runs. Arrays hold NaN where a value is unknown (e.g. params of a compute-only table)."""

    records: list[dict]
    sources: list[str]
    excluded: list[dict] = field(default_factory=list)  # rows left out (diverged/failed), with the reason

    def __post_init__(self):
        def col(name):
            return np.array([float(r[name]) if r.get(name) is not None else np.nan for r in self.records])

        self.compute, self.params, self.tokens, self.loss = (col(k) for k in ("compute", "params", "tokens", "loss"))
        self.budget = col("budget")
        self.names = [str(r.get("run", f"row{i + 1}")) for i, r in enumerate(self.records)]

    def __len__(self):
        return len(self.records)

    @property
    def has_params_tokens(self) -> bool:
        return bool(np.all(np.isfinite(self.params)) and np.all(np.isfinite(self.tokens)))

    def subset(self, mask) -> "RunTable":
        idx = np.flatnonzero(mask)
        return RunTable([self.records[i] for i in idx], self.sources, self.excluded)


def _where(path, lineno=None, column=None):
    s = str(path)
    if lineno is not None:
        s += f", line {lineno}"
    if column is not None:
        s += f", column '{column}'"
    return s


def _number(value, path, lineno, column):
    if isinstance(value, bool):
        raise InputError(f"{_where(path, lineno, column)}: {value!r} is not a number")
    if isinstance(value, (int, float)):
        x = float(value)
    else:
        text = str(value).strip()
        try:
            x = float(text)
        except ValueError:
            raise InputError(f"{_where(path, lineno, column)}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{_where(path, lineno, column)}: value {value!r} is not finite")
    return x


def _rows_jsonl(path, text):
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if lineno == len(text.splitlines()) and not text.endswith("\n"):
                continue  # an unterminated last line is a write in progress, not a record
            raise InputError(f"{_where(path, lineno)}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{_where(path, lineno)}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def _rows_json_array(path, text):
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{_where(path, e.lineno)}: not valid JSON ({e.msg})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{path}: expected a JSON array of objects (one per run)")
    for i, row in enumerate(rows, 1):
        yield f"item {i}", row


def _rows_csv(path, text):
    reader = csv.reader(io.StringIO(text))
    header = None
    for lineno, fields in enumerate(reader, 1):
        if not fields or all(not f.strip() for f in fields):
            continue
        if header is None:
            header = [h.strip() for h in fields]
            continue
        if len(fields) != len(header):
            raise InputError(f"{_where(path, lineno)}: {len(fields)} fields, the header has {len(header)}")
        yield lineno, {h: (v.strip() if v.strip() != "" else None) for h, v in zip(header, fields)}


def read_rows(path) -> tuple[str, list[tuple[object, dict]]]:
    """(kind, [(line, row)]) for a JSONL, JSON array or CSV file, detected from content."""
    path = Path(path)
    raw = read_input_bytes(path)
    if b"\x00" in raw[:4096]:
        raise InputError(f"{path}: binary file, expected a JSONL or CSV run table")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise InputError(f"{path}: empty file, expected a run table")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "jsonl", list(_rows_jsonl(path, text))
    if stripped.startswith("["):
        return "json", list(_rows_json_array(path, text))
    return "csv", list(_rows_csv(path, text))


def parse_records(path, rows, columns: dict | None = None) -> list[dict]:
    """Validate raw rows into canonical records. `columns` maps canonical name -> column name in the file."""
    columns = {k: v for k, v in (columns or {}).items() if v}
    if not rows:
        raise InputError(f"{path}: no runs in the file (only a header or blank lines)")
    present = set().union(*(r.keys() for _, r in rows))
    for canon, name in columns.items():
        if name not in present:
            raise InputError(
                f"{path}: no column '{name}' (given for {canon}); columns are: {', '.join(sorted(present))}"
            )
    rename = {name: canon for canon, name in columns.items()}
    has = {rename.get(k, k) for k in present}
    if "loss" not in has:
        raise InputError(f"{path}: no 'loss' column (name it with --loss-col); columns are: {', '.join(sorted(present))}")
    if "compute" not in has and not {"params", "tokens"} <= has:
        raise InputError(
            f"{path}: needs a 'compute' column or both 'params' and 'tokens' (name them with --compute-col, "
            f"--params-col, --tokens-col); columns are: {', '.join(sorted(present))}"
        )
    records = []
    for lineno, row in rows:
        rec = {}
        for k, v in row.items():
            canon = rename.get(k, k)
            if canon in rec and canon != k:
                continue
            rec[canon] = v
            if canon != k:
                rec[f"{canon}_column"] = k
        for name in NUMERIC:
            v = rec.get(name)
            if v is None or (isinstance(v, str) and not v.strip()):
                rec.pop(name, None)
                continue
            col = columns.get(name, name)
            x = _number(v, path, lineno, col)
            if x <= 0:
                raise InputError(f"{_where(path, lineno, col)}: {name} must be positive, got {v}")
            rec[name] = x
        if "loss" not in rec and str(rec.get("status", "ok")).lower() in BAD_STATUS:
            rec["_where"] = _where(path, lineno)
            records.append(rec)  # a diverged or failed run: kept to be reported, left out of fits
            continue
        if "loss" not in rec:
            raise InputError(f"{_where(path, lineno, columns.get('loss', 'loss'))}: loss is missing")
        derived = []
        if "compute" not in rec:
            if "params" not in rec or "tokens" not in rec:
                raise InputError(f"{_where(path, lineno)}: needs compute, or both params and tokens")
            rec["compute"] = 6.0 * rec["params"] * rec["tokens"]
            derived.append("compute")
        elif "tokens" not in rec and "params" in rec:
            rec["tokens"] = rec["compute"] / (6.0 * rec["params"])
            derived.append("tokens")
        elif "params" not in rec and "tokens" in rec:
            rec["params"] = rec["compute"] / (6.0 * rec["tokens"])
            derived.append("params")
        if derived:
            rec["derived"] = derived
        if "run" in rec and rec["run"] is not None:
            rec["run"] = str(rec["run"])
        rec.setdefault("source", str(path))
        rec["_where"] = _where(path, lineno)
        records.append(rec)
    return records


def _final_only(records: list[dict]) -> list[dict]:
    """Keep one record per run: the one marked `final`, else the one with the largest `step`.

    Intermediate checkpoints of a cosine run are not the final losses of shorter runs (method.md section 4).
    """
    if not any("step" in r or "final" in r for r in records):
        return records
    by_run: dict[str, list[dict]] = {}
    for i, r in enumerate(records):
        by_run.setdefault(str(r.get("run", f"row{i}")), []).append(r)
    out = []
    for rs in by_run.values():
        finals = [r for r in rs if str(r.get("final", "")).lower() in ("true", "1")]
        if finals:
            out.append(finals[-1])
        elif any("step" in r for r in rs):
            out.append(max(rs, key=lambda r: float(r.get("step") or 0)))
        else:
            out.extend(rs)
    return out


def load_runs(paths, columns: dict | None = None, intermediate: bool = False) -> RunTable:
    """Read and validate one or more run tables (JSONL, JSON array or CSV) into one RunTable."""
    records, excluded = [], []
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for path in paths:
        _, rows = read_rows(path)
        recs = parse_records(path, rows, columns)
        for r in recs:
            status = str(r.get("status", "ok")).lower()
            if status in BAD_STATUS:
                excluded.append({**r, "reason": status})
            else:
                records.append(r)
    if not intermediate:
        records = _final_only(records)
    if not records:
        raise InputError(f"{', '.join(map(str, paths))}: no usable runs (all {len(excluded)} diverged or failed)")
    return RunTable(records, [str(p) for p in paths], excluded)


# --------------------------------------------------------------------------------------------------------------
# The compute-efficient frontier


GROUP_TOLERANCE_DEX = 0.05  # runs whose compute differs by < 0.05 in log10 (12%) form one IsoFLOP group


@dataclass
class FrontierPoint:
    compute: float
    loss: float
    params: float  # NaN where unknown
    tokens: float
    method: str  # "vertex" (parabola in log N), "min" (best run of the group), "single"
    members: list[int]  # indices into the run table
    best: int  # index of the lowest-loss member
    # "smallest" / "largest" where the set's lowest (seed-mean) loss is at its smallest / largest size: the set does
    # not bracket the minimum, so the point is an upper bound on the frontier (a larger or smaller size may do better)
    edge: str | None = None

    def as_dict(self, table: RunTable) -> dict:
        return {
            "compute": self.compute,
            "loss": self.loss,
            "params": None if not math.isfinite(self.params) else self.params,
            "tokens": None if not math.isfinite(self.tokens) else self.tokens,
            "method": self.method,
            "runs": [table.names[i] for i in self.members],
            "edge": self.edge,
        }


def isoflop_groups(table: RunTable, tolerance_dex: float = GROUP_TOLERANCE_DEX) -> list[list[int]]:
    """Group runs into IsoFLOP sets: by `budget` where every run has one, else by compute within a tolerance
    (sorted by compute; a run joins the current group while it is within `tolerance_dex` of the group's first)."""
    if np.all(np.isfinite(table.budget)):
        keys = np.round(np.log10(table.budget), 6)
        return [list(np.flatnonzero(keys == k)) for k in np.unique(keys)]
    order = np.argsort(table.compute, kind="stable")
    lc = np.log10(table.compute)
    groups: list[list[int]] = []
    for i in order:
        if groups and lc[i] - lc[groups[-1][0]] < tolerance_dex:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return groups


def _vertex(logn, loss):
    """Vertex of the parabola loss = p0*x^2 + p1*x + p2 in x = log N (Hoffmann et al. 2022, approach 2), or None
    where the parabola opens downward or its vertex lies outside the sampled sizes (then the minimum is used)."""
    p0, p1, p2 = np.polyfit(logn, loss, 2)
    if p0 <= 0:
        return None
    x = -p1 / (2 * p0)
    if not (logn.min() <= x <= logn.max()):
        return None
    return x, p2 - p1 * p1 / (4 * p0)


def frontier(table: RunTable, tolerance_dex: float = GROUP_TOLERANCE_DEX, pareto: bool = True) -> list[FrontierPoint]:
    """The compute-efficient frontier: one point per IsoFLOP group (the parabola vertex in log N where the group
    has >= 3 distinct sizes, else its lowest loss), then, if `pareto`, only the points that no cheaper point
    beats (Kaplan et al. 2020's envelope; a larger budget cannot be worse than a smaller one on the frontier)."""
    points = []
    for g in isoflop_groups(table, tolerance_dex):
        g = np.array(g)
        best = int(g[np.argmin(table.loss[g])])
        compute = float(np.exp(np.mean(np.log(table.budget[g] if np.all(np.isfinite(table.budget[g])) else table.compute[g]))))
        n = table.params[g]
        point = None
        mean_loss, sizes = table.loss[g], None
        if np.all(np.isfinite(n)):
            # repeated seeds of one size count once, at their mean loss (the min of several seeds is biased low)
            _, inverse = np.unique(np.round(np.log(n), 6), return_inverse=True)
            counts = np.bincount(inverse)
            mean_loss = np.bincount(inverse, weights=table.loss[g]) / counts
            sizes = np.bincount(inverse, weights=np.log(n)) / counts
            if len(sizes) < len(g):
                best = int(g[np.flatnonzero(inverse == np.argmin(mean_loss))[0]])
        edge = None
        if sizes is not None and len(sizes) >= 2:  # np.unique sorted the sizes: index 0 is the smallest
            lowest = int(np.argmin(mean_loss))
            edge = "smallest" if lowest == 0 else "largest" if lowest == len(sizes) - 1 else None
        if sizes is not None and len(sizes) >= 3:
            v = _vertex(sizes, mean_loss)
            if v is not None and v[1] > 0:
                n_opt = float(np.exp(v[0]))
                point = FrontierPoint(compute, float(v[1]), n_opt, compute / (6 * n_opt),
                                      "vertex", [int(i) for i in g], best, edge)
        if point is None:
            point = FrontierPoint(
                float(table.compute[best]) if len(g) == 1 else compute,
                float(np.min(mean_loss)), float(table.params[best]), float(table.tokens[best]),
                "single" if len(g) == 1 else "min", [int(i) for i in g], best, edge,
            )
        points.append(point)
    points.sort(key=lambda p: p.compute)
    if pareto:
        kept, best_loss = [], math.inf
        for p in points:
            if p.loss < best_loss:
                kept.append(p)
                best_loss = p.loss
        points = kept
    return points
