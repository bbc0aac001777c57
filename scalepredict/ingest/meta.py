"""What a log, or the user, says about a run: params, tokens per step, tokens, compute, budget."""

from __future__ import annotations

import math
import re

from ..errors import InputError
from ..runs import location, read_rows
from .curve import to_float

PARAM_KEYS = ("n_params", "num_params", "num_parameters", "n_parameters", "param_count", "params", "model_params",
              "parameters", "non_embedding_params")
TOKENS_PER_STEP_KEYS = ("tokens_per_step", "tokens_per_batch", "global_batch_tokens", "total_batch_size")
TOKEN_KEYS = ("tokens", "num_tokens", "total_tokens", "train_tokens", "tokens_seen", "consumed_tokens",
              "num_input_tokens_seen")
COMPUTE_KEYS = ("compute", "flops", "train_flops", "total_flops", "total_flos")
LAYER_KEYS = ("n_layer", "n_layers", "num_layers", "num_hidden_layers")
WIDTH_KEYS = ("n_embd", "d_model", "hidden_size", "dim", "model_dim")
BATCH_KEYS = ("global_batch_size", "batch_size", "train_batch_size", "per_device_train_batch_size")
SEQ_KEYS = ("block_size", "seq_len", "seq_length", "max_seq_len", "sequence_length", "context_length")


def run_meta_from(flat: dict) -> dict:
    """Params, tokens per step, tokens and compute from a flat key -> value map (hparams, a config, a W&B row).

    Keys match on their last component (``model.n_layer`` and ``config/n_layer`` are ``n_layer``), first hit
    wins, in the order of the key lists above. Params: an explicit count, else 12 * n_layer * d_model^2 (the
    non-embedding count of a standard block, Kaplan et al. 2020). Tokens per step: an explicit value, else
    batch size * sequence length * devices * num_nodes * accumulate_grad_batches where those are given.
    """
    last: dict[str, float] = {}
    for k, v in flat.items():
        x = to_float(v)
        if x is not None and math.isfinite(x) and x > 0:
            last.setdefault(re.split(r"[./]", str(k))[-1].strip().lower(), x)

    def first(keys):
        return next((last[k] for k in keys if k in last), None)

    meta = {}
    n = first(PARAM_KEYS)
    if n is not None and n >= 1000:
        meta["params"], meta["params_from"] = n, "the log's parameter count"
    elif first(LAYER_KEYS) and first(WIDTH_KEYS):
        layers, width = first(LAYER_KEYS), first(WIDTH_KEYS)
        meta["params"] = 12 * layers * width**2
        meta["params_from"] = f"12 * n_layer * d_model^2 = 12 * {layers:g} * {width:g}^2"
    tps = first(TOKENS_PER_STEP_KEYS)
    if tps is None and first(BATCH_KEYS) and first(SEQ_KEYS):
        tps = first(BATCH_KEYS) * first(SEQ_KEYS)
        for k in ("devices", "num_nodes", "accumulate_grad_batches", "gradient_accumulation_steps"):
            tps *= last.get(k, 1)
    if tps:
        meta["tokens_per_step"] = tps
    for name, keys in (("tokens", TOKEN_KEYS), ("compute", COMPUTE_KEYS)):
        x = first(keys)
        if x is not None:
            meta[name] = x
    return meta


def flatten(obj, prefix="") -> dict:
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif not isinstance(obj, (list, bool)) and obj is not None:
        out[prefix[:-1]] = obj
    return out


META_COLUMNS = ("params", "tokens", "tokens_per_step", "compute", "budget")


def load_run_meta(path) -> list[tuple[str, dict]]:
    """A run-meta file (CSV, JSONL or a JSON array): one row per run, `run` naming it (or a glob such as
    ``gpt2-*``), with any of params, tokens, tokens_per_step, compute, budget."""
    rows = read_rows(path).rows
    if not rows:
        raise InputError(f"{path}: no rows (a run-meta file has a 'run' column and any of {', '.join(META_COLUMNS)})")
    out = []
    for line, r in rows:
        unknown = sorted(str(k) for k in r if k not in META_COLUMNS and k != "run")
        if unknown:
            raise InputError(f"{location(path, line)}: unknown column(s) {', '.join(unknown)} in the run-meta file "
                             f"(known: run, {', '.join(META_COLUMNS)})")
        run = r.get("run")
        if run is None or not str(run).strip():
            raise InputError(f"{location(path, line, 'run')}: no run name (a name, or a glob such as 'gpt2-*')")
        m = {}
        for k in META_COLUMNS:
            v = r.get(k)
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            x = to_float(v)
            if x is None or not math.isfinite(x) or x <= 0:
                raise InputError(f"{location(path, line, k)}: {v!r} is not a positive number")
            m[k] = x
        out.append((str(run).strip(), m))
    return out


def meta_for(run: str, run_meta) -> dict:
    """The run-meta row for `run`: an exact name first, else the first glob that matches."""
    from fnmatch import fnmatchcase

    for name, m in run_meta or ():
        if name == run:
            return m
    for name, m in run_meta or ():
        if fnmatchcase(run, name):
            return m
    return {}


SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
NAME_GROUPS = ("params", "tokens", "compute", "budget", "tokens_per_step")


def compile_name_pattern(regex: str):
    """--name-pattern: a regex with named groups among params, tokens, compute, budget, tokens_per_step, searched in
    each run's name (`(?P<params>\\d+[MB])` reads 150M and 1B)."""
    try:
        rx = re.compile(regex)
    except re.error as e:
        raise InputError(f"--name-pattern: not a valid regular expression ({e})") from None
    if not set(rx.groupindex) & set(NAME_GROUPS):
        raise InputError(f"--name-pattern: needs a named group among {', '.join(NAME_GROUPS)}, e.g. "
                         f"(?P<params>\\d+[MB])")
    return rx


def size_number(text: str) -> float | None:
    """A count as run names write it: 150M, 1.4B, 7b, 300k, 2T, 1e9, 1_000_000."""
    m = re.fullmatch(r"\s*([0-9][0-9_.,]*(?:e[+-]?\d+)?)\s*([kKmMbBgGtT]?)\s*", text or "")
    if not m:
        return None
    x = to_float(m.group(1).replace("_", "").replace(",", ""))
    return None if x is None else x * SUFFIX[m.group(2).lower()]


def name_meta(run: str, rx) -> dict:
    """What a run's name says (--name-pattern): each named group that matches, as a number."""
    m = rx.search(run) if rx is not None else None
    if not m:
        return {}
    out = {}
    for k, v in m.groupdict().items():
        if k in NAME_GROUPS and v is not None:
            x = size_number(v)
            if x is None or not math.isfinite(x) or x <= 0:
                raise InputError(f"--name-pattern: run '{run}': {k} {v!r} is not a count (150M, 1.4B, 2e9)")
            out[k] = x
    if "params" in out:
        out["params_from"] = "the run's name"
    return out
