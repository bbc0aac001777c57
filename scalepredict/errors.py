"""The errors users see: bad input (one line, exit 2) and a stop signal (exit 128 + signum)."""

from __future__ import annotations

import signal
from pathlib import Path


class InputError(Exception):
    """Bad input from the user (a file, a column, an option). The CLI prints it as one line and exits 2.

    The message names the file, and the line or column at fault where there is one.
    """


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM) ended the work; a sweep's runs in progress saved their checkpoints at a step
    boundary, so rerunning the command resumes. The CLI exits with 128 + signum (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "interrupted"):
        super().__init__(message)
        self.signum = int(signum)

    def __reduce__(self):  # crosses the process boundary from a --jobs worker intact
        return type(self), (self.signum, str(self))


def read_input_bytes(path, folder_message: str = "is a folder, expected a file") -> bytes:
    """A user's input file as bytes, or an InputError naming the file (missing, a folder, unreadable)."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: {folder_message}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
