"""A sweep: plan the runs, train them small to large (resuming where a previous attempt stopped), then fit,
predict, plot and report. Every result is written atomically; runs.jsonl gets one whole line per finished run.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..files import append_line, atomic_write_json, output_folder
from ..config import Config
from ..plan import plan


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_finished(runs_path: Path) -> dict[str, dict]:
    """Finished runs by id; an unterminated last line (a crash mid-write) is ignored."""
    if not runs_path.exists():
        return {}
    done = {}
    text = runs_path.read_text()
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[rec["run"]] = rec
    return done


MAX_EPOCHS = 4.0  # Muennighoff et al. 2023: up to ~4 epochs of repeated data train about as well as fresh data


def repetition_warning(specs, corpus) -> str | None:
    """One line when the plan trains some run on more than MAX_EPOCHS passes over the training split: its loss is
    then not that of a fresh-data run, and the law fitted to it would not predict one."""
    worst = max(specs, key=lambda s: s.tokens)
    epochs = worst.tokens / max(1, len(corpus.train))
    if epochs <= MAX_EPOCHS:
        return None
    n = sum(1 for s in specs if s.tokens > MAX_EPOCHS * len(corpus.train))
    return (f"warning: {n} of {len(specs)} runs repeat the training data more than {MAX_EPOCHS:g} times ({worst.id}: "
            f"{epochs:.1f} epochs of {len(corpus.train):,} tokens); beyond ~4 epochs repeated data is worth less than "
            f"fresh (Muennighoff et al. 2023), so point [data] at a larger corpus for this ladder")


def recover_finished(specs, done: dict, out: Path, runs_path: Path, echo=None) -> int:
    """Append to runs.jsonl (and to `done`) the planned runs that finished, writing runs/<id>/record.json, but whose
    record never reached runs.jsonl (the sweep process died first); say how many through `echo`. Returns how many."""
    n = 0
    for s in specs:
        path = out / "runs" / s.id / "record.json"
        if s.id in done or not path.exists():
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a torn file: the run is trained again
        if rec.get("run") == s.id:
            append_line(runs_path, json.dumps(rec))
            done[s.id] = rec
            n += 1
    if n and echo:
        echo(f"recovered {n} finished run(s) from their folders (runs/<id>/record.json)")
    return n


def _duration(seconds: float) -> str:
    if seconds < 120 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def print_plan(specs, cfg, corpus, device, echo, jobs: int = 1):
    import torch

    from .trainer import time_train_steps

    flops_s = {}
    threads = torch.get_num_threads()
    if jobs > 1:  # time one run as each parallel worker runs it
        torch.set_num_threads(max(1, threads // jobs))
    try:
        for s in {specs[0].shape: specs[0], specs[-1].shape: specs[-1]}.values():
            batch = s.batch_size
            if device == "cpu":  # a GPU ladder's large model planned on a CPU: time short steps (~1e11 FLOPs each)
                batch = min(batch, max(1, int(1e11 // (s.shape.train_flops_per_token * s.shape.seq_len))))
            flops_s[s.shape] = time_train_steps(s.shape, batch, 6, device, corpus.train, cfg.train)
    finally:
        torch.set_num_threads(threads)
    # each run at the rate interpolated (in log params) between the smallest and the largest model's measured rates
    measured = sorted((sh.params, r) for sh, r in flops_s.items())
    (p0, r0), (p1, r1) = measured[0], measured[-1]

    def rate_of(params):
        return r0 if p1 == p0 else float(np.interp(math.log(params), [math.log(p0), math.log(p1)], [r0, r1]))
    echo(f"plan '{cfg.name}': {len(specs)} runs, data: {corpus.description} "
         f"({len(corpus.train):,} train / {len(corpus.val):,} val tokens)")
    echo(f"{'run':<18} {'budget':>9} {'layers':>6} {'d_model':>7} {'params':>9} {'tokens':>10} {'steps':>6} "
         f"{'lr':>8} {'est. time':>9}")
    total = 0.0
    for s in specs:
        secs = s.compute / rate_of(s.shape.params)
        total += secs
        echo(f"{s.id:<18} {s.budget:>9.3g} {s.shape.n_layer:>6} {s.shape.d_model:>7} {s.shape.params:>9,} "
             f"{s.tokens:>10,} {s.steps:>6} {s.lr:>8.2e} {secs:>8.0f}s")
    total /= jobs
    echo(f"total {sum(s.compute for s in specs):.3g} FLOPs; about {_duration(total)} on {device}"
         + (f" with {jobs} runs at once" if jobs > 1 else "")
         + f" (measured {r0 / 1e9:.1f} to {r1 / 1e9:.1f} GFLOP/s per run, smallest to largest model)")
    if cfg.sweep.bracket:
        echo(f"bracketing: a set whose best run is its smallest or largest size gets up to {cfg.sweep.bracket} more "
             f"size(s) beyond that edge, decided as the sets finish (not in the total above)")
    warning = repetition_warning(specs, corpus)
    if warning:
        echo(warning)
    return total


def run_sweep(cfg: Config, out: Path, device: str = "auto", resume: bool = False, dry_run: bool = False,
              launcher: str = "local", echo=print, keep_state: bool = False, finish: bool = True,
              jobs: int | str = 1) -> dict | None:
    """Train every planned run not yet in OUT/runs.jsonl, then (if `finish`) fit, predict, plot and report."""
    from .data import load_corpus
    from .trainer import pick_device

    device = pick_device(device if device != "auto" else cfg.train.device)
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    corpus = load_corpus(cfg.data.__dict__)
    specs = plan(cfg, corpus.vocab_size)
    if jobs == "auto":
        jobs = auto_jobs(cfg, device) if launcher == "local" else 1
    if launcher not in ("local", "submitit"):
        raise InputError(f"--launcher must be local or submitit, got {launcher!r}")
    if jobs > 1 and device != "cpu":
        raise InputError(f"--jobs {jobs}: parallel runs are for CPU sweeps (one GPU trains one run at a time)")
    if dry_run:
        print_plan(specs, cfg, corpus, device, echo, jobs)
        return None

    out = Path(out)
    meta_path, runs_path = out / "sweep.json", out / "runs.jsonl"
    with output_folder(out, meta_path.name, "sweep", echo, resume):
        return _run_sweep_locked(cfg, out, meta_path, runs_path, specs, corpus, device, echo, jobs, keep_state,
                                 launcher, finish)


def _run_sweep_locked(cfg, out, meta_path, runs_path, specs, corpus, device, echo, jobs, keep_state, launcher,
                      finish):
    """The sweep, with OUT locked against a second scalepredict process."""
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            raise InputError(f"{meta_path}: corrupt sweep file; move the folder away to start again") from None
        if meta.get("config_digest") != cfg.digest():
            raise InputError(f"{out}: made by a different config ({meta.get('config', {}).get('name', '?')}, "
                             f"digest {meta.get('config_digest')}); use another --out, or the same config to resume")
        if meta.get("data", {}).get("fingerprint") != corpus.fingerprint:
            raise InputError(f"{out}: made with different data (fingerprint {meta['data']['fingerprint'][:12]}, now "
                             f"{corpus.fingerprint[:12]}); use another --out")
        meta.setdefault("resumed", []).append(_now())
        meta["plan"] = [s.as_dict() for s in specs]  # what this version plans (a newer one may add sizes)
    else:
        import torch

        meta = {"config": cfg.as_dict(), "config_file": cfg.source, "config_digest": cfg.digest(),
                "data": corpus.as_dict(), "versions": {"scalepredict": __version__, "torch": torch.__version__,
                                                       "python": platform.python_version(), "numpy": np.__version__},
                "device": device if device == "cpu" else torch.cuda.get_device_name(),
                "host": platform.node(), "started": _now(),
                "plan": [s.as_dict() for s in specs]}
    atomic_write_json(meta_path, meta)

    warning = repetition_warning(specs, corpus)
    if warning:
        echo(warning)
    done = read_finished(runs_path)
    recover_finished(specs, done, out, runs_path, echo)
    pending = [s for s in specs if s.id not in done]
    if done:
        echo(f"resuming {out}: {len(done)} of {len(specs)} runs finished, {len(pending)} to go")

    def train(todo, known):
        train_specs(todo, known, cfg, corpus, out, device, runs_path, echo, jobs, keep_state, launcher)

    train(pending, specs)
    # bracketing: a set whose best run is its smallest or largest size gets the next size beyond that edge (at most
    # [sweep] bracket per budget), pass after pass, so that the frontier point is a minimum and not an upper bound
    known, planned = list(specs), {sp.id for sp in specs}
    while cfg.sweep.bracket:
        done = read_finished(runs_path)
        new = bracket_next(cfg, known, planned, done, corpus.vocab_size)
        if not new:
            break
        known += new
        meta["bracket"] = [sp.as_dict() for sp in known if sp.id not in planned]
        atomic_write_json(meta_path, meta)
        recover_finished(new, done, out, runs_path, echo)
        todo = [sp for sp in new if sp.id not in done]
        if todo:
            echo(f"bracketing: {len(todo)} IsoFLOP set(s) have their best run at an edge; adding "
                 + ", ".join(sp.id for sp in todo))
            train(todo, known)
    meta["finished"] = _now()
    atomic_write_json(meta_path, meta)
    return finish_sweep(cfg, out, echo) if finish else None


def train_specs(todo, known, cfg, corpus, out, device, runs_path, echo, jobs: int = 1, keep_state: bool = False,
                launcher: str = "local"):
    """Train `todo` and append each record to runs_path as it finishes: through submitit, `jobs` one-thread
    processes at once, or in turn in this process (one run alone gets every thread). `known`: every run of the
    sweep, for the progress counts."""
    if not todo:
        return
    if launcher == "submitit":
        _launch_submitit(todo, cfg, corpus, out, device, runs_path, echo)
        return
    from .trainer import stop_at_step_boundary

    # SIGINT or SIGTERM (Ctrl-C, `timeout`, a scheduler's pre-emption) ends every run in progress on a step boundary
    # with a checkpoint, keeps what finished, and raises trainer.Stopped: rerunning the command resumes losslessly
    with stop_at_step_boundary():
        if jobs > 1 and len(todo) > 1:
            _launch_parallel(todo, known, read_finished(runs_path), cfg, out, device, runs_path, echo, jobs,
                             keep_state)
        else:
            _train_in_turn(todo, known, read_finished(runs_path), cfg, corpus, out, device, runs_path, echo,
                           keep_state)


def bracket_next(cfg: Config, known: list, planned: set, done: dict, vocab_size: int = 256) -> list:
    """The next bracketing runs: for each budget whose runs (planned and added) have all finished, where the lowest
    seed-mean loss is at the set's smallest or largest size, the next size beyond that edge (plan.bracket_spec),
    until [sweep] bracket sizes were added to that budget. Deterministic given the finished records, so a resumed
    sweep adds the same runs."""
    from ..plan import bracket_spec, budget_index

    by_budget: dict[int, list] = {}
    for sp in known:
        by_budget.setdefault(budget_index(sp.id), []).append(sp)
    new = []
    for bi, group in by_budget.items():
        if any(sp.id not in done for sp in group):
            continue
        if sum(sp.id not in planned for sp in group) >= cfg.sweep.bracket:
            continue
        losses: dict = {}
        for sp in group:
            rec = done[sp.id]
            if rec.get("status") == "ok" and isinstance(rec.get("loss"), (int, float)) and math.isfinite(rec["loss"]):
                losses.setdefault(sp.shape, []).append(rec["loss"])
        if len(losses) < 2:
            continue
        sizes = sorted(losses, key=lambda sh: sh.params)
        best = min(sizes, key=lambda sh: float(np.mean(losses[sh])))
        side = "smallest" if best == sizes[0] else "largest" if best == sizes[-1] else None
        tried = sorted({sp.shape for sp in group}, key=lambda sh: sh.params)
        if side is None or best != (tried[0] if side == "smallest" else tried[-1]):
            continue  # bracketed, or a size beyond the edge was tried and diverged: a larger step will not help
        spec = bracket_spec(cfg, bi, group[0].budget, [sp.shape for sp in group], side, vocab_size)
        if spec is not None and spec.id not in {sp.id for sp in known}:
            new.append(spec)
    return new


def _train_in_turn(pending, specs, done, cfg, corpus, out, device, runs_path, echo, keep_state):
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
                eta = _eta(total_flops - done_flops - part, done_flops - start_flops + part, elapsed)
                echo(f"  in progress: {spec.id} step {step:,} of {spec.steps:,} ({step / spec.steps:.0%}), "
                     f"loss {loss:.3f}; {elapsed:.0f}s elapsed, ETA {eta:.0f}s")

        rec = train_run(spec, corpus, cfg.train, out / "runs" / spec.id, device, cfg.data.val_tokens, progress,
                        keep_state=keep_state)
        bar.close()
        append_line(runs_path, json.dumps(rec))
        overall.update(spec.compute)
        done_flops += spec.compute
        if not tty:
            eta = _eta(total_flops - done_flops, done_flops - start_flops, time.time() - t_start)
            echo(f"[{len(done) + i + 1}/{len(specs)}] {_run_line(spec, rec)}; ETA {eta:.0f}s")
        raise_if_stopped(f"stopped after {spec.id} finished")  # a signal during its evaluation
    overall.close()


def _eta(left: float, done: float, elapsed: float) -> float:
    """Seconds until `left` more FLOPs are trained at the rate so far (`done` FLOPs in `elapsed` seconds)."""
    return left * elapsed / max(done, 1e-9)


PROGRESS_EVERY = 300.0  # seconds between "in progress" lines where there is no terminal (logs, SLURM output)


def _steps_logged(run_dir: Path) -> int:
    """The last step a run's log.jsonl records (0 where there is none yet): how far a run in another process is."""
    try:
        with open(run_dir / "log.jsonl", "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the seek, or being written
    return 0


def _run_line(spec, rec: dict) -> str:
    """One finished run, as the sweep prints it where there is no progress bar (logs, pipes, SLURM)."""
    loss = f"loss {rec['loss']:.4f}" if rec["status"] == "ok" else rec["status"].upper()
    return f"{spec.id}: {spec.shape.params:,} params, {spec.tokens:,} tokens, {loss}, {rec['wall_seconds']:.1f}s"


def auto_jobs(cfg: Config, device: str) -> int:
    """Runs at once for `--jobs auto`: one one-thread run per core on CPU (at most 8: each worker holds its own
    torch and corpus), since a tiny model uses a second thread poorly; 1 on CUDA, or where [train] threads is set."""
    import os

    if device != "cpu" or cfg.train.threads:
        return 1
    return max(1, min(8, os.cpu_count() or 1))


_WORKER: dict = {}  # per worker process (a --jobs worker or a SLURM job): the corpus, loaded once


def _worker_init(data: dict, threads: int, parent: int | None = None):
    """A --jobs worker: its threads, the corpus, and its stop signals. SIGINT or SIGTERM ends the run in progress on
    its next step boundary with a checkpoint (an idle worker just exits). On Linux the worker also asks for SIGHUP
    when the sweep process dies (killed with -9, say): it then stops the same way and exits, so that no worker
    trains on as an orphan in the folder that the next invocation resumes."""
    import os
    import signal

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
    import os

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


def _launch_parallel(pending, specs, done, cfg, out, device, runs_path, echo, jobs, keep_state):
    """`jobs` runs at once on CPU, each in its own process with cores // jobs threads: tiny models do not use two
    threads well (benchmarks/throughput.py), so two one-thread runs finish sooner than two two-thread runs in turn.
    Records are appended as runs finish (runs.jsonl order is finishing order). On a stop signal (or a failed run)
    the workers end their runs on a step boundary with a checkpoint, records that finished meanwhile are kept, and
    the sweep returns only once no worker is left: a rerun resumes without two processes in one run folder."""
    import multiprocessing as mp
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    from .trainer import raise_if_stopped

    threads = max(1, (cfg.train.threads or os.cpu_count() or 1) // jobs)
    total = sum(s.compute for s in specs)
    bar_start = sum(s.compute for s in specs if s.id in done)
    bar = tqdm(total=total, initial=bar_start, unit="FLOP", unit_scale=True, desc=f"sweep ({jobs} jobs)",
               disable=not sys.stderr.isatty(), dynamic_ncols=True)
    t_start, finished = time.time(), len(done)
    left_flops, done_flops = sum(s.compute for s in pending), 0.0
    # largest first: the long runs start early and the small ones fill the gaps at the end
    order = sorted(pending, key=lambda s: -s.compute)
    ex = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                             initargs=(dict(cfg.data.__dict__), threads, os.getpid()))
    futures = {ex.submit(_worker_run, spec, cfg, str(out), device, keep_state): spec for spec in order}
    recorded = set()

    def in_flight():
        """FLOPs of the runs the workers have started and not finished, by the steps each has logged, and those runs
        with their steps (a queued run has logged nothing)."""
        busy = [(sp, min(st, sp.steps)) for f, sp in futures.items() if f.running()
                and (st := _steps_logged(Path(out) / "runs" / sp.id))]
        return sum(sp.compute * st / sp.steps for sp, st in busy), busy

    def record(fut):
        nonlocal finished, done_flops
        spec, rec = futures[fut], fut.result()
        append_line(runs_path, json.dumps(rec))
        recorded.add(fut)
        finished += 1
        done_flops += spec.compute
        if not sys.stderr.isatty():
            elapsed, done_now = time.time() - t_start, done_flops + in_flight()[0]  # all workers together
            eta = _eta(left_flops - done_now, done_now, elapsed)
            echo(f"[{finished}/{len(specs)}] {_run_line(spec, rec)}; {elapsed:.0f}s elapsed, ETA {eta:.0f}s")

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
                eta = _eta(left_flops - done_flops - partial, done_flops + partial, elapsed)
                echo("  in progress: " + ", ".join(f"{sp.id} {st / sp.steps:.0%}" for sp, st in busy)
                     + f"; {elapsed:.0f}s elapsed, ETA {eta:.0f}s")
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


def _launch_submitit(pending, cfg, corpus, out, device, runs_path, echo):
    """One job per pending run through submitit (SLURM where there is one, else local processes). Records are
    appended as jobs finish, in any order; a failed job is reported and left for the next invocation to retry,
    and every finished run is kept (its record.json too, should this waiting process die)."""
    try:
        import submitit
    except ImportError:
        raise InputError("--launcher submitit needs the submitit package: pip install 'scalepredict[slurm]'") from None
    ex = submitit.AutoExecutor(folder=str(out / "slurm"))
    cpus = 8
    ex.update_parameters(timeout_min=24 * 60, gpus_per_node=1 if device == "cuda" else 0, cpus_per_task=cpus,
                         name=f"scalepredict-{cfg.name}")
    # without SLURM every job is a process on this machine, all at once: one thread each, or their threads fight
    # over the cores (a tiny run took 50 s instead of 1 s with six two-thread jobs on two cores)
    on_this_machine = ex.cluster in ("local", "debug")
    threads = 1 if on_this_machine else (cfg.train.threads or cpus)
    jobs = {ex.submit(_worker_run, s, cfg, str(out), device, False, threads): s for s in pending}
    echo(f"submitted {len(jobs)} jobs to {ex.cluster} (logs in {out / 'slurm'}); waiting: rerun the same command "
         f"to resume if interrupted")
    failed = []
    poll = 1.0 if on_this_machine else 30.0
    for job in submitit.helpers.as_completed(list(jobs), poll_frequency=poll):
        spec = jobs[job]
        try:
            rec = job.result()
        except Exception as e:  # the job's own traceback is in its log file
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            failed.append(f"{spec.id} (job {job.job_id}: {first})")
            echo(f"{spec.id}: job {job.job_id} FAILED: {first}")
            continue
        append_line(runs_path, json.dumps(rec))
        echo(_run_line(spec, rec))
    if failed:
        raise InputError(f"{out}: {len(failed)} of {len(jobs)} jobs failed, first {failed[0]}; logs in "
                         f"{out / 'slurm'}; finished runs are kept: rerun the same command to retry the rest")


def finish_sweep(cfg: Config, out: Path, echo=print) -> dict:
    """Fit the compute law on the frontier and the chinchilla law on all runs, predict at the targets, write
    fit.json, predictions.json, the plot and the report; print the prediction."""
    from ..fit import file_digest, fit_law
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
        for p, c in zip(preds, chin.predict(compute=targets)):
            p["optimal_params"], p["optimal_tokens"] = c["params"], c["tokens"]
            p["chinchilla_loss"], p["chinchilla_lower"], p["chinchilla_upper"] = c["loss"], c["lower"], c["upper"]
    atomic_write_json(out / "predictions.json", {"law": "compute", "predictions": preds})
    for w in fit.warnings:
        echo(f"warning: {w}")
    try:
        from ..plots import prediction_figure

        prediction_figure(fit, out / "prediction.png", targets=targets)
    except ImportError:  # plots land with the report; the sweep's numbers do not depend on them
        pass
    try:
        from ..report import write_report

        write_report(out, out / "report.md")
    except ImportError:
        pass
    b = fit.value("b")
    echo(f"\nfit: L = {fit.value('a'):.4g} * C^{b:.4f} + {fit.value('c'):.4f}  "
         f"({fit.n_points} frontier points, {fit.data.compute.min():.3g}..{fit.max_compute:.3g} FLOPs)")
    echo(f"{'target FLOPs':>13} {'x largest':>9} {'loss':>7}  90% interval        N* (params)  D* (tokens)")
    for p in preds:
        n_opt = f"{p['optimal_params']:.3g}" if p.get("optimal_params") else "-"
        d_opt = f"{p['optimal_tokens']:.3g}" if p.get("optimal_tokens") else "-"
        band = f"[{p['lower']:.4f}, {p['upper']:.4f}]" if p["lower"] else "-"
        echo(f"{p['compute']:>13.3g} {p['extrapolation']:>9,.0f} {p['loss']:>7.4f}  {band:<19} {n_opt:>11}  {d_opt:>11}")
    echo(f"wrote {out / 'fit.json'}, {out / 'predictions.json'}"
         + (f", {out / 'prediction.png'}" if (out / "prediction.png").exists() else "")
         + (f", {out / 'report.md'}" if (out / "report.md").exists() else ""))
    return {"fit": fit, "chinchilla": chin, "predictions": preds}
