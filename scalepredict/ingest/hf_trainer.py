"""Hugging Face Trainer: trainer_state.json (log_history), and the all_results.json / train_results.json /
eval_results.json summaries of run_clm-style scripts, with config.json (and trainer_state.json) beside them."""

from __future__ import annotations

import json

from ..errors import InputError
from .curve import Curve
from .meta import flatten, run_meta_from


RESULT_KEYS = ("train_runtime", "eval_runtime", "train_samples", "eval_samples", "train_loss", "eval_loss")


def looks_like_results(obj) -> bool:
    """An all_results.json-style summary: one flat object of final metrics."""
    return isinstance(obj, dict) and "log_history" not in obj and sum(k in obj for k in RESULT_KEYS) >= 2


def _beside(path, name) -> dict:
    f = path.parent / name
    if not f.exists():
        return {}
    try:
        obj = json.loads(f.read_text(errors="replace"))
    except json.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _run_meta(path, state: dict) -> dict:
    """Params and compute from config.json beside `path` (a checkpoint folder holds the model's config) and a
    trainer_state.json's top-level scalars. Tokens are left out: num_input_tokens_seen is 0 unless the Trainer
    counted, and per-entry values are read with the curves."""
    flat = flatten(_beside(path, "config.json"))
    flat.update({k: v for k, v in state.items() if k != "log_history" and not isinstance(v, (dict, list))})
    meta = run_meta_from(flat)
    meta.pop("tokens", None)
    return meta


def read_trainer_state(path, obj):
    hist = obj.get("log_history")
    if not isinstance(hist, list):
        raise InputError(f"{path}: no log_history list (not a Hugging Face trainer_state.json)")
    meta = _run_meta(path, obj)
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


def read_results(path, obj):
    """all_results.json and friends: each numeric key is a one-point curve at the run's last step (global_step of
    a trainer_state.json beside it, else 0); params and compute from config.json and trainer_state.json."""
    state = _beside(path, "trainer_state.json")
    meta = _run_meta(path, state)
    step = int(state.get("global_step") or 0)
    return [Curve(path.parent.name, k, [step], [float(v)], None, str(path), meta=meta) for k, v in obj.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)]
