"""Fit files of every kind: one reader that routes a file by its `kind` (a law, the law average, a task fit, a
pass-rate fit), each kind's own from_dict checking every field, and the digests of the files a fit was made from.

A fit read back predicts exactly what the fit that wrote it predicted (tests/test_conformance.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .capability.passrate import PassRateFit
from .capability.tasks import TaskFit
from .core.ensemble import LawAverage
from .core.laws import FLOOR_NAMES
from .core.result import Fit
from .errors import InputError
from .files import read_json_object

READERS = {"law": Fit.from_dict, "average": LawAverage.from_dict, "tasks": TaskFit.from_dict,
           "passrate": PassRateFit.from_dict}
LOSS_KINDS = ("law", "average")
WHAT = {"law": "a loss fit", "average": "a loss fit (law average)", "tasks": "a task fit (fit-tasks)",
        "passrate": "a pass-rate fit (fit-passrate)"}


def kind_of(obj: dict) -> str | None:
    """The kind of fit a fit file's content holds (files written before `kind` existed: by their `law`), or None
    where it is not a fit file."""
    if not isinstance(obj, dict) or "format" not in obj:
        return None
    kind = obj.get("kind")
    if kind is None and isinstance(obj.get("law"), str):
        kind = "average" if obj["law"] == "auto" else "law"
    return kind if isinstance(kind, str) else repr(kind)


def fit_from_dict(obj: dict, source: str = "fit file", kinds=None):
    """Any fit from its file's content; `kinds` restricts the kinds accepted (e.g. LOSS_KINDS where a loss law is
    needed), with a line saying what the file is instead."""
    kind = kind_of(obj)
    if kind not in READERS:
        raise InputError(f"{source}: not a scalepredict fit file (no known 'kind': {kind!r})")
    if kinds is not None and kind not in kinds:
        raise InputError(f"{source}: {WHAT[kind]}; this command needs {' or '.join(WHAT[k] for k in kinds)}")
    return READERS[kind](obj, source)


def load_fit(path, kinds=None):
    """The fit in a fit file (fit.json, tasks.json, passrate.json), every field checked; an InputError naming the
    file and what is wrong."""
    return fit_from_dict(read_json_object(path, "a scalepredict fit file"), str(path), kinds)


def is_fit_file(path) -> bool:
    """Whether `path` is a fit file (one JSON object with a format and a kind or law) rather than runs or logs."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip()
        if not head.startswith(b"{"):
            return False
        return kind_of(read_json_object(path, "a fit file")) is not None
    except (OSError, InputError):
        return False


def file_digest(path) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"path": str(path), "sha256": h.hexdigest()}


def floor_of(path) -> float:
    """The irreducible loss of the loss fit in a fit file (`--floor-from`): its law's c or E; a law average's, its
    members' floors weighted as the average weighs them. An InputError where the fit has none."""
    fit = load_fit(path, LOSS_KINDS)
    members = [(m.weight, m.fit) for m in fit.members]
    got = [(w, float(f.values[f.law.names.index(n)])) for w, f in members for n in FLOOR_NAMES if n in f.law.names]
    total = sum(w for w, _ in got)
    if not got or not total > 0:
        raise InputError(f"{path}: this fit has no irreducible loss ({fit.formula}) to take a floor from")
    floor = sum(w * v for w, v in got) / total
    if not floor > 0:
        raise InputError(f"{path}: its floor is {floor:g} (at its bound: these runs did not pin it down), no floor "
                         f"to take")
    return floor
