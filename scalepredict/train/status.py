"""`scalepredict status DIR`: where a sweep stands, read from its folder (and from SLURM where its runs are jobs).

Every planned run (bracketing sizes included) gets one state:
  finished   its record is in runs.jsonl (or in its folder, to be collected by the next `sweep`)
  diverged   finished with a diverged loss (left out of every fit)
  running    a SLURM job running it, or a sweep process holding the folder while its log grows
  queued     a SLURM job waiting for a node
  stopped    started and left with a checkpoint (a stopped sweep, a cancelled job): the next `sweep` resumes it
  failed     its SLURM job ended without a record (the log says why)
  planned    not started
with its budget, its steps done and, on SLURM, its job id and state. Compute is counted in the plan's FLOPs:
finished runs whole, started runs by their steps done. Reads only; never imports torch.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..errors import InputError
from ..files import SweepFolder, lock_holder, read_json_object
from ..textfmt import band, num
from .progress import steps_logged
from .resume import read_finished, read_record
from .slurm import QUEUED, SchedulerError, job_states, read_registry

STATES = ("finished", "diverged", "running", "queued", "stopped", "failed", "planned")
RUNNING_IF_LOGGED_WITHIN = 300.0  # seconds: a local run whose log grew this recently, in a held folder, is running


def _plan(folder: SweepFolder) -> tuple[dict, list[dict]]:
    """sweep.json and its planned runs (bracketing ones included), every field status reads checked."""
    meta = read_json_object(folder.meta, "a sweep file (sweep.json)")
    runs = []
    for key in ("plan", "bracket"):
        part = meta.get(key, [] if key == "bracket" else None)
        if not isinstance(part, list):
            raise InputError(f"{folder.meta}: field '{key}' should be a list of planned runs")
        for i, p in enumerate(part):
            where = f"{folder.meta}: {key}[{i}]"
            if not isinstance(p, dict) or not isinstance(p.get("run"), str) or "/" in p["run"] or not p["run"]:
                raise InputError(f"{where}: a planned run needs its id ('run')")
            for k in ("budget", "compute", "params", "tokens", "steps"):
                v = p.get(k)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                      or v < 0):
                    raise InputError(f"{where}: field '{k}' should be a number, got {v!r}")
            runs.append(p)
    return meta, runs


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def sweep_status(out: Path) -> dict:
    """The state of every planned run of the sweep in OUT, the compute spent against the plan, and the SLURM jobs."""
    folder = SweepFolder(Path(out))
    out = folder.path
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; give the sweep's folder")
    if not folder.meta.exists():
        raise InputError(f"{out}: no sweep here (no sweep.json); `scalepredict sweep --out {out}` starts one")
    meta, plan = _plan(folder)
    done = read_finished(folder.runs)
    jobs = read_registry(folder)
    scheduler, states = None, {}
    if jobs:
        try:
            states = job_states(row["job"] for row in jobs.values())
        except SchedulerError as e:
            scheduler = str(e)
    holder = lock_holder(out)
    now = time.time()
    runs = []
    for p in plan:
        rid = p["run"]
        run = folder.run(rid)
        steps = p.get("steps") or 0
        job = jobs.get(rid)
        job_state = states.get(job["job"]) if job else None
        row = {"run": rid, "budget": p.get("budget"), "compute": p.get("compute"), "params": p.get("params"),
               "tokens": p.get("tokens"), "steps": steps, "steps_done": 0, "loss": None,
               "job": job["job"] if job else None, "job_state": job_state, "log": job["log"] if job else None}
        rec = done.get(rid) or read_record(folder, rid)
        if rec is not None:
            row["state"] = "finished" if rec.get("status", "ok") == "ok" else "diverged"
            done_steps, loss = rec.get("steps_done", steps), rec.get("loss")
            row["steps_done"] = int(done_steps) if _number(done_steps) else steps
            row["loss"] = float(loss) if _number(loss) else None
            if rid not in done:
                row["note"] = "finished; its record is collected by the next `sweep`"
        else:
            logged = steps_logged(run.path)
            row["steps_done"] = logged
            if job_state == "RUNNING":
                row["state"] = "running"
            elif job_state in QUEUED:
                row["state"] = "queued" if not logged else "stopped"
                if logged:
                    row["note"] = f"requeued ({job_state.lower()}); resumes from its checkpoint"
            elif job is not None and job_state not in (None, "COMPLETED") and job_state != "CANCELLED":
                row["state"] = "failed"
            elif job is not None and job_state is None and not logged and scheduler is None:
                row["state"] = "failed"
                row["note"] = "its job ended without a record (the scheduler no longer knows it)"
            elif logged or run.state.exists():
                recent = run.log.is_file() and now - run.log.stat().st_mtime < RUNNING_IF_LOGGED_WITHIN
                row["state"] = "running" if holder and recent and job is None else "stopped"
            else:
                row["state"] = "planned"
        runs.append(row)
    planned = sum(r["compute"] or 0.0 for r in runs)
    spent = sum((r["compute"] or 0.0) * (1.0 if r["state"] in ("finished", "diverged")
                                         else min(1.0, r["steps_done"] / max(r["steps"], 1))) for r in runs)
    counts = {s: sum(r["state"] == s for r in runs) for s in STATES}
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    return {"folder": str(out), "config": config.get("name"), "runs": runs, "counts": counts,
            "compute_planned": planned, "compute_spent": spent, "sweep_process": holder,
            "scheduler_error": scheduler, "slurm_jobs": len(jobs),
            "fitted": folder.fit.exists()}


def status_lines(st: dict) -> list[str]:
    """The status as a table and a summary, for the terminal."""
    slurm = st["slurm_jobs"] > 0
    head = f"{'run':<22} {'budget':>10} {'params':>10} {'state':<9} {'steps':>15} {'loss':>8}"
    lines = [head + ("  job (SLURM state)" if slurm else "")]
    for r in st["runs"]:
        steps = f"{r['steps_done']:,}/{r['steps']:,}"
        loss = f"{r['loss']:.4f}" if isinstance(r["loss"], (int, float)) else "-"
        params = f"{int(r['params']):,}" if isinstance(r["params"], (int, float)) else "-"
        line = f"{r['run']:<22} {num(r['budget']) if r['budget'] else '-':>10} {params:>10} " \
               f"{r['state']:<9} {steps:>15} {loss:>8}"
        if slurm and r["job"]:
            known = r["job_state"] or ("ended" if r["state"] in ("finished", "diverged") else "unknown to SLURM now")
            line += f"  {r['job']} ({known.lower()})"
        if r["state"] == "failed" and r.get("log"):
            line += f"  log {r['log']}"
        if r.get("note"):
            line += f"  [{r['note']}]"
        if r.get("forecast"):
            f = r["forecast"]
            line += f"  forecast {f['loss']:.4f} {band(f)} at step {f['step']:,}"
            if f.get("decay_unseen"):  # forecast.unseen_decay: what the decay ahead brings is not yet measured
                line += " (its LR decay not yet seen)"
        lines.append(line)
    c = st["counts"]
    lines.append("")
    lines.append(", ".join(f"{c[s]} {s}" for s in STATES if c[s]) + f" of {len(st['runs'])} runs; compute "
                 f"{num(st['compute_spent'])} of {num(st['compute_planned'])} FLOPs planned "
                 f"({st['compute_spent'] / max(st['compute_planned'], 1e-300):.0%})")
    if st["sweep_process"]:
        lines.append(f"a sweep is at work in this folder: {st['sweep_process']}")
    if st["scheduler_error"]:
        lines.append(f"SLURM job states unknown: {st['scheduler_error']}")
    if c["stopped"] or c["failed"] or c["planned"]:
        lines.append("rerun the same `scalepredict sweep` command to train what is left (stopped runs resume from "
                     "their checkpoints)")
    elif st["fitted"]:
        lines.append("every run finished; fit.json, prediction.png and report.md are written")
    return lines
