"""Writing results without leaving half a file behind, and locking the folders a sweep writes to.

Every result file is written through a temporary file and an atomic rename; run records are appended with one
write() each; a sweep, a probe and each run hold an flock on their folder so that a second process cannot train or
append the same runs.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError


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


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


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
