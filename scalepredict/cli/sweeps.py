"""sweep, probe, status: training a ladder of runs, calibrating its learning rate, and where a sweep stands."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from .group import cli
from .options import emit_json, jobs_value, json_option, need_torch


@cli.command()
@click.option("--config", "config", help="Sweep config: a TOML file or a packaged name (cpu-demo, gpu-ladder, "
                                         "cpu-validate).  [default: cpu-demo]")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Sweep folder (runs.jsonl, fit.json, prediction.png, report.md).  [default: sweeps/<config name>]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Require an existing sweep in --out (rerunning resumes anyway).")
@click.option("--dry-run", is_flag=True, help="Print the plan and the estimated time; train nothing.")
@click.option("--launcher", type=click.Choice(["local", "slurm", "submitit"]), default=None,
              help="local: this machine (--jobs runs at once); slurm: one SLURM job per run (the config's "
                   "[launcher] section: partition, time, CPUs, GPUs...); submitit: SLURM where sbatch is found, else "
                   "one local process per run.  [default: the config's [launcher] kind, local]")
@click.option("--keep-checkpoints", is_flag=True, help="Keep each run's state.pt after it finishes.")
@click.option("--jobs", "-j", default="auto", show_default=True, metavar="N|auto",
              help="Train N runs at once: on CPU each with cores/N threads (small models gain most), on CUDA each "
                   "on a GPU of its own; auto: one one-thread run per core (at most 8) on CPU, one run per visible "
                   "GPU on CUDA, 1 where [train] threads is set.")
def sweep(config, out, device, resume, dry_run, launcher, keep_checkpoints, jobs):
    """Train small runs at several compute budgets with one recipe, then fit, predict and plot."""
    from ..config import load_config

    cfg = load_config(config)
    jobs = jobs_value(jobs)
    out = out or Path("sweeps") / cfg.name
    need_torch("sweep")
    from ..pipeline import run_sweep

    run_sweep(cfg, out, device=device, resume=resume, dry_run=dry_run, launcher=launcher, echo=click.echo,
              keep_state=keep_checkpoints, jobs=jobs)


@cli.command()
@click.option("--config", "config", help="Sweep config: a TOML file or a packaged name.  [default: cpu-demo]")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Probe folder (resumable).  [default: sweeps/<config name>-probe]")
@click.option("--factors", default="0.25,0.5,1,2,4", show_default=True,
              help="Multiples of the rule's learning rate to train (comma-separated, at least 3).")
@click.option("--at", "at", default="0,-1", show_default=True,
              help="Budgets to probe, by position in the plan (0: the smallest, -1: the largest), comma-separated.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--jobs", default="auto", show_default=True, help="Runs at once on CPU (auto: one per core).")
def probe(config, out, factors, at, device, jobs):
    """Calibrate the recipe's learning rate: train the compute-optimal guess of the smallest and the largest
    budget at several multiples of the rule's LR and recommend [train] lr and lr_exponent."""
    from ..config import load_config

    cfg = load_config(config)
    try:
        fs = [float(f) for f in factors.split(",") if f.strip()]
    except ValueError:
        raise InputError(f"--factors: expected comma-separated numbers, got {factors!r}") from None
    try:
        positions = [int(i) for i in at.split(",") if i.strip()]
    except ValueError:
        raise InputError(f"--at: expected comma-separated budget positions (0, 1, ..., -1), got {at!r}") from None
    jobs = jobs_value(jobs)
    need_torch("probe")
    from ..train.probe import run_probe

    run_probe(cfg, out or Path("sweeps") / f"{cfg.name}-probe", fs, positions, device, jobs, click.echo)


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@json_option
def status(folder, as_json):
    """Where a sweep stands: each planned run's state (planned, queued, running, stopped, finished, diverged,
    failed), its steps, its SLURM job, the compute spent against the plan, and the loss each run in progress is
    forecast to reach."""
    from ..pipeline import status_with_forecasts
    from ..train.status import status_lines

    st = status_with_forecasts(folder)
    if as_json:
        emit_json(st, "the status")
        return
    for line in status_lines(st):
        click.echo(line)


@cli.command()
@click.option("--config", "config", required=True, help="A sweep config whose [data] source is \"hf\".")
@json_option
def prepare(config, as_json):
    """Tokenize a config's corpus once into memory-mapped token files (train.bin, val.bin) with a manifest.json;
    print where they are. A second prepare of the same inputs and tokenizer reuses them; an interrupted one resumes.
    `sweep` prepares by itself when needed."""
    from ..config import load_config

    cfg = load_config(config)
    if cfg.data.source != "hf":
        raise InputError(f"{cfg.source}: [data] source is {cfg.data.source!r}; prepare tokenizes a source = \"hf\" "
                         f"corpus (a dataset and a tokenizer)")
    from ..train.prepare import prepare as run_prepare

    prepared = run_prepare(cfg.data, echo=(lambda *a: None) if as_json else click.echo, progress=not as_json)
    m = prepared.manifest
    if as_json:
        emit_json({"folder": str(prepared.folder), "train": str(prepared.train), "val": str(prepared.val),
                   "manifest": str(prepared.folder / "manifest.json"), "tokens": m["tokens"],
                   "documents": m["documents"], "tokens_per_byte": m["tokens_per_byte"],
                   "vocab_size": m["tokenizer"]["vocab_size"]})
        return
    click.echo(f"train: {prepared.train} ({m['tokens']['train']:,} tokens)")
    click.echo(f"val:   {prepared.val} ({m['tokens']['val']:,} tokens)")
    click.echo(f"manifest: {prepared.folder / 'manifest.json'}")
