"""One run in a worker process (a --jobs worker, a submitit job, a SLURM job): its stop signals, its threads, the
corpus loaded once per process, and the run itself. The record goes back to the sweep process, which alone writes
runs.jsonl."""

from __future__ import annotations

import os
import signal
import sys

from ..files import SweepFolder
from .devices import pin_gpu
from .stopping import raise_if_stopped, request_stop

_WORKER: dict = {}  # per worker process: the corpus, loaded once; whether a run is in progress; orphaned


def init_worker(data: dict, threads: int, parent: int | None = None, gpus=None):
    """A --jobs worker: its threads, the corpus, and its stop signals. SIGINT or SIGTERM ends the run in progress on
    its next step boundary with a checkpoint (an idle worker just exits). On Linux the worker also asks for SIGHUP
    when the sweep process dies (killed with -9, say): it then stops the same way and exits, so that no worker
    trains on as an orphan in the folder that the next invocation resumes. `gpus`: a queue of GPUs (CUDA sweeps),
    one of which this worker takes for its own before torch starts."""
    pin_gpu(gpus)
    import torch

    from .data import load_corpus

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


def run_spec(spec, cfg, folder: SweepFolder, device: str, corpus, keep_state: bool = False, progress=None) -> dict:
    """One run, by the sweep's own trainer or by the user's command ([train] command): its record."""
    if cfg.train.command:
        from .data import token_files
        from .external import run_command

        paths = token_files(corpus, folder.path / "data") if uses_token_files(cfg.train.command) else {}
        return run_command(spec, cfg, folder.run(spec.id), device, paths)
    from .trainer import train_run

    return train_run(spec, corpus, cfg.train, folder.run(spec.id), device, cfg.data.val_tokens, progress,
                     keep_state=keep_state)


def run_in_worker(spec, cfg, out, device, keep_state=False, threads=None):
    """One run in a worker process (run_spec, the corpus loaded once per process). `threads`: torch's CPU threads
    in this process (a submitit job; --jobs workers set theirs at start)."""
    raise_if_stopped(f"{spec.id} not started")  # a run queued to this worker after a stop signal
    from .data import load_corpus

    if threads and not cfg.train.command:
        import torch

        torch.set_num_threads(threads)
    if "corpus" not in _WORKER:
        _WORKER["corpus"] = load_corpus(cfg.data.__dict__)
    _WORKER["busy"] = True
    try:
        return run_spec(spec, cfg, SweepFolder(out), device, _WORKER["corpus"], keep_state)
    finally:
        _WORKER["busy"] = False
        if _WORKER.get("orphan"):  # the sweep process is gone: a finished run's record.json is recovered on resume
            os._exit(129)


def uses_token_files(command: str) -> bool:
    """Whether a [train] command template names the corpus's token files."""
    return any(f"{{{k}" in command for k in ("train_bin", "val_bin", "data_dir"))
