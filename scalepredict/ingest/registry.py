"""The log formats: each reader with how its files are detected and which curve a fit uses by default (the
registry), and reading inputs into curves (`read_curves`, `read_logs`). Formats are detected from content
(`--format auto`); the readers themselves are the other modules of this package."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import defaults
from ..errors import InputError
from ..files import unterminated_note, whole_lines
from .curve import Curve
from .hf_trainer import looks_like_results, read_results, read_trainer_state
from .history import is_history, read_history
from .lightning import read_metrics_csv
from .mlflow_store import is_store, read_store
from .sweeplog import is_sweep_log, read_sweep_log
from .stdout import TEXT_FORMATS, clean_line, compile_pattern, read_text, text_curves
from .tensorboard import read_event_files
from .wandb import WANDB_RUN_COLUMNS, read_chart_export, read_runs_export
from .wandb_run import is_run, read_run

# ---- the registry: every format, how it is detected, its default metric and its reader ----------------------


@dataclass(frozen=True)
class Reader:
    """One log format: `detect(path, text)` says whether a file is one (None: only with --format), `read(path, text,
    pattern)` returns its curves, `metric` is the curve a fit uses by default. `text`: whether the reader takes the
    file's text (False: it reads the path itself, as a folder of event files). Its description is
    defaults.LOG_FORMATS[name], which the command line shows without importing the readers."""

    name: str
    read: Callable
    metric: str | None = None
    detect: Callable | None = None
    text: bool = True

    @property
    def doc(self) -> str:
        return defaults.LOG_FORMATS[self.name]


def _json(path, text, kind):
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); truncated?") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: not a Hugging Face {kind} JSON object")
    return obj


def _first_line(text):
    return (text or "")[:20000].split("\n", 1)[0]


def _head(text):
    return (text or "")[:20000]


def _is_results(path, text):
    if not _head(text).lstrip().startswith("{") or '"log_history"' in _head(text):
        return False
    try:
        return looks_like_results(json.loads(text))
    except json.JSONDecodeError:
        return False


def _is_wandb_runs(path, text):
    header = [h.strip().strip('"') for h in _first_line(text).split(",")]
    return "Name" in header and sum(h in WANDB_RUN_COLUMNS for h in header) >= 2


def _is_lightning(path, text):
    cols = [c.strip().lower() for c in _first_line(text).split(",")]
    return "step" in cols and ("epoch" in cols or any("loss" in c for c in cols)) and "compute" not in cols


def _text_reader(fmt):
    return lambda path, text, pattern: text_curves(path, text, TEXT_FORMATS[fmt], fmt)


# in detection order: the first whose detect() says yes wins; the stdout formats are told apart by which matches
# the most lines (best_text_format)
READERS = [
    Reader("wandb_run", read_run, None, lambda path, text: is_run(path), text=False),
    Reader("mlflow", read_store, None, lambda path, text: is_store(path), text=False),
    Reader("tensorboard", lambda path, text, pattern: read_event_files(path), "eval/loss",
           lambda path, text: path.is_dir() or "tfevents" in path.name, text=False),
    Reader("wandb_history", read_history, None, lambda path, text: is_history(path, _head(text)), text=False),
    Reader("hf_trainer", lambda path, text, pattern: read_trainer_state(path, _json(path, text, "trainer_state")),
           "eval_loss", lambda path, text: '"log_history"' in _head(text)),
    Reader("hf_results", lambda path, text, pattern: read_results(path, _json(path, text, "results")), "eval_loss",
           _is_results),
    Reader("sweep_log", read_sweep_log, "val_loss", lambda path, text: is_sweep_log(_head(text))),
    Reader("runs", lambda path, text, pattern: [], None,
           lambda path, text: re.match(r"\s*(\{|\[\s*(\{|\]))", _head(text)) is not None),
    Reader("wandb", lambda path, text, pattern: read_chart_export(path, text), None,
           lambda path, text: _first_line(text).startswith(('"Step"', "Step,"))),
    Reader("wandb_runs", lambda path, text, pattern: read_runs_export(path, text), None, _is_wandb_runs),
    *[Reader(fmt, _text_reader(fmt), "val_loss", lambda path, text, fmt=fmt: best_text_format(text) == fmt)
      for fmt in TEXT_FORMATS],
    Reader("lightning", lambda path, text, pattern: read_metrics_csv(path, text), "val_loss", _is_lightning),
    Reader("pattern", lambda path, text, pattern: text_curves(path, text, [(compile_pattern(pattern), "value")],
                                                              "pattern"), "value"),
]
BY_NAME = {r.name: r for r in READERS}
# the formats a running process appends to, line by line: an unterminated last line is left out (files.whole_lines);
# the others (JSON documents, W&B's CSV exports, event files) are written whole
APPENDED = {"sweep_log", "llmc", "nanogpt", "modded_nanogpt", "megatron", "torchtitan", "build_nanogpt", "lightning", "pattern"}
FORMATS = ("auto", *BY_NAME)
DEFAULT_METRIC = {r.name: r.metric for r in READERS if r.metric}


@functools.lru_cache(maxsize=4)
def best_text_format(text: str) -> str | None:
    """The stdout format whose patterns match the most lines of the file (the whole file: modded-nanogpt prints its
    own source code first), or None where none matches."""
    lines = [clean_line(line) for line in text.splitlines()[:200_000]]
    counts = {fmt: sum(1 for line in lines for rx, _ in pats if rx.search(line)) for fmt, pats in TEXT_FORMATS.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def detect(path: Path, text: str | None) -> str:
    """The format of a text log (the formats read from the path itself were tried first: _detect_streamed)."""
    for r in READERS:
        if r.text and r.detect is not None and r.detect(path, text):
            return r.name
    if "," in _first_line(text):
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
    text = None
    if fmt == "auto":
        head = None if path.is_dir() else read_head(path)
        fmt = _detect_streamed(path, head)
        if fmt is None:  # the formats that are told apart by their whole text
            text = read_text(path)
            fmt = detect(path, text)
    if fmt == "runs":
        return "runs", []
    reader = BY_NAME[fmt]
    if reader.text and text is None:
        text = read_text(path)
    cut = None
    if fmt in APPENDED:
        text, cut = whole_lines(text)
    curves = reader.read(path, text, pattern)
    curves = [c.clean() for c in curves if c.steps]
    if cut:
        for c in curves:
            c.meta = {**c.meta, "note": unterminated_note(path, cut)}
    if not curves:
        raise InputError(f"{path}: no curves found in this {fmt} log")
    return fmt, curves


def read_head(path: Path, size: int = 65536) -> str:
    """The first `size` bytes of a file as text (for detection), or an InputError (missing, empty, a folder)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(size)
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder (give the log file, or a TensorBoard run folder)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if not raw.strip():
        raise InputError(f"{path}: empty file")
    return raw.decode("utf-8", errors="replace")


def _detect_streamed(path: Path, head: str | None) -> str | None:
    """The formats read from the path itself (event files, W&B histories), told from the first bytes."""
    for r in READERS:
        if not r.text and r.detect is not None and r.detect(path, head):
            return r.name
    return None


def expand(inputs) -> list[Path]:
    """The inputs, with a folder that is not a TensorBoard run (no event files in it) replaced by the files in it,
    sorted (a folder of per-run logs or history dumps); hidden files are skipped."""
    out = []
    for p in map(Path, inputs):
        if p.is_dir() and not any(p.rglob("*tfevents*")) and not is_store(p) and not is_run(p):
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            if not files:
                raise InputError(f"{p}: an empty folder")
            out += files
        else:
            out.append(p)
    return out


def read_logs(inputs, fmt: str = "auto", pattern: str | None = None) -> list[tuple[Path, str, list[Curve]]]:
    """(path, format, curves) for each input; run tables come back with format "runs" and no curves."""
    return [(p, *read_curves(p, fmt, pattern)) for p in expand(inputs)]


