"""The run table: one record per finished training run, read from JSONL or CSV and validated. Every reader of a
run table (fit, backtest, predict --at, report, a sweep resuming) goes through `read_rows`, with one policy: an
unterminated last line is a write in progress and is ignored; any other bad line is an error naming it.

A record needs `loss` and either `compute` (training FLOPs) or both `params` and `tokens`; the missing one of
the three is derived with C = 6*N*D and the record says so in `derived`. Unknown keys are kept.

Every record says how its compute was counted (`compute_convention`, see CONVENTIONS). A table is fitted in one
convention: where its records mix conventions they are converted where the data allow it (to 6ND where params and
tokens are known, to exact FLOPs where the model's shape is known), and refused with one line where they do not.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import InputError, read_input_bytes
from .files import unterminated_note, whole_lines
from .flops import Shape

NUMERIC = ("compute", "params", "tokens", "loss", "budget")
# Canonical column -> the CLI option that renames it for a foreign table.
COLUMN_OPTIONS = ("compute", "params", "tokens", "loss", "run", "budget")
BAD_STATUS = {"diverged", "failed", "error", "crashed", "nan"}
CONVENTIONS = {
    "exact": "exact training FLOPs counted from the model's shape (attention and output layer included)",
    "6nd": "6 x params x tokens",
    "reported": "training FLOPs as the table or log reported them",
}
SHAPE_KEYS = ("n_layer", "d_model", "seq_len", "vocab_size")  # enough to count exact FLOPs (flops.Shape)


@dataclass
class RunTable:
    """Validated runs. Arrays hold NaN where a value is unknown (e.g. params of a compute-only table)."""

    records: list[dict]
    sources: list[str]
    excluded: list[dict] = field(default_factory=list)  # rows left out (diverged/failed), with the reason
    warnings: list[str] = field(default_factory=list)  # what reading changed (conventions converted)

    def __post_init__(self):
        def col(name):
            return np.array([float(r[name]) if r.get(name) is not None else np.nan for r in self.records])

        self.compute, self.params, self.tokens, self.loss = (col(k) for k in ("compute", "params", "tokens", "loss"))
        self.budget = col("budget")
        self.names = [str(r.get("run", f"row{i + 1}")) for i, r in enumerate(self.records)]
        convs = {r.get("compute_convention", "reported") for r in self.records}
        self.convention = convs.pop() if len(convs) == 1 else "mixed"  # see resolve_conventions
        # a budget counts compute in its records' original convention: after a conversion it only groups runs
        self.budget_is_compute = not any("compute_converted_from" in r for r in self.records)

    def __len__(self):
        return len(self.records)

    @property
    def has_params_tokens(self) -> bool:
        return bool(np.all(np.isfinite(self.params)) and np.all(np.isfinite(self.tokens)))

    def subset(self, mask) -> "RunTable":
        idx = np.flatnonzero(mask)
        return RunTable([self.records[i] for i in idx], self.sources, self.excluded, self.warnings)


def location(path, lineno=None, column=None):
    s = str(path)
    if lineno is not None:
        s += f", line {lineno}"
    if column is not None:
        s += f", column '{column}'"
    return s


def number(value, path, lineno, column):
    if isinstance(value, bool):
        raise InputError(f"{location(path, lineno, column)}: {value!r} is not a number")
    if isinstance(value, (int, float)):
        x = float(value)
    else:
        text = str(value).strip()
        try:
            x = float(text)
        except ValueError:
            raise InputError(f"{location(path, lineno, column)}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{location(path, lineno, column)}: value {value!r} is not finite")
    return x


def _rows_jsonl(path, text):
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{location(path, lineno)}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{location(path, lineno)}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def _rows_json_array(path, text):
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{location(path, e.lineno)}: not valid JSON ({e.msg})") from None
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
            raise InputError(f"{location(path, lineno)}: {len(fields)} fields, the header has {len(header)}")
        yield lineno, {h: (v.strip() if v.strip() != "" else None) for h, v in zip(header, fields)}


def _refuse_fit_file(path, text: str) -> None:
    """A fit file (one JSON object with a format and a kind or law) given where runs are read: say so."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return
    if isinstance(obj, dict) and "format" in obj and ("kind" in obj or "law" in obj) and "loss" not in obj:
        kind = obj.get("kind") or ("average" if obj.get("law") == "auto" else "law")
        raise InputError(f"{path}: a scalepredict fit file, not runs ({kind} fit); `predict`, `plot` and `report` "
                         f"read it")


class Rows(NamedTuple):
    kind: str  # jsonl, json or csv
    rows: list  # [(line, row)]
    note: str | None = None  # what reading left out (an unterminated last line), for the table's warnings


def read_rows(path) -> Rows:
    """(kind, [(line, row)], note) for a JSONL, JSON array or CSV file, detected from content. A JSONL or CSV file is
    line by line, and a last line without its newline is left out (files.whole_lines), with a note saying so."""
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
    if stripped.startswith("["):
        return Rows("json", list(_rows_json_array(path, text)))
    if stripped.startswith("{"):
        _refuse_fit_file(path, text)
    whole, cut = whole_lines(text)
    note = unterminated_note(path, cut) if cut else None
    if stripped.startswith("{"):
        return Rows("jsonl", list(_rows_jsonl(path, whole)), note)
    return Rows("csv", list(_rows_csv(path, whole)), note)


def check_numbers(rec: dict, where: str, what: str = "") -> None:
    """The checks every run's numbers pass, whether a run table or a log gave them: loss, compute, params, tokens
    and budget finite and positive (a log's loss of 0 or -1 would reach a logarithm)."""
    for name in NUMERIC:
        v = rec.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            label = what if name == "loss" and what else name
            raise InputError(f"{where}: {label} is {v!r}; {name} must be a positive number"
                             + (" (is --metric a loss?)" if name == "loss" else ""))


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
            x = number(v, path, lineno, col)
            if x <= 0:
                raise InputError(f"{location(path, lineno, col)}: {name} must be positive, got {v}")
            rec[name] = x
        if "loss" not in rec and str(rec.get("status", "ok")).lower() in BAD_STATUS:
            rec["_where"] = location(path, lineno)
            records.append(rec)  # a diverged or failed run: kept to be reported, left out of fits
            continue
        if "loss" not in rec:
            raise InputError(f"{location(path, lineno, columns.get('loss', 'loss'))}: loss is missing")
        derived = []
        if "compute" not in rec:
            if "params" not in rec or "tokens" not in rec:
                raise InputError(f"{location(path, lineno)}: needs compute, or both params and tokens")
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
            k = derived[0]
            if not (math.isfinite(rec[k]) and rec[k] > 0):
                raise InputError(f"{location(path, lineno)}: {k} = 6ND derived from the others is {rec[k]:g}, not a "
                                 f"positive finite number (the values are too far apart to combine)")
        rec["compute_convention"] = _convention(rec, derived, path, lineno)
        if "run" in rec and rec["run"] is not None:
            rec["run"] = str(rec["run"])
        rec.setdefault("source", str(path))
        rec["_where"] = location(path, lineno)
        records.append(rec)
    return records


def _convention(rec: dict, derived: list, path, lineno) -> str:
    """How a record's compute was counted: as it says; 6nd where compute equals 6 * params * tokens (to 0.1%),
    as it does where one of the three was derived from the other two; exact where a sweep recorded its 6ND count
    beside a different exact one; else reported."""
    conv = rec.get("compute_convention")
    if conv is not None:
        if conv not in CONVENTIONS:
            raise InputError(f"{location(path, lineno, 'compute_convention')}: {conv!r} is not a compute convention "
                             f"({', '.join(CONVENTIONS)})")
        return conv
    if "params" in rec and "tokens" in rec and \
            abs(rec["compute"] / (6.0 * rec["params"] * rec["tokens"]) - 1) < 1e-3:
        return "6nd"
    if isinstance(rec.get("compute_6nd"), (int, float)) and all(k in rec for k in ("n_layer", "d_model")):
        return "exact"  # written by a sweep before records said their convention
    return "reported"


def compute_in(rec: dict, want: str, assume_alike: bool = True) -> float | None:
    """A record's compute in convention `want`, or None where the record does not say enough to know it.
    `assume_alike`: a reported count may be taken for 6ND and back (not where exact counts are in the mix)."""
    have = rec.get("compute_convention", "reported")
    if have == want:
        return float(rec["compute"])
    known = "derived" not in rec or not ({"params", "tokens"} & set(rec["derived"]))
    if {have, want} == {"reported", "6nd"} and (assume_alike or (known and rec.get("params") and rec.get("tokens"))):
        # a count that a table or log reported is taken to be 6ND (what most tools report), unless params and
        # tokens give the 6ND count itself; exact FLOPs are never assumed
        if want == "6nd" and known and rec.get("params") and rec.get("tokens"):
            return 6.0 * float(rec["params"]) * float(rec["tokens"])
        return float(rec["compute"])
    if want == "6nd":
        if isinstance(rec.get("compute_6nd"), (int, float)):
            return float(rec["compute_6nd"])
        if known and rec.get("params") and rec.get("tokens"):
            return 6.0 * float(rec["params"]) * float(rec["tokens"])
    if want == "exact" and all(isinstance(rec.get(k), (int, float)) for k in SHAPE_KEYS) and rec.get("tokens"):
        shape = Shape(int(rec["n_layer"]), int(rec["d_model"]), 1, int(rec["vocab_size"]), int(rec["seq_len"]),
                      int(rec.get("mlp_ratio", 4)))
        return shape.train_flops(float(rec["tokens"]))
    return None


def resolve_conventions(records: list[dict], want: str | None = None) -> tuple[list[dict], list[str]]:
    """Records whose compute is in one convention: `want`, else the one they share, else 6ND where every record
    can be converted to it. The original compute of a converted record is kept as compute_<convention>. Raises an
    InputError naming the first record that cannot be converted. Returns (records, warnings)."""
    if want is not None and want not in CONVENTIONS:
        raise InputError(f"--compute-convention must be one of {', '.join(CONVENTIONS)}, got {want!r}")
    counts: dict[str, int] = {}
    for r in records:
        counts[r["compute_convention"]] = counts.get(r["compute_convention"], 0) + 1
    if want is None and len(counts) <= 1:
        return records, []
    target = want or "6nd"
    alike = want is not None or "exact" not in counts  # a reported count is not taken for 6ND beside exact ones
    out = []
    for r in records:
        x = compute_in(r, target, alike)
        if x is None:
            have = r["compute_convention"]
            if want is not None:
                need = {"6nd": "params and tokens", "exact": f"the model's shape ({', '.join(SHAPE_KEYS)}) and "
                        f"tokens", "reported": "a reported count"}[target]
                raise InputError(f"{r['_where']}: compute is counted as {have} ({CONVENTIONS[have]}) and cannot be "
                                 f"converted to {target} without {need}")
            mix = ", ".join(f"{k}: {v} runs" for k, v in sorted(counts.items()))
            raise InputError(f"{r['_where']}: compute conventions are mixed ({mix}) and this run's compute "
                             f"({have}: {CONVENTIONS[have]}) cannot be converted to 6ND without params and tokens; "
                             f"give params and tokens for every run, or a table in one convention")
        new = dict(r)
        if r["compute_convention"] != target:
            new[f"compute_{r['compute_convention']}"] = r["compute"]
            new["compute"], new["compute_convention"] = x, target
            new["compute_converted_from"] = r["compute_convention"]
        out.append(new)
    n = sum("compute_converted_from" in r for r in out)
    if not n:
        return out, []
    mix = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    why = "as asked" if want else f"the conventions were mixed ({mix} runs)"
    return out, [f"compute of {n} of {len(out)} runs counted as {target} ({CONVENTIONS[target]}), {why}"]


def _final_only(records: list[dict]) -> list[dict]:
    """Keep one record per run: the one marked `final`, else the one with the largest `step`.

    Intermediate checkpoints of a cosine run are not the final losses of shorter runs (Porian et al. 2024; docs/recipe.md).
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


def load_runs(paths, columns: dict | None = None, intermediate: bool = False,
              convention: str | None = None) -> RunTable:
    """Read and validate one or more run tables (JSONL, JSON array or CSV) into one RunTable, its compute in one
    convention (`convention`, else the one its runs share; see resolve_conventions)."""
    records, excluded = [], []
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    notes = []
    for path in paths:
        _, rows, note = read_rows(path)
        notes += [note] if note else []
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
    records, warnings = resolve_conventions(records, convention)
    return RunTable(records, [str(p) for p in paths], excluded, notes + warnings)
