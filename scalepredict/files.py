"""Files: writing results without leaving half a file behind, reading back the JSON the tool wrote (naming the file
and field at fault), locking the folders a sweep writes to, and the layout of a sweep folder, named once.

Every result file is written through a temporary file and an atomic rename; run records are appended with one
write() each; a sweep, a probe and each run hold an flock on their folder so that a second process cannot train or
append the same runs.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError


# ---- the layout of a sweep folder --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: its per-step log, its checkpoint, and the record it leaves when it finishes."""

    path: Path

    @property
    def log(self) -> Path:  # one JSON object per logged step (train loss, lr, tokens, throughput; the val loss)
        return self.path / "log.jsonl"

    @property
    def state(self) -> Path:  # the checkpoint to resume from; removed when the run finishes
        return self.path / "state.pt"

    @property
    def record(self) -> Path:  # the finished run's record, written before it is appended to runs.jsonl
        return self.path / "record.json"

    @property
    def stdout(self) -> Path:  # an external trainer's own output (its stdout and stderr)
        return self.path / "train.log"


@dataclass(frozen=True)
class SweepFolder:
    """Every path inside a sweep (or LR probe) folder. `marker` is the file that says whose folder it is."""

    path: Path
    marker: str = "sweep.json"

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def meta(self) -> Path:  # sweep.json (probe.json): config, data fingerprint, versions, plan
        return self.path / self.marker

    @property
    def runs(self) -> Path:  # one record per finished run
        return self.path / "runs.jsonl"

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    def run(self, run_id: str) -> RunFolder:
        return RunFolder(self.runs_dir / run_id)

    @property
    def slurm(self) -> Path:  # submitit's job folders and logs
        return self.path / "slurm"

    @property
    def jobs(self) -> Path:  # every SLURM job submitted, one line each
        return self.slurm / "jobs.jsonl"

    fit = property(lambda self: self.path / "fit.json")
    fit_chinchilla = property(lambda self: self.path / "fit-chinchilla.json")
    predictions = property(lambda self: self.path / "predictions.json")
    prediction_png = property(lambda self: self.path / "prediction.png")
    backtest = property(lambda self: self.path / "backtest.json")
    report = property(lambda self: self.path / "report.md")


# ---- reading ----------------------------------------------------------------------------------------------------


def whole_lines(text: str) -> tuple[str, str | None]:
    """The one rule for a file that a running process appends to (a training log, runs.jsonl, a CSV run table,
    Lightning's metrics.csv): a last line without its newline is a write in progress, or a file cut off mid-line,
    and its last number may be cut short (a loss of 2.3 read from 2.31...). It is left out. Returns the text without
    it, and the line left out (None where the text ends with a newline). Files written whole (JSON documents, W&B's
    CSV exports, Parquet) are read whole."""
    if not text or text.endswith(("\n", "\r")):
        return text, None
    cut = max(text.rfind("\n"), text.rfind("\r")) + 1
    line = text[cut:]
    return (text[:cut], line) if line.strip() else (text, None)


def unterminated_note(path, line: str) -> str:
    """The warning for a last line left out by whole_lines."""
    shown = line.strip()
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return (f"{path}: its last line ({shown!r}) has no newline at its end: a write in progress or a file cut off, "
            f"so it is left out (end the file with a newline to keep it)")


def read_json_object(path, what: str) -> dict:
    """A JSON object from `path` (a fit file, sweep.json, a record), or an InputError naming the file and what is
    wrong with it: missing, a folder, unreadable, not UTF-8, not JSON (with the line), not an object."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected {what}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}); expected {what}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); expected {what}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected {what} (a JSON object), got a JSON {type(obj).__name__}")
    return obj


def field(obj: dict, key: str, kind, where: str, optional: bool = False, default=None):
    """obj[key] checked to be of `kind` (a type or a tuple of types; numbers must be finite), or an InputError
    naming `where` and the field. Missing and `optional`: `default`."""
    if key not in obj or obj[key] is None:
        if optional:
            return default
        raise InputError(f"{where}: field '{key}' is missing")
    v = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if isinstance(v, bool) and bool not in kinds or not isinstance(v, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise InputError(f"{where}: field '{key}' should be {names}, got {type(v).__name__} {str(v)[:40]!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(f"{where}: field '{key}' is not finite ({v})")
    return v


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and an atomic rename.

    A crash or a full disk leaves either the old file or the new one, never a truncated mix.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: cannot write, folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise InputError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def non_finite(obj, where: str = "") -> str | None:
    """The path (`predictions[0].upper`) of the first number in `obj` that is NaN or infinite, else None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where or "the value")
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad = non_finite(v, f"{where}.{k}" if where else str(k))
            if bad:
                return bad
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad = non_finite(v, f"{where}[{i}]")
            if bad:
                return bad
    return None


def dumps_json(obj, what: str = "the result", indent: int | None = 2) -> str:
    """JSON text of `obj`, refusing NaN and infinity (JSON has neither; a reader would choke or read a wrong number)
    with an InputError that names the quantity."""
    bad = non_finite(obj)
    if bad:
        raise InputError(f"{what}: {bad} is not a finite number; nothing was written (a fit that cannot say this "
                         f"number says why in its warnings: rerun with --json to see them)")
    return json.dumps(obj, indent=indent, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, dumps_json(obj, str(path)) + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line with a single write() followed by fsync, so a crash never leaves half a line
    that a reader would mistake for a record (readers also ignore an unterminated last line)."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


LOCK_NAME = ".lock"


def _holder(fd: int) -> str:
    """What the lock file says of its holder (its pid, host and start)."""
    return os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()


def lock_holder(folder: Path) -> str | None:
    """The process holding FOLDER's lock (see folder_lock), or None where nobody holds it or it cannot be told."""
    path = Path(folder) / LOCK_NAME
    if not path.exists():
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd) or "a process"
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def folder_lock(folder: Path, warn=None):
    """Hold an exclusive lock on FOLDER/.lock while the work inside writes to FOLDER: a second scalepredict process
    that would write there gets an InputError naming the holder (two sweeps would train every pending run twice, two
    processes in one run folder, and append each record twice). The kernel releases the lock when its
    holder exits however it exits (kill -9 too), so no lock is ever stale. Where the filesystem cannot lock (some
    network filesystems) or on a platform without flock, `warn` is told and the work goes on unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd) or "a process that is starting"
            raise InputError(f"{folder}: another scalepredict process is working in this folder ({holder}); wait for "
                             f"it to finish or stop it (Ctrl-C or kill: its runs keep a checkpoint), then rerun")
        except OSError as e:
            if warn:
                warn(f"warning: {folder}: cannot lock the folder ({e.strerror}); do not run two scalepredict "
                     f"processes on it at once")
        else:
            os.ftruncate(fd, 0)
            holder = f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
            os.pwrite(fd, (holder + "\n").encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def output_folder(folder: Path, marker: str, what: str, warn=None, resume: bool = False):
    """The folder a sweep or probe (`what`) writes, made if missing and locked (folder_lock) while the work inside
    runs. Refused with an InputError before anything is written where `folder` is a file, or holds files but not
    `marker` (sweep.json, probe.json: it is not ours), or, with `resume`, has no `marker` yet."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file; --out names the folder of the {what}")
    if not (folder / marker).exists():
        if resume:
            raise InputError(f"{folder}: --resume, but there is no {what} there (no {marker})")
        if folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir()):
            raise InputError(f"{folder}: folder exists and is not a scalepredict {what}; choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder, warn):
        yield
