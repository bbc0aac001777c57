"""Training scripts' stdout logs: llm.c, nanoGPT, modded-nanogpt, Megatron, build-nanogpt, and any regex."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError, read_input_bytes
from .curve import Curve, num

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


def read_text(path: Path) -> str:
    raw = read_input_bytes(path, "is a folder (give the log file, or a TensorBoard run folder with event files)")
    if not raw.strip():
        raise InputError(f"{path}: empty file")
    if b"\x00" in raw[:8192]:
        raise InputError(f"{path}: binary file, not a text log (TensorBoard event files: --format tensorboard)")
    return raw.decode("utf-8", errors="replace")


def text_curves(path, text, patterns, fmt, run=None):
    curves: dict[tuple, Curve] = {}
    for line in text.splitlines():
        for rx, metric in patterns:
            m = rx.search(line)
            if not m:
                continue
            g = m.groupdict()
            value, step = num(g.get("value")), num(g.get("step"))
            if value is None or step is None:
                continue
            name = g.get("run") or run or path.stem
            c = curves.setdefault((name, metric), Curve(name, metric, [], [], [], str(path)))
            c.steps.append(int(step))
            c.values.append(value)
            c.tokens.append(num(g.get("tokens")) if g.get("tokens") else None)
    meta = {}
    for rx, key in TEXT_META:
        m = rx.search(text)
        if m and key not in meta:
            x = num(m.group(1).replace(",", ""))
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
