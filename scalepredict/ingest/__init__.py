"""Readers that turn files into a run table. Run tables (JSONL/CSV) are read by scalepredict.runs; training-log
formats plug in here."""

from __future__ import annotations

from ..errors import InputError
from ..runs import RunTable, load_runs


def load_table(inputs, fmt: str = "auto", columns: dict | None = None, intermediate: bool = False, **log_options) -> RunTable:
    """A run table from run-table files (and, through the log readers, from training logs)."""
    if fmt not in ("auto", "runs"):
        raise InputError(f"unknown --format '{fmt}' (known: auto, runs)")
    return load_runs(inputs, columns, intermediate=intermediate)
