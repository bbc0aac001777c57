"""Weights & Biases exports: a chart's "Export CSV" (wide) and the runs table's "Export CSV" (one row per run)."""

from __future__ import annotations

import csv
import io
import re

from ..errors import InputError
from .curve import Curve, to_float
from .meta import run_meta_from

WANDB_COL = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<suffix>__MIN|__MAX)?$")


def read_chart_export(path, text):
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    cols = []
    for j, h in enumerate(header):
        m = WANDB_COL.match(h)
        if m and not m["suffix"]:
            cols.append((j, m["run"], m["metric"]))
    curves = {(r, mt): Curve(r, mt, [], [], None, str(path)) for _, r, mt in cols}
    for i, row in enumerate(reader, 2):
        if not row:
            continue
        step = to_float(row[0])
        if step is None:
            raise InputError(f"{path}, line {i}, column 'Step': {row[0]!r} is not a number")
        for j, r, mt in cols:
            if j < len(row) and row[j] != "":
                v = to_float(row[j])
                if v is None:
                    raise InputError(f"{path}, line {i}, column '{header[j]}': {row[j]!r} is not a number")
                curves[(r, mt)].steps.append(int(step))
                curves[(r, mt)].values.append(v)
    return [c for c in curves.values() if c.steps]


WANDB_RUN_COLUMNS = ("State", "Notes", "User", "Tags", "Created", "Runtime", "Sweep")


def read_runs_export(path, text):
    """The W&B runs-table "Export CSV": one row per run ("Name", "State", ..., config columns, summary columns).
    Each numeric column becomes a one-point curve at the run's `_step` (0 where absent); the row's config
    columns give the run's params and tokens (run_meta_from)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InputError(f"{path}: no runs (only a header)")
    curves = []
    for i, r in enumerate(rows, 2):
        name = (r.get("Name") or "").strip() or f"row{i}"
        meta = run_meta_from({k: v for k, v in r.items() if k and k not in WANDB_RUN_COLUMNS})
        if (r.get("State") or "").strip():
            meta["state"] = r["State"].strip().lower()  # crashed / failed / killed runs did not reach their end
        step = to_float(r.get("_step")) or 0
        for k, v in r.items():
            if not k or k in ("Name", "_step", "_timestamp", "_wandb.runtime") or k in WANDB_RUN_COLUMNS:
                continue
            x = to_float(v)
            if x is None or v.strip() == "":
                continue
            curves.append(Curve(name, k, [int(step)], [x], None, f"{path}, line {i}", meta=meta))
    return curves
