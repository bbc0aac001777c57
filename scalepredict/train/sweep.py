"""A sweep: plan the runs, train them (resuming where a previous attempt stopped), add bracketing sizes where a set's
best run sits at its edge, then fit, predict, plot and report with the same functions as the `fit`, `predict`,
`plot` and `report` commands. Every result is written atomically; runs.jsonl gets one whole line per finished run.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import Config
from ..errors import InputError
from ..files import atomic_write_json, output_folder
from ..plan import bracket_next, plan
from .context import SweepContext
from .dryrun import print_plan, repetition_warning
from .launch import _need_submitit, auto_jobs, on_slurm, train_specs, visible_gpus
from .resume import drop_torn_tail, read_finished, recover_finished


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_sweep(cfg: Config, out: Path, device: str = "auto", resume: bool = False, dry_run: bool = False,
              launcher: str | None = None, echo=print, keep_state: bool = False, finish: bool = True,
              jobs: int | str = 1) -> dict | None:
    """Train every planned run not yet in OUT/runs.jsonl, then (if `finish`) fit, predict, plot and report."""
    from .data import load_corpus
    from .trainer import pick_device

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

        _need_submitit(launcher)
        require_commands()
    ctx = SweepContext(cfg, corpus, Path(out), device, echo, jobs, keep_state, launcher)
    with output_folder(ctx.out, "sweep.json", "sweep", echo, resume):
        meta = _open_sweep(ctx, specs)
        _train_all(ctx, specs, meta)
    return finish_sweep(cfg, ctx.out, echo) if finish else None


def cluster_device(name: str, cfg: Config) -> str:
    """The device of runs that train on a cluster's nodes: cuda where asked for ([train] device, --device) or where
    [launcher] gpus_per_run asks for GPUs; with auto and no GPUs asked for, what this machine has."""
    if name in ("cuda", "cpu"):
        return name
    if cfg.launcher.gpus_per_run:
        return "cuda"
    if cfg.launcher.gpus_per_run == 0:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _open_sweep(ctx: SweepContext, specs) -> dict:
    """sweep.json: checked against this config and data where it exists (a resume), else started."""
    meta_path = ctx.out / "sweep.json"
    cfg, corpus = ctx.cfg, ctx.corpus
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            raise InputError(f"{meta_path}: corrupt sweep file; move the folder away to start again") from None
        if meta.get("config_digest") != cfg.digest():
            raise InputError(f"{ctx.out}: made by a different config ({meta.get('config', {}).get('name', '?')}, "
                             f"digest {meta.get('config_digest')}); use another --out, or the same config to resume")
        if meta.get("data", {}).get("fingerprint") != corpus.fingerprint:
            raise InputError(f"{ctx.out}: made with different data (fingerprint {meta['data']['fingerprint'][:12]}, "
                             f"now {corpus.fingerprint[:12]}); use another --out")
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
    if drop_torn_tail(ctx.runs_path):
        ctx.echo(f"{ctx.runs_path}: cut off an unterminated last line (a write a crash interrupted)")
    done = read_finished(ctx.runs_path)
    recover_finished(specs, done, ctx.out, ctx.runs_path, ctx.echo)
    pending = [s for s in specs if s.id not in done]
    if done:
        ctx.echo(f"resuming {ctx.out}: {len(done)} of {len(specs)} runs finished, {len(pending)} to go")
    train_specs(pending, specs, ctx)
    # bracketing: a set whose best run is its smallest or largest size gets the next size beyond that edge (at most
    # [sweep] bracket per budget), pass after pass, so that the frontier point is a minimum and not an upper bound
    known, planned = list(specs), {sp.id for sp in specs}
    while ctx.cfg.sweep.bracket:
        done = read_finished(ctx.runs_path)
        new = bracket_next(ctx.cfg, known, planned, done, ctx.corpus.vocab_size)
        if not new:
            break
        known += new
        meta["bracket"] = [sp.as_dict() for sp in known if sp.id not in planned]
        atomic_write_json(ctx.out / "sweep.json", meta)
        recover_finished(new, done, ctx.out, ctx.runs_path, ctx.echo)
        todo = [sp for sp in new if sp.id not in done]
        if todo:
            ctx.echo(f"bracketing: {len(todo)} IsoFLOP set(s) have their best run at an edge; adding "
                     + ", ".join(sp.id for sp in todo))
            train_specs(todo, known, ctx)
    meta["finished"] = _now()
    atomic_write_json(ctx.out / "sweep.json", meta)


def finish_sweep(cfg: Config, out: Path, echo=print) -> dict:
    """The end step, with the functions behind `fit`, `predict`, `plot` and `report`: the compute law on the
    frontier and the chinchilla law on all runs, predictions at the targets (with the compute-optimal N* and D*
    that spend each target's exact FLOPs on this recipe's shapes), fit.json, predictions.json, the plot, the
    backtest.json, the report; the fit and the predictions printed as `fit` and `predict` print them."""
    from ..fit import fit_law
    from ..summary import prediction_lines
    from ..fitfile import file_digest
    from ..plan import optimal_split
    from ..plots import prediction_figure
    from ..report import report_backtest, write_report
    from ..runs import load_runs

    runs_path = out / "runs.jsonl"
    table = load_runs(runs_path)
    for r in table.excluded:
        echo(f"warning: run {r.get('run')} {r['reason']}: left out of the fit")
    inputs = [file_digest(runs_path)]
    fit = fit_law(table, "compute", inputs=inputs)
    atomic_write_json(out / "fit.json", fit.to_dict())
    chin = None
    try:
        chin = fit_law(table, "chinchilla", inputs=inputs)
        atomic_write_json(out / "fit-chinchilla.json", chin.to_dict())
    except InputError as e:
        echo(f"warning: chinchilla fit skipped: {e}")
    targets = sorted(cfg.sweep.targets) or [fit.max_compute * k for k in (10, 100, 1000, 10000)]
    preds = fit.predict(compute=targets)
    if chin is not None:
        vocab = int(table.records[0].get("vocab_size") or cfg.data.vocab_size or 256)
        n_opt, d_opt = optimal_split(chin, targets, cfg, vocab)
        for p, c, n, d in zip(preds, chin.predict(compute=targets, params=n_opt, tokens=d_opt), n_opt, d_opt):
            p["optimal_params"], p["optimal_tokens"] = float(n), float(d)
            p["chinchilla_loss"], p["chinchilla_lower"], p["chinchilla_upper"] = c["loss"], c["lower"], c["upper"]
    atomic_write_json(out / "predictions.json", {"law": "compute", "compute_convention": fit.compute_convention,
                                                  "predictions": preds})
    bt = report_backtest(table, fit)
    if bt is not None:
        atomic_write_json(out / "backtest.json", bt)
    for w in fit.warnings:
        echo(f"warning: {w}")
    prediction_figure(fit, out / "prediction.png", targets=targets)
    write_report(out, out / "report.md")
    echo("")
    for line in fit.report() + [""] + prediction_lines(preds):
        echo(line)
    echo(f"wrote {out / 'fit.json'}, {out / 'predictions.json'}, {out / 'prediction.png'}, {out / 'report.md'}")
    return {"fit": fit, "chinchilla": chin, "predictions": preds}
