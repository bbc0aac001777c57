"""Which device the runs train on and how many at once: CUDA or CPU, the GPUs this process may use
(CUDA_VISIBLE_DEVICES), one GPU per worker, and `--jobs auto`."""

from __future__ import annotations

import os

from ..errors import InputError


def pick_device(name: str) -> str:
    """auto: CUDA where torch sees a GPU, else the CPU; cuda: an InputError where there is none."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available to torch (a CPU build, or no GPU)")
    return name


def cluster_device(name: str, cfg) -> str:
    """The device of runs that train on a cluster's nodes: cuda where asked for ([train] device, --device) or where
    [launcher] gpus_per_run asks for GPUs; with auto and no GPUs asked for, what this machine has."""
    if name in ("cuda", "cpu"):
        return name
    if cfg.launcher.gpus_per_run:
        return "cuda"
    if cfg.launcher.gpus_per_run == 0:
        return "cpu"
    return pick_device("auto")


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
