"""The command line: one module per command group (fitting, logs, sweeps, capabilities, curves), sharing the
options in options.py; every default comes from defaults.py. Each command parses, calls the library and prints a
human table or one JSON document (--json). Bad input ends in one line on stderr naming the file, line or column at
fault, and exit status 2. Importing this package, `--help` and argument errors import no numpy."""

from __future__ import annotations

import signal
import sys

import click

from ..errors import InputError, Stopped
from . import capabilities, curves, fitting, logs, sweeps  # noqa: F401  (each registers its commands on `cli`)
from .group import cli

__all__ = ["cli", "main"]


def _terminated(signum, frame):
    raise Stopped(signum, "terminated")


def main(argv=None):
    # SIGTERM (`timeout`, a scheduler, `kill`) ends a command like Ctrl-C does: one line, no traceback, exit 143;
    # a sweep catches it itself to end its runs on a step boundary with a checkpoint
    signal.signal(signal.SIGTERM, _terminated)
    try:
        cli.main(args=argv, prog_name="scalepredict", standalone_mode=True)
    except InputError as e:  # raised outside a command's invoke (should not happen, but never a traceback)
        click.echo(f"scalepredict: error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
