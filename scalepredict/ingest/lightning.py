"""PyTorch Lightning CSVLogger: metrics.csv (sparse rows), with hparams.yaml beside it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import InputError
from .curve import Curve, num
from .meta import run_meta_from


def read_metrics_csv(path, text):
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InputError(f"{path}: no rows")
    curves = {}
    run = path.parent.parent.name if path.parent.name.startswith("version_") else path.parent.name
    meta = run_meta_from(lightning_hparams(path))
    for i, r in enumerate(rows, 2):
        step = num(r.get("step"))
        if step is None:
            continue
        for k, v in r.items():
            if k in ("step", "epoch") or v in (None, ""):
                continue
            x = num(v)
            if x is None:
                raise InputError(f"{path}, line {i}, column '{k}': {v!r} is not a number")
            c = curves.setdefault(k, Curve(run, k, [], [], None, str(path), meta=meta))
            c.steps.append(int(step))
            c.values.append(x)
    return list(curves.values())


def lightning_hparams(path: Path) -> dict:
    """Flat key -> value from hparams.yaml beside a Lightning metrics.csv (a small YAML subset: nested maps of
    scalars), used to find n_params or model sizes where the log says them."""
    hp = path.parent / "hparams.yaml"
    out = {}
    if not hp.exists():
        return out
    stack = []
    for line in hp.read_text(errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        indent = len(line) - len(line.lstrip())
        key, _, val = line.strip().partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if val.strip():
            out[".".join([s[1] for s in stack] + [key])] = val.strip()
        else:
            stack.append((indent, key))
    return out
