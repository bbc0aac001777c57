"""scalepredict's own per-run log (a sweep's runs/<id>/log.jsonl): one JSON object per logged step with the train
loss, the LR, tokens and throughput, and the validation loss where the run evaluated ([train] eval_interval, and at
its end). The run is named after its folder."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from .curve import Curve

KEYS = {"step", "tokens"}


def is_sweep_log(head: str) -> bool:
    first = head.lstrip().split("\n", 1)[0]
    if not first.startswith("{"):
        return False
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and KEYS <= set(row) and ("train_loss" in row or "val_loss" in row)


def read_sweep_log(path: Path, text: str, pattern=None) -> list[Curve]:
    curves: dict[str, Curve] = {}
    run = Path(path).parent.name or Path(path).stem
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path}, line {n}: not valid JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row.get("step"), bool):
            raise InputError(f"{path}, line {n}: expected an object with a whole-number step")
        tokens = row.get("tokens") if isinstance(row.get("tokens"), (int, float)) else None
        for key in ("train_loss", "val_loss", "lr"):
            v = row.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                c = curves.setdefault(key, Curve(run, key, [], [], [], str(path)))
                c.steps.append(row["step"])
                c.values.append(float(v))
                c.tokens.append(tokens)
    return list(curves.values())
