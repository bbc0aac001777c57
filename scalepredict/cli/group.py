"""The `scalepredict` command group: every command registers on `cli`; InputError becomes one line and exit 2, a
stop signal one line and exit 128 + signum."""

from __future__ import annotations

import signal
import sys

import click

from .. import __version__
from ..errors import InputError


class _Group(click.Group):
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """click's main, with every usage error (a bad option value, an unknown option, a missing argument) as one
        line and exit 2, like any other bad input, instead of click's three (usage, hint, error)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "scalepredict"
            click.echo(f"scalepredict: error: {e.format_message()} (see `{where} --help`)", err=True)
            sys.exit(2)
        except click.ClickException as e:
            click.echo(f"scalepredict: error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("scalepredict: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"scalepredict: error: {e}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            line = f"scalepredict: interrupted ({signal.Signals(signum).name})"
            if ctx.invoked_subcommand in ("sweep", "probe", "prepare"):
                line += ("; finished work is kept and runs in progress saved a checkpoint (SLURM jobs go on): rerun "
                         "the same command to resume")
            click.echo(line, err=True)
            ctx.exit(128 + signum)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="scalepredict")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx, debug):
    """Predict the final loss of a large training run from small runs.

    \b
    sweep    train a ladder of small runs with one recipe, then fit, predict and plot
    prepare  tokenize a corpus once into token files for sweeps
    probe    calibrate the recipe's learning rate (and its exponent) before a sweep
    status   where a sweep stands: runs planned, queued, running, finished, failed
    ingest   turn training logs into a run table
    fit      fit a scaling law to a run table (or logs)
    predict  predict the loss at a target compute (or N, D) with an interval
    backtest hold out the largest runs and score the extrapolation
    plot     draw the prediction figure of a fit
    report   write a review-ready markdown report
    forecast the final loss of a run still training, from its curve so far
    fit-tasks     task accuracy in two steps (task loss, then accuracy)
    fit-passrate  GPT-4's pass-rate law over a benchmark's problems
    """
    ctx.obj = {"debug": debug}
