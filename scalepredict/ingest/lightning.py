"""PyTorch Lightning CSVLogger: metrics.csv (sparse rows), with hparams.yaml beside it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml

from ..errors import InputError
from .curve import Curve, to_float
from .meta import flatten, run_meta_from


def read_metrics_csv(path, text):
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InputError(f"{path}: no rows")
    curves = {}
    run = path.parent.parent.name if path.parent.name.startswith("version_") else path.parent.name
    meta = run_meta_from(lightning_hparams(path))
    for i, r in enumerate(rows, 2):
        step = to_float(r.get("step"))
        if step is None:
            continue
        for k, v in r.items():
            if k in ("step", "epoch") or v in (None, ""):
                continue
            x = to_float(v)
            if x is None:
                raise InputError(f"{path}, line {i}, column '{k}': {v!r} is not a number")
            c = curves.setdefault(k, Curve(run, k, [], [], None, str(path), meta=meta))
            c.steps.append(int(step))
            c.values.append(x)
    return list(curves.values())


class _HparamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader that reads Lightning's python-object tags (a saved dataclass or Namespace) as the plain
    mappings, lists or scalars under them, instead of refusing the file."""


def _untagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_HparamsLoader.add_multi_constructor("", _untagged)


def lightning_hparams(path: Path) -> dict:
    """Flat key -> value from hparams.yaml beside a Lightning metrics.csv (read with PyYAML, which Lightning itself
    writes it with), used to find n_params or model sizes where the log says them. An unreadable file gives
    nothing: the curves do not depend on it."""
    hp = path.parent / "hparams.yaml"
    if not hp.exists():
        return {}
    try:
        obj = yaml.load(hp.read_text(errors="replace"), Loader=_HparamsLoader)
    except yaml.YAMLError:
        return {}
    return flatten(obj) if isinstance(obj, dict) else {}
