"""What a sweep has done and what is left: finished runs read from runs.jsonl (by the one reader every run table
goes through, runs.read_rows), runs that finished but never reached it (their record.json), and a torn last line
cut off before the next record is appended."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import InputError
from ..files import SweepFolder, append_line
from ..runs import read_rows


def read_finished(runs_path: Path) -> dict[str, dict]:
    """Finished runs by id, read by the policy of every run-table reader: an unterminated last line that does not
    parse is a write in progress and is ignored; any other bad line, or a record without `run`, is an InputError
    naming the line (the sweep cannot tell which run it was, so it stops instead of training a run twice)."""
    if not runs_path.exists() or (runs_path.is_file() and runs_path.stat().st_size == 0):
        return {}
    try:
        kind, rows, _ = read_rows(runs_path)
    except InputError as e:
        if "empty file" in str(e):
            return {}
        raise
    if kind != "jsonl":
        raise InputError(f"{runs_path}: not a JSONL run table")
    done = {}
    for lineno, rec in rows:
        if not isinstance(rec.get("run"), str):
            raise InputError(f"{runs_path}, line {lineno}: a record without 'run' (the run's id); fix or remove the "
                             f"line, then rerun")
        done[rec["run"]] = rec
    return done


def drop_torn_tail(runs_path: Path) -> bool:
    """Cut an unterminated last line (a write that a crash cut short) off runs.jsonl, so that the next record does
    not land on the same line and make it unreadable. True where one was cut."""
    if not runs_path.exists():
        return False
    data = runs_path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    keep = data.rfind(b"\n") + 1
    with open(runs_path, "r+b") as f:
        f.truncate(keep)
        os.fsync(f.fileno())
    return True


def read_record(folder: SweepFolder, run_id: str) -> dict | None:
    """The record a finished run left in its folder (runs/<id>/record.json), or None where there is none, or a torn,
    foreign or malformed one (the run is then trained again)."""
    try:
        rec = json.loads(folder.run(run_id).record.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, a folder, not UTF-8, not JSON
        return None
    ok = isinstance(rec, dict) and rec.get("run") == run_id and rec.get("status") in ("ok", "diverged") and (
        rec.get("status") != "ok" or (isinstance(rec.get("loss"), (int, float)) and math.isfinite(rec["loss"])))
    return rec if ok else None


def recover_finished(specs, done: dict, folder: SweepFolder, echo=None) -> int:
    """Append to runs.jsonl (and to `done`) the planned runs that finished, writing runs/<id>/record.json, but whose
    record never reached runs.jsonl (the sweep process died first); say how many through `echo`. Returns how many."""
    n = 0
    for s in specs:
        rec = None if s.id in done else read_record(folder, s.id)
        if rec is not None:
            append_line(folder.runs, json.dumps(rec))
            done[s.id] = rec
            n += 1
    if n and echo:
        echo(f"recovered {n} finished run(s) from their folders (runs/<id>/record.json)")
    return n


def resume(folder: SweepFolder, specs, echo) -> dict[str, dict]:
    """The runs of `specs` already finished in `folder`, after a torn last line of runs.jsonl is cut off and the
    records that never reached it are recovered: what a sweep and an LR probe do before they train."""
    if drop_torn_tail(folder.runs):
        echo(f"{folder.runs}: cut off an unterminated last line (a write a crash interrupted)")
    done = read_finished(folder.runs)
    recover_finished(specs, done, folder, echo)
    return done
