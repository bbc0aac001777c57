"""Launching runs: in turn in this process, several one-thread processes at once (CPU), or one job per run through
submitit (SLURM, or local processes without it). Every launcher appends each record to runs.jsonl as its run
finishes, and on a stop signal (SIGINT, SIGTERM) ends the runs in progress on a step boundary with a checkpoint,
keeps what finished and leaves no worker behind, so that rerunning the command resumes losslessly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..errors import InputError
from ..files import append_line
from .context import SweepContext
from .progress import PROGRESS_EVERY, eta, run_line, steps_logged
from .resume import read_finished


def auto_jobs(cfg, device: str) -> int:
    """Runs at once for `--jobs auto`: one one-thread run per core on CPU (at most 8: each worker holds its own
    torch and corpus), since a tiny model uses a second thread poorly; one per visible GPU on CUDA; 1 where
    [train] threads is set on a CPU."""
    if device == "cuda":
        return max(1, len(visible_gpus()))
    if cfg.train.threads:
        return 1
    return max(1, min(8, os.cpu_count() or 1))


def visible_gpus(env: str | None = None, count: int | None = None) -> list[str]:
    """The GPUs this process may use, named as CUDA_VISIBLE_DEVICES names them (indices, GPU-/MIG- UUIDs): its
    entries where it is set ('' or -1: none; CUDA ignores every entry after an invalid one, and so does this),
    else 0..count-1 (count: torch.cuda.device_count())."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES") if env is None else env
    if value is None:
        if count is None:
            import torch

            count = torch.cuda.device_count()
        return [str(i) for i in range(count)]
    out = []
    for part in value.split(","):
        part = part.strip()
        if not (part.isdigit() or part.upper().startswith(("GPU-", "MIG-"))):  # '', -1 or a bad entry
            break
        out.append(part)
    return out


def gpu_queue(gpus: list[str]):
    """A queue holding each GPU once: every --jobs worker takes one at start (`pin_gpu`) and keeps it."""
    import multiprocessing as mp

    q = mp.get_context("spawn").Queue()
    for g in gpus:
        q.put(g)
    return q


def pin_gpu(queue) -> str | None:
    """In a worker, before torch is imported: take a GPU from `queue` and make it the only one this process sees
    (CUDA_VISIBLE_DEVICES), so that each worker's run is alone on its GPU as cuda:0."""
    if queue is None:
        return None
    gpu = queue.get(timeout=60)
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu


def train_specs(todo, known, ctx: SweepContext):
    """Train `todo` and append each record to runs.jsonl as it finishes: through submitit, `ctx.jobs` one-thread
    processes at once, or in turn in this process (one run alone gets every thread). `known`: every run of the
    sweep, for the progress counts."""
    if not todo:
        return
    from .trainer import stop_at_step_boundary

    if on_slurm(ctx.launcher):
        _need_submitit(ctx.launcher)
        from . import slurm

        with stop_at_step_boundary():  # a stop signal ends the wait; the jobs go on, and a rerun collects them
            slurm.launch(todo, ctx)
        return
    if ctx.launcher == "submitit":
        _launch_submitit(todo, ctx)
        return

    # SIGINT or SIGTERM (Ctrl-C, `timeout`, a scheduler's pre-emption) ends every run in progress on a step boundary
    # with a checkpoint, keeps what finished, and raises Stopped: rerunning the command resumes losslessly
    with stop_at_step_boundary():
        if ctx.jobs > 1 and len(todo) > 1:
            _launch_parallel(todo, known, read_finished(ctx.runs_path), ctx)
        else:
            _train_in_turn(todo, known, read_finished(ctx.runs_path), ctx)


def _train_in_turn(pending, specs, done, ctx: SweepContext):
    """The runs one after another in this process, with a progress bar per run and one for the sweep (its ETA)."""
    from tqdm.auto import tqdm

    from .trainer import raise_if_stopped, train_run

    total_flops = sum(s.compute for s in specs)
    done_flops = sum(s.compute for s in specs if s.id in done)
    start_flops = done_flops
    tty = sys.stderr.isatty()
    overall = tqdm(total=total_flops, initial=done_flops, unit="FLOP", unit_scale=True, desc="sweep",
                   disable=not tty, position=0, dynamic_ncols=True)
    t_start = last_line = time.time()
    for i, spec in enumerate(pending):
        bar = tqdm(total=spec.steps, desc=f"{spec.id}", unit="step", leave=False, disable=not tty, position=1,
                   dynamic_ncols=True)

        def progress(step, loss, bar=bar, spec=spec):
            nonlocal last_line
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.3f}")
            if not tty and time.time() - last_line >= PROGRESS_EVERY:  # a long run in a log: show it is alive
                last_line = time.time()
                part, elapsed = spec.compute * step / spec.steps, time.time() - t_start
                left = eta(total_flops - done_flops - part, done_flops - start_flops + part, elapsed)
                ctx.echo(f"  in progress: {spec.id} step {step:,} of {spec.steps:,} ({step / spec.steps:.0%}), "
                         f"loss {loss:.3f}; {elapsed:.0f}s elapsed, ETA {left:.0f}s")

        rec = train_run(spec, ctx.corpus, ctx.cfg.train, ctx.run_dir(spec.id), ctx.device, ctx.cfg.data.val_tokens,
                        progress, keep_state=ctx.keep_state)
        bar.close()
        append_line(ctx.runs_path, json.dumps(rec))
        overall.update(spec.compute)
        done_flops += spec.compute
        if not tty:
            left = eta(total_flops - done_flops, done_flops - start_flops, time.time() - t_start)
            ctx.echo(f"[{len(done) + i + 1}/{len(specs)}] {run_line(spec, rec)}; ETA {left:.0f}s")
        raise_if_stopped(f"stopped after {spec.id} finished")  # a signal during its evaluation
    overall.close()


_WORKER: dict = {}  # per worker process (a --jobs worker or a SLURM job): the corpus, loaded once


def _worker_init(data: dict, threads: int, parent: int | None = None, gpus=None):
    """A --jobs worker: its threads, the corpus, and its stop signals. SIGINT or SIGTERM ends the run in progress on
    its next step boundary with a checkpoint (an idle worker just exits). On Linux the worker also asks for SIGHUP
    when the sweep process dies (killed with -9, say): it then stops the same way and exits, so that no worker
    trains on as an orphan in the folder that the next invocation resumes. `gpus`: a queue of GPUs (CUDA sweeps),
    one of which this worker takes for its own before torch starts."""
    import signal

    pin_gpu(gpus)
    import torch

    from .data import load_corpus
    from .trainer import request_stop

    def stop(signum, frame):
        if signum == signal.SIGHUP:
            _WORKER["orphan"] = True
        if not _WORKER.get("busy"):
            os._exit(128 + signum)
        request_stop(signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)
    if parent is not None and sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGHUP)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent died before prctl took effect
            stop(signal.SIGHUP, None)
    torch.set_num_threads(threads)
    _WORKER["corpus"] = load_corpus(data)


def _worker_run(spec, cfg, out, device, keep_state=False, threads=None):
    """One run in a worker process; the record goes back to the sweep process, which alone writes runs.jsonl.
    `threads`: torch's CPU threads in this process (a submitit job; --jobs workers set theirs at start)."""
    from .data import load_corpus
    from .trainer import raise_if_stopped, train_run

    if threads:
        import torch

        torch.set_num_threads(threads)
    raise_if_stopped(f"{spec.id} not started")  # a run queued to this worker after a stop signal
    if "corpus" not in _WORKER:
        _WORKER["corpus"] = load_corpus(cfg.data.__dict__)
    _WORKER["busy"] = True
    try:
        return train_run(spec, _WORKER["corpus"], cfg.train, Path(out) / "runs" / spec.id, device,
                         cfg.data.val_tokens, keep_state=keep_state)
    finally:
        _WORKER["busy"] = False
        if _WORKER.get("orphan"):  # the sweep process is gone: a finished run's record.json is recovered on resume
            os._exit(129)


def _launch_parallel(pending, specs, done, ctx: SweepContext):
    """`ctx.jobs` runs at once, each in its own process: on CPU with cores // jobs threads (tiny models do not use two
    threads well, benchmarks/throughput.py, so two one-thread runs finish sooner than two two-thread runs in turn);
    on CUDA each worker on a GPU of its own.
    Records are appended as runs finish (runs.jsonl order is finishing order). On a stop signal (or a failed run)
    the workers end their runs on a step boundary with a checkpoint, records that finished meanwhile are kept, and
    the sweep returns only once no worker is left: a rerun resumes without two processes in one run folder."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    from .trainer import raise_if_stopped

    jobs, cfg, out = ctx.jobs, ctx.cfg, ctx.out
    threads = max(1, (cfg.train.threads or os.cpu_count() or 1) // jobs)
    total = sum(s.compute for s in specs)
    bar_start = sum(s.compute for s in specs if s.id in done)
    bar = tqdm(total=total, initial=bar_start, unit="FLOP", unit_scale=True, desc=f"sweep ({jobs} jobs)",
               disable=not sys.stderr.isatty(), dynamic_ncols=True)
    t_start, finished = time.time(), len(done)
    left_flops, done_flops = sum(s.compute for s in pending), 0.0
    # largest first: the long runs start early and the small ones fill the gaps at the end
    order = sorted(pending, key=lambda s: -s.compute)
    gpus = gpu_queue(visible_gpus()[:jobs]) if ctx.device == "cuda" else None
    ex = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                             initargs=(dict(cfg.data.__dict__), threads, os.getpid(), gpus))
    futures = {ex.submit(_worker_run, spec, cfg, str(out), ctx.device, ctx.keep_state): spec for spec in order}
    recorded = set()

    def in_flight():
        """FLOPs of the runs the workers have started and not finished, by the steps each has logged, and those runs
        with their steps (a queued run has logged nothing)."""
        busy = [(sp, min(st, sp.steps)) for f, sp in futures.items() if f.running()
                and (st := steps_logged(ctx.run_dir(sp.id)))]
        return sum(sp.compute * st / sp.steps for sp, st in busy), busy

    def record(fut):
        nonlocal finished, done_flops
        spec, rec = futures[fut], fut.result()
        append_line(ctx.runs_path, json.dumps(rec))
        recorded.add(fut)
        finished += 1
        done_flops += spec.compute
        if not sys.stderr.isatty():
            elapsed, done_now = time.time() - t_start, done_flops + in_flight()[0]  # all workers together
            left = eta(left_flops - done_now, done_now, elapsed)
            ctx.echo(f"[{finished}/{len(specs)}] {run_line(spec, rec)}; {elapsed:.0f}s elapsed, ETA {left:.0f}s")

    try:
        running, last_line = set(futures), time.time()
        while running:
            raise_if_stopped()  # the poll below wakes twice a second to see a stop signal
            ready, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in ready:
                record(fut)
            partial, busy = in_flight()  # the bar and the ETA count how far the running runs are
            bar.n = bar_start + done_flops + partial
            bar.refresh()
            if busy and not sys.stderr.isatty() and time.time() - last_line >= PROGRESS_EVERY and done_flops + partial:
                last_line, elapsed = time.time(), time.time() - t_start
                left = eta(left_flops - done_flops - partial, done_flops + partial, elapsed)
                ctx.echo("  in progress: " + ", ".join(f"{sp.id} {st / sp.steps:.0%}" for sp, st in busy)
                         + f"; {elapsed:.0f}s elapsed, ETA {left:.0f}s")
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)  # queued runs are not started
        _stop_workers()
        for fut in futures:  # runs that finished while the others stopped
            if fut not in recorded and fut.done() and not fut.cancelled() and fut.exception() is None:
                record(fut)
        raise
    finally:
        bar.close()
    ex.shutdown()


def _stop_workers(grace: float = 120.0) -> None:
    """Ask every live worker process to stop (Process.terminate sends SIGTERM, which a worker turns into the end of
    its run on the next step boundary, with a checkpoint) and wait until none is left; past `grace` seconds, or on
    a second Ctrl-C, kill what remains (its run resumes from its last periodic checkpoint)."""
    import multiprocessing as mp

    procs = mp.active_children()  # in the sweep process: the --jobs workers
    for p in procs:
        p.terminate()
    deadline = time.time() + grace
    try:
        while any(p.is_alive() for p in procs) and time.time() < deadline:
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(5)


def has_slurm() -> bool:
    """Whether this machine submits to SLURM (sbatch is on the PATH), as submitit decides."""
    import shutil

    return shutil.which("sbatch") is not None


def on_slurm(launcher: str) -> bool:
    """Whether `launcher` trains the runs as SLURM jobs: slurm always, submitit where this machine has SLURM."""
    return launcher == "slurm" or (launcher == "submitit" and has_slurm())


def _need_submitit(launcher: str) -> None:
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise InputError(f"--launcher {launcher} needs the submitit package: pip install 'scalepredict[slurm]'"
                         ) from None


def _launch_submitit(pending, ctx: SweepContext):
    """Without SLURM: one local process per pending run through submitit's local executor. Records are appended as
    jobs finish, in any order; a failed job is reported and left for the next invocation to retry, and every
    finished run is kept (its record.json too, should this waiting process die)."""
    _need_submitit("submitit")
    import submitit

    cfg, out = ctx.cfg, ctx.out
    ex = submitit.AutoExecutor(folder=str(out / "slurm"), cluster="local")
    ex.update_parameters(timeout_min=cfg.launcher.time_min, gpus_per_node=1 if ctx.device == "cuda" else 0,
                         cpus_per_task=cfg.launcher.cpus_per_run, name=f"scalepredict-{cfg.name}")
    # every job is a process on this machine, all at once: one thread each, or their threads fight over the cores
    # (a tiny run took 50 s instead of 1 s with six two-thread jobs on two cores)
    jobs = {ex.submit(_worker_run, s, cfg, str(out), ctx.device, False, 1): s for s in pending}
    ctx.echo(f"submitted {len(jobs)} jobs to local processes (logs in {out / 'slurm'}); waiting: rerun the same "
             f"command to resume if interrupted")
    failed = []
    poll = 1.0
    for job in submitit.helpers.as_completed(list(jobs), poll_frequency=poll):
        spec = jobs[job]
        try:
            rec = job.result()
        except Exception as e:  # the job's own traceback is in its log file
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            failed.append(f"{spec.id} (job {job.job_id}: {first})")
            ctx.echo(f"{spec.id}: job {job.job_id} FAILED: {first}")
            continue
        append_line(ctx.runs_path, json.dumps(rec))
        ctx.echo(run_line(spec, rec))
    if failed:
        raise InputError(f"{out}: {len(failed)} of {len(jobs)} jobs failed, first {failed[0]}; logs in "
                         f"{out / 'slurm'}; finished runs are kept: rerun the same command to retry the rest")
