"""Readers that turn the logs other tools write into curves, and curves into a run table.

Every reader yields Curve(run, metric, steps, values, tokens). Formats, detected from content (`--format auto`):
runs (JSONL/CSV run tables), hf_trainer (trainer_state.json), lightning (CSVLogger metrics.csv, with
hparams.yaml beside it), wandb (the chart "Export CSV"), wandb_runs (the runs-table "Export CSV": one row per
run, config and summary columns), tensorboard (event files, through the `tensorboard`
package), llmc, nanogpt, modded_nanogpt and megatron stdout logs, and `pattern` (a regex with named groups
`step` and `value`, optionally `tokens` and `run`).

Params and tokens come, most specific first, from a run-meta file (one row per run or glob), from --params and
--tokens-per-step, or from the log itself (`run_meta_from`): hparams.yaml, config.json beside a trainer_state.json,
config columns of a W&B runs table, consumed tokens of Megatron; where only the shape is given, params are
Kaplan et al.'s non-embedding 12 * n_layer * d_model^2. A trainer_state.json's total_flos (the Trainer's own
6 * N * D estimate) is used as the run's compute where params or tokens are unknown.

From curves to runs: by default only the final value of each run's curve (or the mean of its last k points)
enters a fit: the middle of a cosine run is not the end of a shorter run (method.md section 4).
`intermediate=True` keeps every point as its own row, for fitting loss against tokens within one run, with that
caveat.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, read_input_bytes
from ..runs import RunTable, load_runs

SPIKE_FACTOR = 1.3  # a point this far above the running minimum (after the first 10% of steps) is a spike


@dataclass
class Curve:
    run: str
    metric: str
    steps: list
    values: list
    tokens: list | None = None
    source: str = ""
    flags: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # what the log says about the run: params, tokens_per_step, compute

    def clean(self) -> "Curve":
        """Sort by step; a repeated step (a resumed run) keeps the later value; flag spikes and divergence."""
        last = {}
        for i, s in enumerate(self.steps):
            last[s] = i
        order = sorted(last.values(), key=lambda i: self.steps[i])
        self.steps = [self.steps[i] for i in order]
        self.values = [self.values[i] for i in order]
        if self.tokens:
            self.tokens = [self.tokens[i] for i in order]
        self.flags = []
        if not any(k in self.metric.lower() for k in ("loss", "ppl", "perplexity")):
            return self  # spikes are a loss notion; lr, epoch and throughput move as they please
        best = math.inf
        start = self.steps[0] + 0.1 * (self.steps[-1] - self.steps[0]) if self.steps else 0
        for s, v in zip(self.steps, self.values):
            if not math.isfinite(v):
                self.flags.append({"step": s, "kind": "diverged", "value": None})
                continue
            if s > start and v > SPIKE_FACTOR * best:
                self.flags.append({"step": s, "kind": "spike", "value": v})
            best = min(best, v)
        return self

    def summary(self) -> dict:
        finite = [v for v in self.values if math.isfinite(v)]
        return {"run": self.run, "metric": self.metric, "n_points": len(self.steps),
                "first_step": self.steps[0] if self.steps else None,
                "last_step": self.steps[-1] if self.steps else None,
                "last_value": self.values[-1] if self.values and math.isfinite(self.values[-1]) else None,
                "min_value": min(finite) if finite else None, "flags": self.flags, "source": self.source}


def _num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v


# ---- what a log says about its run ----------------------------------------------------------------------------

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
        x = _num(v)
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


def _flatten(obj, prefix="") -> dict:
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif not isinstance(obj, (list, bool)) and obj is not None:
        out[prefix[:-1]] = obj
    return out


# ---- stdout logs --------------------------------------------------------------------------------------------

TEXT_FORMATS = {
    # llm.c: "s:STEP tel:VAL" (validation) and "s:STEP trl:TRAIN lr:.. norm:.."
    "llmc": [(re.compile(r"^s:(?P<step>\d+) tel:(?P<value>\S+)"), "val_loss"),
             (re.compile(r"^s:(?P<step>\d+) trl:(?P<value>\S+)"), "train_loss")],
    # nanoGPT: "step 2000: train loss 1.7644, val loss 1.9200"
    "nanogpt": [(re.compile(r"^step (?P<step>\d+): train loss (?P<value>\S+?),"), "train_loss"),
                (re.compile(r"^step (?P<step>\d+): train loss \S+, val loss (?P<value>[-+.\deEnaif]+)"), "val_loss")],
    # modded-nanogpt: "step:5100/5100 val_loss:3.2741 train_time:..." and "step:1/5100 train_loss:16.0026 ..."
    "modded_nanogpt": [(re.compile(r"^step:(?P<step>\d+)/\d+ val_loss:(?P<value>\S+)"), "val_loss"),
                       (re.compile(r"^step:(?P<step>\d+)/\d+ train_loss:(?P<value>\S+)"), "train_loss")],
    # Megatron-LM / Megatron-DeepSpeed: " iteration      100/  500000 | consumed samples: ... | lm loss: 7.1E+00 |"
    # and " validation loss at iteration 1000 | lm loss value: 3.2E+00 | lm loss PPL: ..."
    "megatron": [(re.compile(r"iteration\s+(?P<step>\d+)/\s*\d+ \|(?:.*?consumed tokens:\s*(?P<tokens>\d+))?"
                             r".*?\| lm loss: (?P<value>[-+.\deEnaif]+)"), "train_loss"),
                 (re.compile(r"validation loss at iteration (?P<step>\d+).*?\| lm loss value: "
                             r"(?P<value>[-+.\deEnaif]+)"), "val_loss")],
    # build-nanogpt's log/log.txt: "250 val 4.1234", "250 train 4.2", "250 hella 0.2641"
    "build_nanogpt": [(re.compile(r"^(?P<step>\d+) val (?P<value>[-+.\deEnaif]+)$"), "val_loss"),
                      (re.compile(r"^(?P<step>\d+) train (?P<value>[-+.\deEnaif]+)$"), "train_loss"),
                      (re.compile(r"^(?P<step>\d+) hella (?P<value>[-+.\deEnaif]+)$"), "hellaswag_acc")],
}
# what stdout logs say about the run (first match in the file): nanoGPT's model and train.py, llm.c's table and
# build-nanogpt / llm.c's train_gpt2.py
TEXT_META = [
    (re.compile(r"number of parameters: ([\d.]+)\s*([KMB]?)", re.I), "params"),
    (re.compile(r"^\|\s*num_parameters\s*\|\s*(\d+)\s*\|", re.M), "params"),
    (re.compile(r"tokens per iteration will be: ([\d,]+)"), "tokens_per_step"),
    (re.compile(r"total desired batch size: ?([\d,]+)", re.I), "tokens_per_step"),
]
SI = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}
DEFAULT_METRIC = {"build_nanogpt": "val_loss", "llmc": "val_loss", "nanogpt": "val_loss", "modded_nanogpt": "val_loss", "megatron": "val_loss",
                  "hf_trainer": "eval_loss", "lightning": "val_loss", "tensorboard": "eval/loss", "pattern": "value"}


def _read_text(path: Path) -> str:
    raw = read_input_bytes(path, "is a folder (give the log file, or a TensorBoard run folder with event files)")
    if not raw.strip():
        raise InputError(f"{path}: empty file")
    if b"\x00" in raw[:8192]:
        raise InputError(f"{path}: binary file, not a text log (TensorBoard event files: --format tensorboard)")
    return raw.decode("utf-8", errors="replace")


def _text_curves(path, text, patterns, fmt, run=None):
    curves: dict[tuple, Curve] = {}
    for line in text.splitlines():
        for rx, metric in patterns:
            m = rx.search(line)
            if not m:
                continue
            g = m.groupdict()
            value, step = _num(g.get("value")), _num(g.get("step"))
            if value is None or step is None:
                continue
            name = g.get("run") or run or path.stem
            c = curves.setdefault((name, metric), Curve(name, metric, [], [], [], str(path)))
            c.steps.append(int(step))
            c.values.append(value)
            c.tokens.append(_num(g.get("tokens")) if g.get("tokens") else None)
    meta = {}
    for rx, key in TEXT_META:
        m = rx.search(text)
        if m and key not in meta:
            x = _num(m.group(1).replace(",", ""))
            if x:
                meta[key] = x * SI[(m.group(2) if m.lastindex > 1 else "").upper()]
                if key == "params":
                    meta["params_from"] = "the log's parameter count"
    out = []
    for c in curves.values():
        if all(t is None for t in c.tokens):
            c.tokens = None
        c.meta = meta
        out.append(c)
    return out


def _pattern(regex: str) -> re.Pattern:
    try:
        rx = re.compile(regex)
    except re.error as e:
        raise InputError(f"--pattern: not a valid regular expression ({e})") from None
    missing = {"step", "value"} - set(rx.groupindex)
    if missing:
        raise InputError(f"--pattern: needs named groups (?P<step>...) and (?P<value>...); missing "
                         f"{', '.join(sorted(missing))}")
    return rx


# ---- structured formats ------------------------------------------------------------------------------------


def _hf_trainer(path, obj):
    hist = obj.get("log_history")
    if not isinstance(hist, list):
        raise InputError(f"{path}: no log_history list (not a Hugging Face trainer_state.json)")
    flat = {}
    cfg = path.parent / "config.json"  # a checkpoint folder holds the model's config beside the state
    if cfg.exists():
        try:
            flat.update(_flatten(json.loads(cfg.read_text(errors="replace"))))
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


def _lightning(path, text):
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InputError(f"{path}: no rows")
    curves = {}
    run = path.parent.parent.name if path.parent.name.startswith("version_") else path.parent.name
    meta = run_meta_from(lightning_hparams(path))
    for i, r in enumerate(rows, 2):
        step = _num(r.get("step"))
        if step is None:
            continue
        for k, v in r.items():
            if k in ("step", "epoch") or v in (None, ""):
                continue
            x = _num(v)
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


WANDB_COL = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<suffix>__MIN|__MAX)?$")


def _wandb_chart(path, text):
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
        step = _num(row[0])
        if step is None:
            raise InputError(f"{path}, line {i}, column 'Step': {row[0]!r} is not a number")
        for j, r, mt in cols:
            if j < len(row) and row[j] != "":
                v = _num(row[j])
                if v is None:
                    raise InputError(f"{path}, line {i}, column '{header[j]}': {row[j]!r} is not a number")
                curves[(r, mt)].steps.append(int(step))
                curves[(r, mt)].values.append(v)
    return [c for c in curves.values() if c.steps]


WANDB_RUN_COLUMNS = ("State", "Notes", "User", "Tags", "Created", "Runtime", "Sweep")


def _wandb_runs(path, text):
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
        step = _num(r.get("_step")) or 0
        for k, v in r.items():
            if not k or k in ("Name", "_step", "_timestamp", "_wandb.runtime") or k in WANDB_RUN_COLUMNS:
                continue
            x = _num(v)
            if x is None or v.strip() == "":
                continue
            curves.append(Curve(name, k, [int(step)], [x], None, f"{path}, line {i}", meta=meta))
    return curves


def _tensorboard(path: Path):
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise InputError(f"{path}: reading TensorBoard files needs the tensorboard package: "
                         f"pip install 'scalepredict[tensorboard]'") from None
    files = sorted(path.rglob("*tfevents*")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no TensorBoard event files (*tfevents*) in the folder")
    curves = {}
    run_root = path if path.is_dir() else path.parent
    for f in files:
        ea = EventAccumulator(str(f), size_guidance={"scalars": 0, "tensors": 0})
        try:
            ea.Reload()
        except Exception as e:  # the reader raises its own error types on corrupt records
            raise InputError(f"{f}: not a readable TensorBoard event file ({type(e).__name__})") from None
        tags = ea.Tags()
        events = [(t, [(e.step, e.wall_time, float(e.value)) for e in ea.Scalars(t)]) for t in tags.get("scalars", [])]
        for t in tags.get("tensors", []):  # tensor summaries (T5X, TF2 summaries): keep scalar ones
            pts = []
            for e in ea.Tensors(t):
                try:
                    import numpy as _np
                    from tensorboard.util import tensor_util

                    arr = _np.asarray(tensor_util.make_ndarray(e.tensor_proto))
                except Exception:
                    break
                if arr.size != 1 or arr.dtype.kind not in "fiu":
                    break
                pts.append((e.step, e.wall_time, float(arr.reshape(()))))
            if pts:
                events.append((t, pts))
        # event files in subfolders are TensorBoard's separate runs (T5X: train/, validation/): prefix their tags
        sub = f.parent.relative_to(run_root).as_posix() if path.is_dir() else "."
        prefix = "" if sub == "." else sub + "/"
        for tag, pts in events:
            c = curves.setdefault(prefix + tag, Curve(run_root.name, prefix + tag, [], [], None, str(run_root)))
            for step, wall, v in pts:
                c.steps.append(int(step))
                c.values.append(v)
                c.tokens = None
    # restarts: files are read in name (= start time) order, so a later file's repeat of a step wins in clean()
    return list(curves.values())


# ---- detection and dispatch --------------------------------------------------------------------------------

FORMATS = ("auto", "runs", "hf_trainer", "lightning", "wandb", "wandb_runs", "tensorboard", "llmc", "nanogpt",
           "modded_nanogpt", "megatron", "build_nanogpt", "pattern")


def detect(path: Path, text: str | None) -> str:
    if path.is_dir() or "tfevents" in path.name:
        return "tensorboard"
    head = text[:20000]
    stripped = head.lstrip()
    if '"log_history"' in head:
        return "hf_trainer"
    if stripped.startswith(("{", "[")):
        return "runs"
    first = head.split("\n", 1)[0]
    if first.startswith('"Step"') or first.startswith("Step,"):
        return "wandb"
    header = [h.strip().strip('"') for h in first.split(",")]
    if "Name" in header and sum(h in WANDB_RUN_COLUMNS for h in header) >= 2:
        return "wandb_runs"
    # stdout logs: the format whose patterns match the most lines (the whole file: modded-nanogpt prints its
    # own source code first)
    lines = text.splitlines()[:200_000]
    counts = {fmt: sum(1 for line in lines for rx, _ in pats if rx.search(line)) for fmt, pats in TEXT_FORMATS.items()}
    best = max(counts, key=counts.get)
    if counts[best] > 0:
        return best
    cols = [c.strip().lower() for c in first.split(",")]
    if "step" in cols and ("epoch" in cols or any("loss" in c for c in cols)) and "compute" not in cols:
        return "lightning"
    if "," in first:
        return "runs"
    raise InputError(f"{path}: unknown log format (give --format, or --pattern with (?P<step>) and (?P<value>))")


def read_curves(path, fmt: str = "auto", pattern: str | None = None) -> tuple[str, list[Curve]]:
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown --format '{fmt}' (known: {', '.join(FORMATS)})")
    if pattern:
        fmt = "pattern"
    if not path.exists():
        raise InputError(f"{path}: no such file")
    text = None if (path.is_dir() or fmt == "tensorboard" or "tfevents" in path.name) else _read_text(path)
    if fmt == "auto":
        fmt = detect(path, text)
    if fmt == "tensorboard":
        curves = _tensorboard(path)
    elif fmt == "pattern":
        curves = _text_curves(path, text, [(_pattern(pattern), "value")], fmt)
    elif fmt in TEXT_FORMATS:
        curves = _text_curves(path, text, TEXT_FORMATS[fmt], fmt)
    elif fmt == "hf_trainer":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); truncated?") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}: not a trainer_state.json object")
        curves = _hf_trainer(path, obj)
    elif fmt == "lightning":
        curves = _lightning(path, text)
    elif fmt == "wandb":
        curves = _wandb_chart(path, text)
    elif fmt == "wandb_runs":
        curves = _wandb_runs(path, text)
    else:
        return "runs", []
    curves = [c.clean() for c in curves if c.steps]
    if not curves:
        raise InputError(f"{path}: no curves found in this {fmt} log")
    return fmt, curves


def pick_metric(curves: list[Curve], fmt: str, metric: str | None, path) -> list[Curve]:
    names = sorted({c.metric for c in curves})
    if metric:
        chosen = [c for c in curves if c.metric == metric]
        if not chosen:
            raise InputError(f"{path}: no metric '{metric}' in this log (metrics: {', '.join(names)})")
        return chosen
    for cand in (DEFAULT_METRIC.get(fmt), "eval_loss", "val_loss", "eval/loss", "loss", "train_loss", "value"):
        chosen = [c for c in curves if c.metric == cand]
        if chosen:
            return chosen
    loss_like = [c for c in curves if "loss" in c.metric.lower()]
    if len({c.metric for c in loss_like}) == 1:
        return loss_like
    raise InputError(f"{path}: choose a metric with --metric (metrics: {', '.join(names)})")


META_COLUMNS = ("params", "tokens", "tokens_per_step", "compute", "budget")


def load_run_meta(path) -> list[tuple[str, dict]]:
    """A run-meta file (CSV, JSONL or a JSON array): one row per run, `run` naming it (or a glob such as
    ``gpt2-*``), with any of params, tokens, tokens_per_step, compute, budget."""
    from ..runs import _where, read_rows

    _, rows = read_rows(path)
    if not rows:
        raise InputError(f"{path}: no rows (a run-meta file has a 'run' column and any of {', '.join(META_COLUMNS)})")
    out = []
    for line, r in rows:
        unknown = sorted(str(k) for k in r if k not in META_COLUMNS and k != "run")
        if unknown:
            raise InputError(f"{_where(path, line)}: unknown column(s) {', '.join(unknown)} in the run-meta file "
                             f"(known: run, {', '.join(META_COLUMNS)})")
        run = r.get("run")
        if run is None or not str(run).strip():
            raise InputError(f"{_where(path, line, 'run')}: no run name (a name, or a glob such as 'gpt2-*')")
        m = {}
        for k in META_COLUMNS:
            v = r.get(k)
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            x = _num(v)
            if x is None or not math.isfinite(x) or x <= 0:
                raise InputError(f"{_where(path, line, k)}: {v!r} is not a positive number")
            m[k] = x
        out.append((str(run).strip(), m))
    return out


def _meta_for(run: str, run_meta) -> dict:
    """The run-meta row for `run`: an exact name first, else the first glob that matches."""
    from fnmatch import fnmatchcase

    for name, m in run_meta or ():
        if name == run:
            return m
    for name, m in run_meta or ():
        if fnmatchcase(run, name):
            return m
    return {}


def curves_to_records(curves, params=None, tokens_per_step=None, last_k: int = 1, intermediate: bool = False,
                      run_meta=None):
    """Run-table rows from curves: the final value (mean of the last k points) per curve, or every point with
    `intermediate`. Params and tokens: run-meta row > params/tokens_per_step given > what the log says."""
    recs = []
    for c in curves:
        m = dict(c.meta)
        m.update({k: v for k, v in (("params", params), ("tokens_per_step", tokens_per_step)) if v})
        m.update(_meta_for(c.run, run_meta))
        pts = [(s, v, (c.tokens[i] if c.tokens else None)) for i, (s, v) in enumerate(zip(c.steps, c.values))
               if math.isfinite(v)]
        if not pts:
            recs.append({"run": c.run, "metric": c.metric, "status": "diverged", "source": c.source})
            continue
        chosen = pts if intermediate else [pts[-1]]
        for s, v, tok in chosen:
            last = s == pts[-1][0]
            value = v if intermediate else float(np.mean([p[1] for p in pts[-last_k:]]))
            rec = {"run": c.run, "metric": c.metric, "step": s, "loss": value, "source": c.source, "final": last}
            if tok is None and last and m.get("tokens"):
                tok = m["tokens"]
            if tok is None and m.get("tokens_per_step"):
                tok = s * m["tokens_per_step"]
            if tok:
                rec["tokens"] = tok
            if m.get("params"):
                rec["params"] = m["params"]
                if m.get("params_from") and m["params"] != params:
                    rec["params_from"] = m["params_from"]
            if "params" in rec and "tokens" in rec:
                rec["compute"], rec["derived"] = 6.0 * rec["params"] * rec["tokens"], ["compute"]
            elif last and m.get("compute"):
                rec["compute"], rec["compute_from"] = m["compute"], "the log's own FLOP count"
            if m.get("budget"):
                rec["budget"] = m["budget"]
            if m.get("state") in ("crashed", "failed", "killed"):
                rec["status"] = "failed"
            if any(f["kind"] == "diverged" for f in c.flags):
                rec["flags"] = c.flags
            recs.append(rec)
    return recs


def read_logs(inputs, fmt: str = "auto", pattern: str | None = None) -> list[tuple[Path, str, list[Curve]]]:
    """(path, format, curves) for each input; run tables come back with format "runs" and no curves."""
    return [(Path(p), *read_curves(p, fmt, pattern)) for p in inputs]


def records_from_logs(read, metric=None, params=None, tokens_per_step=None, last_k: int = 1,
                      intermediate: bool = False, run_meta=None) -> list[dict]:
    recs = []
    for path, kind, curves in read:
        if kind != "runs":
            recs += curves_to_records(pick_metric(curves, kind, metric, path), params, tokens_per_step, last_k,
                                      intermediate, run_meta)
    return recs


def load_table(inputs, fmt: str = "auto", columns: dict | None = None, intermediate: bool = False,
               metric: str | None = None, params: float | None = None, tokens_per_step: float | None = None,
               pattern: str | None = None, last_k: int = 1, run_meta=None) -> RunTable:
    """A run table from run tables and/or training logs (each log gives one row per run and metric)."""
    if isinstance(run_meta, (str, Path)):
        run_meta = load_run_meta(run_meta)
    read = read_logs(inputs, fmt, pattern)
    tables = [path for path, kind, _ in read if kind == "runs"]
    records, excluded = [], []
    if tables:
        t = load_runs(tables, columns, intermediate=intermediate)
        records, excluded = t.records, t.excluded
    for r in records_from_logs(read, metric, params, tokens_per_step, last_k, intermediate, run_meta):
        r["_where"] = r["source"]
        if r.get("status") in ("diverged", "failed"):
            excluded.append({**r, "reason": f"status {r['status']}"})
            continue
        if "compute" not in r:
            raise InputError(f"{r['source']}: run '{r['run']}' has no compute: give --params and --tokens-per-step, "
                             f"or --run-meta FILE with params and tokens (or tokens_per_step) per run")
        records.append(r)
    if not records:
        raise InputError(f"{', '.join(map(str, inputs))}: no usable runs")
    return RunTable(records, [str(p) for p in inputs], excluded)
