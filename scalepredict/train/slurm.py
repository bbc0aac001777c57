"""Runs as SLURM jobs: submitted through submitit, watched through the scheduler's own commands.

One job per pending run (or one job array), with the partition, time limit, CPUs, GPUs, memory, account, QOS and
further sbatch options of the config's [launcher] section. Every submitted job is registered in
OUT/slurm/jobs.jsonl before this process waits on it, so that a rerun after this process died attaches to the jobs
still queued or running instead of submitting their runs a second time (the run folder's lock is the second guard:
two processes never train one run).

A run's record is read from its folder (runs/<id>/record.json, written by the job as it finishes) and appended to
runs.jsonl by this process alone, once. Job states come from squeue (every state for recently ended jobs), and from
sacct where the cluster keeps accounting; submitit's own watcher is not used, since it needs sacct.

In the job: SIGTERM (scancel, `scontrol requeue`, pre-emption) and SIGUSR2 ([launcher] signal_delay_s before the
time limit) end the run at its next step boundary with a checkpoint. On SIGUSR2 the job then requeues itself; after
a requeue SLURM starts the job again and the run resumes from its checkpoint. A cancelled job leaves its checkpoint
for the next `sweep` to resume from.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import InputError, Stopped
from ..files import append_line
from .context import SweepContext
from .progress import Recorder
from .resume import read_record
from .stopping import raise_if_stopped, request_stop
from .worker import run_in_worker

ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING", "RESIZING",
          "SUSPENDED", "SIGNALING", "STAGE_OUT", "PREEMPTED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD", "SPECIAL_EXIT"}


class SchedulerError(InputError):
    """The scheduler itself failed: no controller, a refused submission, an unknown partition."""


# ---- the scheduler's commands -----------------------------------------------------------------------------------


def _scheduler_line(text: str) -> str:
    """The line of a SLURM command's output that says what went wrong ('sbatch: error: ...'), else its last line."""
    lines = [l.strip() for l in str(text).splitlines() if l.strip()]
    errors = [l for l in lines if "error:" in l.lower()]
    pick = errors[-1] if errors else (lines[-1] if lines else "no output")
    return pick[pick.lower().find("error:") + 6:].strip() if "error:" in pick.lower() else pick


def job_states(job_ids) -> dict[str, str]:
    """SLURM states by job id ('123' or an array task '123_4') of the jobs squeue still knows (every state, ended
    jobs for MinJobAge), then sacct for the rest where the cluster keeps accounting. Ids neither knows are absent.
    Raises SchedulerError when squeue cannot reach the controller."""
    ids = {str(j) for j in job_ids}
    if not ids:
        return {}
    if not shutil.which("squeue"):
        raise SchedulerError("squeue: not found; the SLURM client commands are needed to watch the jobs")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    p = subprocess.run(["squeue", "-h", "-r", "--states=all", "-u", user, "-o", "%i|%T"], capture_output=True,
                       text=True, timeout=120)
    if p.returncode:
        raise SchedulerError(f"squeue failed: {_scheduler_line(p.stderr or p.stdout)}")
    states = {}
    for line in p.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid in ids:
            states[jid] = state.strip().split()[0] if state.strip() else "UNKNOWN"
    rest = ids - set(states)
    if rest and shutil.which("sacct"):
        q = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(sorted(rest))],
                           capture_output=True, text=True, timeout=120)
        if q.returncode == 0:  # no accounting storage: sacct fails, and squeue's answer is all there is
            for line in q.stdout.splitlines():
                jid, _, state = line.strip().partition("|")
                if jid in rest and state:
                    states[jid] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


# ---- the registry of submitted jobs -----------------------------------------------------------------------------


def read_registry(folder) -> dict[str, dict]:
    """The latest job submitted for each run: {run: {"job": id, "log": path, "submitted": time}} (a line that is not
    such a row, a torn last one say, is passed over: that job is looked for again by its run's record)."""
    jobs = {}
    try:
        text = folder.jobs.read_text(encoding="utf-8", errors="replace")
    except OSError:  # none yet (or unreadable: no job to attach to)
        return jobs
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("run"), str) and isinstance(row.get("job"), (str, int)):
            jobs[row["run"]] = {**row, "job": str(row["job"]), "log": str(row.get("log", ""))}
    return jobs


# ---- in the job -------------------------------------------------------------------------------------------------


def run_job(spec, cfg, out, device, threads):
    """One run in a SLURM job. SIGTERM and SIGUSR2 end the run at its next step boundary with a checkpoint; after
    SIGUSR2 (the time limit is near) the job requeues itself. A stopped run's job exits without a result, so that
    the waiting sweep goes by the job's state (REQUEUED or PENDING: wait on; CANCELLED: report)."""
    got = {}

    def stop(signum, frame):
        got.setdefault("signum", signum)
        request_stop(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR2, stop)
    try:
        return run_in_worker(spec, cfg, out, device, threads=threads)
    except Stopped as e:
        print(f"scalepredict: {e}; checkpoint saved", file=sys.stderr, flush=True)
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ.get("SLURM_JOB_ID")
        if got.get("signum") == signal.SIGUSR2 and job:
            r = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            print(f"scalepredict: requeue {job}: {'done' if r.returncode == 0 else r.stderr.strip()}",
                  file=sys.stderr, flush=True)
        sys.stderr.flush()
        os._exit(0)  # no result file: the job's state tells the sweep what happened


# ---- submitting and waiting -------------------------------------------------------------------------------------


def require_commands() -> None:
    """SchedulerError unless sbatch and squeue are on the PATH (checked before a sweep writes anything)."""
    for cmd in ("sbatch", "squeue"):
        if not shutil.which(cmd):
            raise SchedulerError(f"{cmd}: not found; --launcher slurm needs the SLURM client commands on this "
                                 f"machine (or use --launcher local)")


def executor(ctx: SweepContext):
    """A submitit SlurmExecutor set from [launcher]."""
    import submitit

    lc = ctx.cfg.launcher
    require_commands()
    ex = submitit.SlurmExecutor(folder=str(ctx.folder.slurm), max_num_timeout=3)
    gpus = lc.gpus_per_run if lc.gpus_per_run is not None else (1 if ctx.device == "cuda" else 0)
    params = dict(time=lc.time_min, cpus_per_task=lc.cpus_per_run, job_name=f"scalepredict-{ctx.cfg.name}",
                  signal_delay_s=lc.signal_delay_s, additional_parameters=dict(lc.sbatch), setup=list(lc.setup))
    params["additional_parameters"].setdefault("requeue", True)
    if gpus:
        params["gpus_per_node"] = gpus
    for key, name in (("partition", "partition"), ("account", "account"), ("qos", "qos")):
        if getattr(lc, key):
            params[name] = getattr(lc, key)
    if lc.mem_gb:
        params["mem"] = f"{int(lc.mem_gb * 1024)}M"
    if lc.array and lc.max_parallel:
        params["array_parallelism"] = lc.max_parallel
    ex.update_parameters(**params)
    return ex


def _submit(ex, todo, ctx: SweepContext, threads: int):
    """Submit `todo` (one job each, or one array) and register every job; SchedulerError on a refusal."""
    from submitit.core.utils import FailedJobError

    cfg, out = ctx.cfg, str(ctx.out)
    said = io.StringIO()  # submitit prints sbatch's complaint itself; it goes into our one line instead
    try:
        with contextlib.redirect_stderr(said):
            if cfg.launcher.array and len(todo) > 1:
                n = len(todo)
                jobs = ex.map_array(run_job, todo, [cfg] * n, [out] * n, [ctx.device] * n, [threads] * n)
            else:
                jobs = [ex.submit(run_job, s, cfg, out, ctx.device, threads) for s in todo]
    except (FailedJobError, subprocess.CalledProcessError, OSError) as e:
        raise SchedulerError(f"sbatch refused the jobs: {_scheduler_line(str(e) or said.getvalue())}") from None
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows = {}
    for spec, job in zip(todo, jobs):
        rows[spec.id] = {"run": spec.id, "job": str(job.job_id), "log": str(job.paths.stderr), "submitted": now}
        append_line(ctx.folder.jobs, json.dumps(rows[spec.id]))
    return rows


def _why_failed(row: dict, state: str | None) -> str:
    """A failed job in words: its exception's last line where submitit wrote one, else its state."""
    log = Path(row["log"])
    result = log.parent / log.name.replace("_log.err", "_result.pkl")
    if result.exists():
        import pickle

        try:
            with open(result, "rb") as f:
                kind, value = pickle.load(f)
        except (OSError, EOFError, ValueError, TypeError, AttributeError, ImportError, pickle.UnpicklingError) as e:
            return f"its result file {result.name} is unreadable ({type(e).__name__}); see the log"
        if kind == "error":
            lines = [l for l in str(value).strip().splitlines() if l.strip()]
            return lines[-1].strip() if lines else "an error"
    if state is None:
        return "ended without a record (the scheduler no longer knows the job)"
    if state == "CANCELLED":
        return "cancelled; its checkpoint is kept"
    return state.lower().replace("_", " ")


def launch(pending, ctx: SweepContext, record: Recorder):
    """Train `pending` as SLURM jobs and record each run as its job finishes. Jobs of an earlier invocation still
    queued or running are attached to, not submitted again. Raises SchedulerError when the scheduler cannot be
    reached or refuses the jobs, and InputError naming every failed job (with its log) once the others are done;
    finished runs are kept either way."""
    lc = ctx.cfg.launcher
    threads = ctx.cfg.train.threads or lc.cpus_per_run
    known = read_registry(ctx.folder)
    earlier = {s.id: known[s.id] for s in pending if s.id in known}
    states = job_states(r["job"] for r in earlier.values()) if earlier else {}
    live = {rid: row for rid, row in earlier.items() if states.get(row["job"]) in ACTIVE}
    todo = [s for s in pending if s.id not in live]
    if live:
        ctx.echo(f"attached to {len(live)} job(s) an earlier invocation submitted and that are still queued or "
                 f"running: " + ", ".join(f"{rid} ({row['job']})" for rid, row in live.items()))
    rows = dict(live)
    if todo:
        rows.update(_submit(executor(ctx), todo, ctx, threads))
        ctx.echo(f"submitted {len(todo)} job(s) to SLURM (logs in {ctx.folder.slurm}); waiting. If this process "
                 f"stops, the jobs go on: rerun the same command to collect them")
    specs = {s.id: s for s in pending}
    waiting, failed = dict(rows), []
    gone: dict[str, int] = {}
    started = time.time()
    while waiting:
        for rid in list(waiting):
            rec = read_record(ctx.folder, rid)
            if rec is not None:
                record(specs[rid], rec, note=f" (job {waiting[rid]['job']})")
                del waiting[rid]
        if not waiting:
            break
        states = job_states(r["job"] for r in waiting.values())
        for rid, row in list(waiting.items()):
            state = states.get(row["job"])
            if state in ACTIVE:
                gone.pop(rid, None)
                continue
            # ended (or unknown to the scheduler) without a record: look twice, a record may be on its way (a
            # shared filesystem shows a file late)
            gone[rid] = gone.get(rid, 0) + 1
            if gone[rid] < 2 or read_record(ctx.folder, rid) is not None:
                continue  # a record is picked up on the next pass
            why = _why_failed(row, state)
            failed.append(f"{rid} (job {row['job']}: {why}; log {row['log']})")
            ctx.echo(f"{rid}: job {row['job']} FAILED: {why}; log {row['log']}")
            del waiting[rid]
        if waiting:  # look often while the first jobs start, then every poll_seconds
            _sleep(min(lc.poll_seconds, max(1.0, (time.time() - started) / 4)), raise_if_stopped)
    if failed:
        raise InputError(f"{ctx.out}: {len(failed)} of {len(rows)} SLURM job(s) failed, first {failed[0]}; finished "
                         f"runs are kept: rerun the same command to retry (a stopped run resumes from its checkpoint)")


def launch_local_jobs(pending, ctx: SweepContext, record: Recorder):
    """`--launcher submitit` without SLURM: one local process per pending run through submitit's local executor.
    Records are handed over as jobs finish, in any order; a failed job is reported and left for the next invocation
    to retry, and every finished run is kept (its record.json too, should this waiting process die)."""
    import submitit

    cfg = ctx.cfg
    ex = submitit.AutoExecutor(folder=str(ctx.folder.slurm), cluster="local")
    ex.update_parameters(timeout_min=cfg.launcher.time_min, gpus_per_node=1 if ctx.device == "cuda" else 0,
                         cpus_per_task=cfg.launcher.cpus_per_run, name=f"scalepredict-{cfg.name}")
    # every job is a process on this machine, all at once: one thread each, or their threads fight over the cores
    # (a tiny run took 50 s instead of 1 s with six two-thread jobs on two cores)
    jobs = {ex.submit(run_in_worker, s, cfg, str(ctx.out), ctx.device, False, 1): s for s in pending}
    ctx.echo(f"submitted {len(jobs)} jobs to local processes (logs in {ctx.folder.slurm}); waiting: rerun the same "
             f"command to resume if interrupted")
    failed = []
    for job in submitit.helpers.as_completed(list(jobs), poll_frequency=1.0):
        spec = jobs[job]
        try:
            rec = job.result()
        except Exception as e:  # submitit re-raises the job's own exception, of any type; its traceback is logged
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            failed.append(f"{spec.id} (job {job.job_id}: {first})")
            ctx.echo(f"{spec.id}: job {job.job_id} FAILED: {first}")
            continue
        record(spec, rec)
    if failed:
        raise InputError(f"{ctx.out}: {len(failed)} of {len(jobs)} jobs failed, first {failed[0]}; logs in "
                         f"{ctx.folder.slurm}; finished runs are kept: rerun the same command to retry the rest")


def _sleep(seconds: float, check) -> None:
    end = time.time() + seconds
    while time.time() < end:
        check()
        time.sleep(min(0.5, max(0.0, end - time.time())))
