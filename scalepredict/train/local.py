"""Training runs on this machine: in turn in this process, or several at once in worker processes (one thread
each on a CPU, one GPU each on CUDA). Both hand each finished record to the sweep's Recorder as its run finishes,
and on a stop signal (SIGINT, SIGTERM) end the runs in progress on a step boundary with a checkpoint, keep what
finished and leave no worker behind, so that rerunning the command resumes losslessly."""

from __future__ import annotations

import os
import sys
import time

from .context import SweepContext
from .devices import gpu_queue, visible_gpus
from .progress import PROGRESS_EVERY, Recorder, steps_logged
from .stopping import raise_if_stopped
from .worker import init_worker, run_in_worker, run_spec


def train_in_turn(pending, ctx: SweepContext, record: Recorder):
    """The runs one after another in this process, with a progress bar per run and one for the sweep (its ETA)."""
    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    overall = tqdm(total=record.total, initial=record.before, unit="FLOP", unit_scale=True, desc="sweep",
                   disable=not tty, position=0, dynamic_ncols=True)
    last_line = time.time()
    for spec in pending:
        bar = tqdm(total=spec.steps, desc=f"{spec.id}", unit="step", leave=False, disable=not tty, position=1,
                   dynamic_ncols=True)

        def progress(step, loss, bar=bar, spec=spec):
            nonlocal last_line
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.3f}")
            if time.time() - last_line >= PROGRESS_EVERY:  # a long run in a log: show it is alive
                last_line = time.time()
                record.in_progress([(spec, step)], spec.compute * step / spec.steps)

        rec = run_spec(spec, ctx.cfg, ctx.folder, ctx.device, ctx.corpus, ctx.keep_state, progress)
        bar.close()
        record(spec, rec)
        overall.update(spec.compute)
        raise_if_stopped(f"stopped after {spec.id} finished")  # a signal during its evaluation
    overall.close()


def train_parallel(pending, ctx: SweepContext, record: Recorder):
    """`ctx.jobs` runs at once, each in its own process: on CPU with cores // jobs threads (tiny models do not use two
    threads well, benchmarks/throughput.py, so two one-thread runs finish sooner than two two-thread runs in turn);
    on CUDA each worker on a GPU of its own. Records are handed over as runs finish (runs.jsonl order is finishing
    order). On a stop signal (or a failed run) the workers end their runs on a step boundary with a checkpoint,
    records that finished meanwhile are kept, and this returns only once no worker is left: a rerun resumes without
    two processes in one run folder."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    jobs, cfg = ctx.jobs, ctx.cfg
    threads = max(1, (cfg.train.threads or os.cpu_count() or 1) // jobs)
    bar = tqdm(total=record.total, initial=record.before, unit="FLOP", unit_scale=True, desc=f"sweep ({jobs} jobs)",
               disable=not sys.stderr.isatty(), dynamic_ncols=True)
    order = sorted(pending, key=lambda s: -s.compute)  # the long runs start early, the small ones fill the gaps
    gpus = gpu_queue(visible_gpus()[:jobs]) if ctx.device == "cuda" else None
    ex = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=init_worker,
                             initargs=(dict(cfg.data.__dict__), threads, os.getpid(), gpus))
    futures = {ex.submit(run_in_worker, spec, cfg, str(ctx.out), ctx.device, ctx.keep_state): spec for spec in order}
    recorded = set()

    def in_flight():
        """FLOPs of the runs the workers have started and not finished, by the steps each has logged, and those runs
        with their steps (a queued run has logged nothing)."""
        busy = [(sp, min(st, sp.steps)) for f, sp in futures.items() if f.running()
                and (st := steps_logged(ctx.folder.run(sp.id).path))]
        return sum(sp.compute * st / sp.steps for sp, st in busy), busy

    def finish(fut):
        recorded.add(fut)
        record(futures[fut], fut.result(), in_flight()[0])

    try:
        running, last_line = set(futures), time.time()
        while running:
            raise_if_stopped()  # the poll below wakes twice a second to see a stop signal
            ready, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in ready:
                finish(fut)
            partial, busy = in_flight()  # the bar and the ETA count how far the running runs are
            bar.n = record.before + record.flops + partial
            bar.refresh()
            if time.time() - last_line >= PROGRESS_EVERY:
                last_line = time.time()
                record.in_progress(busy, partial)
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)  # queued runs are not started
        stop_workers()
        for fut in futures:  # runs that finished while the others stopped
            if fut not in recorded and fut.done() and not fut.cancelled() and fut.exception() is None:
                finish(fut)
        raise
    finally:
        bar.close()
    ex.shutdown()


def stop_workers(grace: float = 120.0) -> None:
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
