"""Hugging Face Trainer: trainer_state.json (log_history), with config.json beside it where present."""

from __future__ import annotations

import json

from ..errors import InputError
from .curve import Curve
from .meta import flatten, run_meta_from


def read_trainer_state(path, obj):
    hist = obj.get("log_history")
    if not isinstance(hist, list):
        raise InputError(f"{path}: no log_history list (not a Hugging Face trainer_state.json)")
    flat = {}
    cfg = path.parent / "config.json"  # a checkpoint folder holds the model's config beside the state
    if cfg.exists():
        try:
            flat.update(flatten(json.loads(cfg.read_text(errors="replace"))))
        except json.JSONDecodeError:
            pass
    flat.update({k: v for k, v in obj.items() if k != "log_history" and not isinstance(v, (dict, list))})
    meta = run_meta_from(flat)
    meta.pop("tokens", None)  # num_input_tokens_seen is 0 unless the Trainer counted; per-entry values come below
    curves = {}
    for rec in hist:
        if not isinstance(rec, dict) or "step" not in rec:
            continue
        seen = rec.get("num_input_tokens_seen")
        for k, v in rec.items():
            if k in ("step", "epoch", "num_input_tokens_seen", "total_flos") or not isinstance(v, (int, float)) \
                    or isinstance(v, bool):
                continue
            c = curves.setdefault(k, Curve(path.parent.name, k, [], [], [], str(path), meta=meta))
            c.steps.append(int(rec["step"]))
            c.values.append(float(v))
            c.tokens.append(float(seen) if isinstance(seen, (int, float)) and seen > 0 else None)
    for c in curves.values():
        if all(t is None for t in c.tokens):
            c.tokens = None
    return list(curves.values())
