"""Launching a sweep's runs, behind one interface: `train_specs` trains the pending runs through the launcher the
sweep asks for (in turn in this process, a pool of worker processes, submitit's local jobs, or SLURM jobs) and
hands every finished record to one Recorder, which appends it to runs.jsonl and reports it."""

from __future__ import annotations

import shutil

from ..errors import InputError
from . import local, slurm
from .context import SweepContext
from .progress import Recorder
from .resume import read_finished
from .stopping import stop_at_step_boundary


def has_slurm() -> bool:
    """Whether this machine submits to SLURM (sbatch is on the PATH), as submitit decides."""
    return shutil.which("sbatch") is not None


def on_slurm(launcher: str) -> bool:
    """Whether `launcher` trains the runs as SLURM jobs: slurm always, submitit where this machine has SLURM."""
    return launcher == "slurm" or (launcher == "submitit" and has_slurm())


def need_submitit(launcher: str) -> None:
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise InputError(f"--launcher {launcher} needs the submitit package: pip install 'scalepredict[slurm]'"
                         ) from None


def train_specs(todo, known, ctx: SweepContext) -> None:
    """Train `todo` and record each run as it finishes. `known`: every run of the sweep, for the progress counts.
    SIGINT or SIGTERM (Ctrl-C, `timeout`, a scheduler's pre-emption) ends every local run in progress on a step
    boundary with a checkpoint and keeps what finished (SLURM jobs go on), and raises Stopped: rerunning the command
    resumes losslessly."""
    if not todo:
        return
    slurm_jobs = on_slurm(ctx.launcher)
    record = Recorder(ctx.folder.runs, known, read_finished(ctx.folder.runs), ctx.echo,
                      always=slurm_jobs or ctx.launcher == "submitit")
    if slurm_jobs or ctx.launcher == "submitit":
        need_submitit(ctx.launcher)
    with stop_at_step_boundary():
        if slurm_jobs:  # a stop signal ends the wait; the jobs go on, and a rerun collects them
            slurm.launch(todo, ctx, record)
        elif ctx.launcher == "submitit":
            slurm.launch_local_jobs(todo, ctx, record)
        elif ctx.jobs > 1 and len(todo) > 1:
            local.train_parallel(todo, ctx, record)
        else:
            local.train_in_turn(todo, ctx, record)
