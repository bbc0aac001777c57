"""Readers that turn the logs other tools write into curves, and curves into a run table.

Every reader yields Curve(run, metric, steps, values, tokens). Formats, detected from content (`--format auto`):
runs (JSONL/CSV run tables), hf_trainer (trainer_state.json), lightning (CSVLogger metrics.csv, with
hparams.yaml beside it), wandb (the chart "Export CSV"), tensorboard (event files, through the `tensorboard`
package), llmc, nanogpt, modded_nanogpt and megatron stdout logs, and `pattern` (a regex with named groups
`step` and `value`, optionally `tokens` and `run`).

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
}
DEFAULT_METRIC = {"llmc": "val_loss", "nanogpt": "val_loss", "modded_nanogpt": "val_loss", "megatron": "val_loss",
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
    out = []
    for c in curves.values():
        if all(t is None for t in c.tokens):
            c.tokens = None
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
    curves = {}
    for rec in hist:
        if not isinstance(rec, dict) or "step" not in rec:
            continue
        for k, v in rec.items():
            if k in ("step", "epoch") or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            c = curves.setdefault(k, Curve(path.parent.name, k, [], [], None, str(path)))
            c.steps.append(int(rec["step"]))
            c.values.append(float(v))
    return list(curves.values())


def _lightning(path, text):
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InputError(f"{path}: no rows")
    curves = {}
    run = path.parent.parent.name if path.parent.name.startswith("version_") else path.parent.name
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
            c = curves.setdefault(k, Curve(run, k, [], [], None, str(path)))
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
        for tag, pts in events:
            c = curves.setdefault(tag, Curve(run_root.name, tag, [], [], None, str(run_root)))
            for step, wall, v in pts:
                c.steps.append(int(step))
                c.values.append(v)
                c.tokens = None
    # restarts: files are read in name (= start time) order, so a later file's repeat of a step wins in clean()
    return list(curves.values())


# ---- detection and dispatch --------------------------------------------------------------------------------

FORMATS = ("auto", "runs", "hf_trainer", "lightning", "wandb", "tensorboard", "llmc", "nanogpt", "modded_nanogpt",
           "megatron", "pattern")


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


def curves_to_records(curves, params=None, tokens_per_step=None, last_k: int = 1, intermediate: bool = False):
    recs = []
    for c in curves:
        pts = [(s, v, (c.tokens[i] if c.tokens else None)) for i, (s, v) in enumerate(zip(c.steps, c.values))
               if math.isfinite(v)]
        if not pts:
            recs.append({"run": c.run, "metric": c.metric, "status": "diverged", "source": c.source})
            continue
        chosen = pts if intermediate else [pts[-1]]
        for s, v, tok in chosen:
            value = v if intermediate else float(np.mean([p[1] for p in pts[-last_k:]]))
            rec = {"run": c.run, "metric": c.metric, "step": s, "loss": value, "source": c.source,
                   "final": not intermediate or s == pts[-1][0]}
            if tok is None and tokens_per_step:
                tok = s * tokens_per_step
            if tok:
                rec["tokens"] = tok
            if params:
                rec["params"] = params
            if any(f["kind"] == "diverged" for f in c.flags):
                rec["flags"] = c.flags
            recs.append(rec)
    return recs


def load_table(inputs, fmt: str = "auto", columns: dict | None = None, intermediate: bool = False,
               metric: str | None = None, params: float | None = None, tokens_per_step: float | None = None,
               pattern: str | None = None, last_k: int = 1) -> RunTable:
    """A run table from run tables and/or training logs (each log gives one row per run and metric)."""
    tables, log_recs = [], []
    for path in inputs:
        kind, curves = read_curves(path, fmt, pattern)
        if kind == "runs":
            tables.append(Path(path))
            continue
        curves = pick_metric(curves, kind, metric, path)
        log_recs += curves_to_records(curves, params, tokens_per_step, last_k, intermediate)
    records = []
    if tables:
        records += load_runs(tables, columns, intermediate=intermediate).records
    for r in log_recs:
        if r.get("status") == "diverged":
            continue
        if "params" not in r or "tokens" not in r:
            raise InputError(f"{r['source']}: run '{r['run']}' has no compute: give --params and --tokens-per-step "
                             f"(or a run table with params and tokens)")
        r["compute"] = 6.0 * r["params"] * r["tokens"]
        r["derived"] = ["compute"]
        r["_where"] = r["source"]
        records.append(r)
    if not records:
        raise InputError(f"{', '.join(map(str, inputs))}: no usable runs")
    return RunTable(records, [str(p) for p in inputs])
