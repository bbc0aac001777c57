"""A sweep's training: plan the runs, train them (resuming where a previous attempt stopped) and add bracketing sizes
where a set's best run sits at its edge. The fit, the predictions, the figures and the report that follow are the
pipeline's (scalepredict/pipeline.py); nothing here fits. Every result is written atomically; runs.jsonl gets one
whole line per finished run.
"""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import Config
from ..errors import InputError
from ..files import SweepFolder, atomic_write_json, output_folder, read_json_object
from ..plan import bracket_next, plan
from .context import SweepContext
from .devices import auto_jobs, cluster_device, pick_device, visible_gpus
from .dryrun import print_plan, repetition_warning
from .launch import need_submitit, on_slurm, train_specs
from .resume import read_finished, recover_finished, resume as resume_runs


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def train_sweep(cfg: Config, out: Path, device: str = "auto", resume: bool = False, dry_run: bool = False,
                launcher: str | None = None, echo=print, keep_state: bool = False,
                jobs: int | str = 1) -> SweepFolder | None:
    """Train every planned run not yet in OUT/runs.jsonl (bracketing sizes included); the sweep's folder, or None
    for a dry run (the plan printed, nothing trained)."""
    from .data import load_corpus

    launcher = launcher or cfg.launcher.kind
    wanted = device if device != "auto" else cfg.train.device
    if on_slurm(launcher):
        device = cluster_device(wanted, cfg)  # the nodes' device: this (login) machine may have no GPU
    else:
        device = pick_device(wanted)
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    corpus = load_corpus(cfg.data.__dict__)
    specs = plan(cfg, corpus.vocab_size)
    if launcher not in ("local", "submitit", "slurm"):
        raise InputError(f"--launcher must be local, slurm or submitit, got {launcher!r}")
    if jobs == "auto":
        jobs = auto_jobs(cfg, device) if launcher == "local" else 1
    if jobs > 1 and device == "cuda" and launcher == "local":
        gpus = visible_gpus()
        if jobs > len(gpus):
            raise InputError(f"--jobs {jobs}: this machine shows {len(gpus)} GPU(s) (CUDA_VISIBLE_DEVICES="
                             f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); one run trains per GPU")
    if dry_run:
        import torch

        here = device if device == "cpu" or torch.cuda.is_available() else "cpu"
        if here != device:
            echo(f"the runs train on {device} on the cluster's nodes; this machine has none, so the times below are "
                 f"this machine's CPU and far longer than the nodes' will be")
        print_plan(specs, cfg, corpus, here, echo, jobs)
        return None
    if launcher == "slurm":  # before the folder is made: a machine without SLURM gets one line and no sweep folder
        from .slurm import require_commands

        need_submitit(launcher)
        require_commands()
    ctx = SweepContext(cfg, corpus, SweepFolder(Path(out)), device, echo, jobs, keep_state, launcher)
    with output_folder(ctx.out, ctx.folder.meta.name, "sweep", echo, resume):
        meta = _open_sweep(ctx, specs)
        _train_all(ctx, specs, meta)
    return ctx.folder


def _open_sweep(ctx: SweepContext, specs) -> dict:
    """sweep.json: checked against this config and data where it exists (a resume), else started."""
    meta_path = ctx.folder.meta
    cfg, corpus = ctx.cfg, ctx.corpus
    if meta_path.exists():
        meta = read_json_object(meta_path, "a sweep file (sweep.json)")
        if meta.get("config_digest") != cfg.digest():
            raise InputError(f"{ctx.out}: made by a different config (digest {meta.get('config_digest')}, this one "
                             f"{cfg.digest()}); use another --out, or the same config to resume")
        old = meta.get("data") if isinstance(meta.get("data"), dict) else {}
        if old.get("fingerprint") != corpus.fingerprint:
            raise InputError(f"{ctx.out}: made with different data (fingerprint {str(old.get('fingerprint'))[:12]}, "
                             f"now {corpus.fingerprint[:12]}); use another --out")
        if not isinstance(meta.get("resumed", []), list):
            meta["resumed"] = []
        meta.setdefault("resumed", []).append(_now())
        meta["plan"] = [s.as_dict() for s in specs]  # what this version plans (a newer one may add sizes)
    else:
        import torch

        meta = {"config": cfg.as_dict(), "config_file": cfg.source, "config_digest": cfg.digest(),
                "data": corpus.as_dict(), "versions": {"scalepredict": __version__, "torch": torch.__version__,
                                                       "python": platform.python_version(), "numpy": np.__version__},
                "device": ctx.device if ctx.device == "cpu" or not torch.cuda.is_available()
                else torch.cuda.get_device_name(),
                "host": platform.node(), "started": _now(),
                "plan": [s.as_dict() for s in specs]}
    atomic_write_json(meta_path, meta)
    return meta


def _train_all(ctx: SweepContext, specs, meta: dict) -> None:
    """The planned runs not yet finished, then bracketing passes until every set brackets its minimum (or used its
    [sweep] bracket sizes)."""
    warning = repetition_warning(specs, ctx.corpus)
    if warning:
        ctx.echo(warning)
    done = resume_runs(ctx.folder, specs, ctx.echo)
    pending = [s for s in specs if s.id not in done]
    if done:
        ctx.echo(f"resuming {ctx.out}: {len(done)} of {len(specs)} runs finished, {len(pending)} to go")
    train_specs(pending, specs, ctx)
    # bracketing: a set whose best run is its smallest or largest size gets the next size beyond that edge (at most
    # [sweep] bracket per budget), pass after pass, so that the frontier point is a minimum and not an upper bound
    known, planned = list(specs), {sp.id for sp in specs}
    while ctx.cfg.sweep.bracket:
        done = read_finished(ctx.folder.runs)
        new = bracket_next(ctx.cfg, known, planned, done, ctx.corpus.vocab_size)
        if not new:
            break
        known += new
        meta["bracket"] = [sp.as_dict() for sp in known if sp.id not in planned]
        atomic_write_json(ctx.folder.meta, meta)
        recover_finished(new, done, ctx.folder, ctx.echo)
        todo = [sp for sp in new if sp.id not in done]
        if todo:
            ctx.echo(f"bracketing: {len(todo)} IsoFLOP set(s) have their best run at an edge; adding "
                     + ", ".join(sp.id for sp in todo))
            train_specs(todo, known, ctx)
    meta["finished"] = _now()
    atomic_write_json(ctx.folder.meta, meta)
