"""Training scripts' stdout logs: llm.c, nanoGPT, modded-nanogpt, Megatron-LM / Megatron-DeepSpeed, torchtitan,
build-nanogpt, and any regex. Lines are read after their launcher's prefix is taken off (a rank such as "0: " or
"[rank0]: ", a timestamp and level such as "[titan] 2025-01-01 12:00:00,000 - root - INFO - ") and their terminal
colours are removed. A log that holds several runs one after another (a job script's output, concatenated files)
gives one run per segment: a new segment starts where the step count goes back to the start."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError, read_input_bytes
from .curve import Curve, to_float

TEXT_FORMATS = {
    # llm.c: "s:STEP tel:VAL" (validation) and "s:STEP trl:TRAIN lr:.. norm:.."
    "llmc": [(re.compile(r"^s:(?P<step>\d+) tel:(?P<value>\S+)"), "val_loss"),
             (re.compile(r"^s:(?P<step>\d+) trl:(?P<value>\S+)"), "train_loss"),
             (re.compile(r"^s:(?P<step>\d+) trl:\S+ lr:(?P<value>\S+)"), "lr")],
    # nanoGPT: "step 2000: train loss 1.7644, val loss 1.9200"
    "nanogpt": [(re.compile(r"^step (?P<step>\d+): train loss (?P<value>\S+?),"), "train_loss"),
                (re.compile(r"^step (?P<step>\d+): train loss \S+, val loss (?P<value>[-+.\deEnaif]+)"), "val_loss")],
    # modded-nanogpt: "step:5100/5100 val_loss:3.2741 train_time:..." and "step:1/5100 train_loss:16.0026 ..."
    "modded_nanogpt": [(re.compile(r"^step:(?P<step>\d+)/\d+ val_loss:(?P<value>\S+)"), "val_loss"),
                       (re.compile(r"^step:(?P<step>\d+)/\d+ train_loss:(?P<value>\S+)"), "train_loss")],
    # Megatron-LM / Megatron-DeepSpeed: " iteration      100/  500000 | consumed samples: ... | lm loss: 7.1E+00 |",
    # " validation loss at iteration 1000 | lm loss value: 3.2E+00 | lm loss PPL: ..." (Megatron-LM; newer ones add
    # "on validation set") and " valid loss at iteration 3500 | lm loss value: 8.283220E+00" (Megatron-DeepSpeed)
    "megatron": [(re.compile(r"iteration\s+(?P<step>\d+)/\s*\d+ \|(?:.*?consumed tokens:\s*(?P<tokens>\d+))?"
                             r".*?\| lm loss: (?P<value>[-+.\deEnaif]+)"), "train_loss"),
                 (re.compile(r"valid(?:ation)? loss at iteration (?P<step>\d+)[^|]*\|(?:.*?consumed tokens:\s*"
                             r"(?P<tokens>\d+))?.*?lm loss value: (?P<value>[-+.\deEnaif]+)"), "val_loss"),
                 (re.compile(r"iteration\s+(?P<step>\d+)/\s*\d+ \|.*?learning rate: (?P<value>[-+.\deE]+)"), "lr")],
    # torchtitan: "step: 10  loss:  7.1234  grad_norm: ...  memory: ...  tps: 12,345  tflops: ...  mfu: 4.56%" and
    # its validator's "validate step: 100  loss: 3.2100 ..."
    "torchtitan": [(re.compile(r"(?<!validate )\bstep:\s*(?P<step>\d+)\s+loss:\s*(?P<value>[-+.\deEnaif]+)\s+"
                               r"(?:grad_norm|memory|step_time|tps)"), "train_loss"),
                   (re.compile(r"validat(?:e|ion) step:\s*(?P<step>\d+)\s+loss:\s*(?P<value>[-+.\deEnaif]+)"),
                    "val_loss"),
                   (re.compile(r"(?<!validate )\bstep:\s*(?P<step>\d+)\s+loss:.*?\btps:\s*(?P<value>[\d,]+)"),
                    "tokens_per_second")],
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


def read_text(path: Path) -> str:
    raw = read_input_bytes(path, "is a folder (give the log file, or a TensorBoard run folder with event files)")
    if not raw.strip():
        raise InputError(f"{path}: empty file")
    if b"\x00" in raw[:8192]:
        raise InputError(f"{path}: binary file, not a text log (TensorBoard event files: --format tensorboard)")
    return raw.decode("utf-8", errors="replace")


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# what launchers put before a line: a rank ("0: ", "[rank0]: ", "[1,0]<stdout>:"), torchtitan's "[titan] <time> -
# root - INFO - "
PREFIX = re.compile(r"^(?:\s*\d+:\s|\s*\[rank\d+\]:\s?|\s*\[\d+,\d+\]<std(?:out|err)>:)?"
                    r"(?:\[titan\]\s+)?(?:\d{4}-\d\d-\d\d[ T][\d:,.]+\s+-\s+\S+\s+-\s+[A-Z]+\s+-\s+)?")


def clean_line(line: str) -> str:
    """A log line without its terminal colours and its launcher's prefix (rank, timestamp and level)."""
    if "\x1b" in line:
        line = ANSI.sub("", line)
    return PREFIX.sub("", line, count=1)


def _num(text):
    return to_float(text.replace(",", "")) if text else None


def text_curves(path, text, patterns, fmt, run=None):
    curves: dict[tuple, Curve] = {}
    segment, first_step, last_step = 0, None, {}
    for line in text.splitlines():
        line = clean_line(line)
        for rx, metric in patterns:
            m = rx.search(line)
            if not m:
                continue
            g = m.groupdict()
            value, step = _num(g.get("value")), to_float(g.get("step"))
            if value is None or step is None:
                continue
            step = int(step)
            if first_step is None:
                first_step = step
            # several runs one after another: the step count of a metric goes back to where the log started
            # (a resumed run goes back only to its last checkpoint, and stays one run)
            if metric in last_step and step <= first_step < last_step[metric]:
                segment += 1
                last_step = {}
            last_step[metric] = step
            name = g.get("run") or run or run_name(path)
            if segment:
                name = f"{name}#{segment + 1}"
            c = curves.setdefault((name, metric), Curve(name, metric, [], [], [], str(path)))
            c.steps.append(step)
            c.values.append(value)
            c.tokens.append(to_float(g.get("tokens")) if g.get("tokens") else None)
    meta = {}
    for rx, key in TEXT_META:
        m = rx.search(text)
        if m and key not in meta:
            x = to_float(m.group(1).replace(",", ""))
            if x:
                meta[key] = x * SI[(m.group(2) if m.lastindex > 1 else "").upper()]
                if key == "params":
                    meta["params_from"] = "the log's parameter count"
    # a step's tokens, where one line of it says them (Megatron's train line), count for every metric at that step
    # (its validation line)
    known: dict[tuple, float] = {}
    for (name, _), c in curves.items():
        known.update({(name, s): t for s, t in zip(c.steps, c.tokens) if t is not None})
    out = []
    for (name, _), c in curves.items():
        c.tokens = [t if t is not None else known.get((name, s)) for s, t in zip(c.steps, c.tokens)]
        if all(t is None for t in c.tokens):
            c.tokens = None
        c.meta = meta
        out.append(c)
    return out


GENERIC = {"train", "training", "log", "logs", "stdout", "stderr", "output", "out", "main", "run", "console"}


def run_name(path: Path) -> str:
    """A run's name from its log's path: the file's stem, or its folder's name where the stem says nothing of the
    run (runs/b3-L2d64-s0/train.log is run b3-L2d64-s0)."""
    path = Path(path)
    if path.stem.lower() in GENERIC and path.parent.name:
        return path.parent.name
    return path.stem


def compile_pattern(regex: str) -> re.Pattern:
    try:
        rx = re.compile(regex)
    except re.error as e:
        raise InputError(f"--pattern: not a valid regular expression ({e})") from None
    missing = {"step", "value"} - set(rx.groupindex)
    if missing:
        raise InputError(f"--pattern: needs named groups (?P<step>...) and (?P<value>...); missing "
                         f"{', '.join(sorted(missing))}")
    return rx
