"""One training run: AdamW, gradient clipping, the run's own LR schedule, bf16 autocast and torch.compile on CUDA
(fp32 on CPU), a log.jsonl of the run, a checkpoint to resume from, divergence detection, and the final
validation loss on a fixed set of held-out tokens. A stop signal (SIGINT, SIGTERM) inside `stop_at_step_boundary`
ends a run at the next step boundary with an exact checkpoint, so an interrupted run loses no step.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..config import TrainConfig
from ..errors import Stopped
from ..files import RunFolder, append_line, atomic_write_json, folder_lock
from ..plan import RunSpec, lr_at
from .data import Corpus, get_batch, val_windows
from .model import GPT
from .optim import AdamW
from .stopping import stop_signal

DIVERGENCE_FACTOR = 1.5  # a smoothed train loss this far above its best so far (after warmup) is a blow-up


def compiles(t: TrainConfig, device: str) -> bool:
    """[train] compile: on compiles on any device, off never, auto on CUDA only (on a CPU it costs about 20 s of
    compiling per shape for about 6% faster steps: benchmarks/throughput.py)."""
    return t.compile == "on" or (t.compile == "auto" and device == "cuda")


def _autocast(device):
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def evaluate(model, windows: np.ndarray, device: str, batch: int = 64) -> float:
    """Mean next-token loss (nats/token) over the fixed validation windows."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(windows[i : i + batch]).to(device)
        with _autocast(device):
            loss = model(w[:, :-1], w[:, 1:])
        n = w[:, 1:].numel()
        total += float(loss) * n
        count += n
    model.train()
    return total / count


def make_optimizer(model, lr: float, t: TrainConfig) -> AdamW:
    """AdamW with weight decay on matrices only, through torch's fused kernel (optim.py)."""
    return AdamW(model, lr, (t.beta1, t.beta2), t.weight_decay)


def train_step(model, train_model, opt, x, y, grad_clip: float, device: str):
    """One optimizer step (the sweep's and the throughput benchmark's): forward under autocast, backward,
    global-norm gradient clipping, AdamW. Returns the loss tensor (not synchronized)."""
    with _autocast(device):
        loss = train_model(x, y)
    opt.zero_grad()
    loss.backward()
    opt.step(grad_clip)
    return loss


def time_train_steps(shape, batch_size: int, steps: int, device: str, data: np.ndarray, t: TrainConfig,
                     warmup: int = 2, compile_: bool = False, lr: float = 1e-3) -> float:
    """Training FLOP/s of a fresh `shape` model over `steps` timed train_steps (after `warmup` untimed ones), on
    batches drawn from `data` the way a run draws them: the dry run's estimate and the throughput benchmark."""
    torch.manual_seed(0)
    model = GPT(shape).to(device)
    fwd = torch.compile(model) if compile_ else model
    opt = make_optimizer(model, lr, t)
    rng = np.random.default_rng(0)
    for i in range(steps + warmup):
        if i == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        batch = get_batch(data, batch_size, shape.seq_len, rng)
        x, y = (torch.from_numpy(a).to(device, non_blocking=True) for a in batch)
        train_step(model, fwd, opt, x, y, t.grad_clip, device)
    if device == "cuda":
        torch.cuda.synchronize()
    return shape.train_flops_per_token * batch_size * shape.seq_len * steps / (time.perf_counter() - t0)


def _save_state(path: Path, model, opt, step, extra):
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, **extra}, tmp)
    os.replace(tmp, path)


def train_run(spec: RunSpec, corpus: Corpus, t: TrainConfig, folder: RunFolder | Path, device: str,
              val_tokens: int, progress=None, keep_state: bool = False) -> dict:
    """Train one run to the end (resuming from its state.pt if present) and return its run-table record. The run
    folder is locked meanwhile: a second process on the same run (a SLURM job resubmitted by a rerun while the
    first still runs, an orphan worker) fails at once with an InputError naming the process that trains it."""
    folder = folder if isinstance(folder, RunFolder) else RunFolder(Path(folder))
    folder.path.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder.path):
        return _train_run_locked(spec, corpus, t, folder, device, val_tokens, progress, keep_state)


def _train_run_locked(spec, corpus, t, folder: RunFolder, device, val_tokens, progress, keep_state):
    state_path, log_path = folder.state, folder.log
    torch.manual_seed(spec.seed)
    model = GPT(spec.shape).to(device)
    opt = make_optimizer(model, spec.lr, t)
    rng = np.random.default_rng([spec.seed, spec.shape.n_layer, spec.shape.d_model, spec.steps])  # batch order
    step, wall, best, ema = _restore(folder, model, opt, rng, device)
    train_model = model
    if compiles(t, device):
        train_model = torch.compile(model)
    windows = val_windows(corpus.val, val_tokens, spec.shape.seq_len)
    status = "ok"
    last_ckpt = time.time()
    t0 = time.time() - wall
    tokens_per_step = spec.batch_tokens

    def checkpoint():
        _save_state(state_path, model, opt, step, {"wall": time.time() - t0, "best": best, "ema": ema,
                                                   "rng": rng.bit_generator.state,
                                                   "torch_rng": torch.get_rng_state()})

    while step < spec.steps:
        if stop_signal() is not None:  # a stop signal: end on this step boundary, resumable exactly from here
            if step:
                checkpoint()
            raise Stopped(stop_signal(), f"{spec.id} stopped at step {step} of {spec.steps}")
        opt.lr = lr = lr_at(step, spec, t)
        x, y = get_batch(corpus.train, spec.batch_size, spec.shape.seq_len, rng)
        x, y = torch.from_numpy(x).to(device, non_blocking=True), torch.from_numpy(y).to(device, non_blocking=True)
        loss = train_step(model, train_model, opt, x, y, t.grad_clip, device)
        step += 1
        if step % t.log_interval == 0 or step == spec.steps:
            lv = float(loss.detach())
            if not math.isfinite(lv):
                status = "diverged"
            else:
                ema = lv if ema is None else 0.9 * ema + 0.1 * lv
                if step > spec.warmup_steps:
                    best = min(best, ema)
                    if ema > DIVERGENCE_FACTOR * best:
                        status = "diverged"
            elapsed = time.time() - t0
            append_line(log_path, json.dumps({"step": step, "tokens": step * tokens_per_step, "train_loss": lv,
                                              "lr": lr, "seconds": round(elapsed, 3),
                                              "tokens_per_s": step * tokens_per_step / max(elapsed, 1e-9)}))
            if status != "ok":
                break
            if progress:
                progress(step, lv)
        if t.eval_interval and step % t.eval_interval == 0 and step < spec.steps:
            append_line(log_path, json.dumps({"step": step, "tokens": step * tokens_per_step,
                                              "val_loss": evaluate(model, windows, device)}))
        if time.time() - last_ckpt > t.checkpoint_seconds and step < spec.steps:
            checkpoint()
            last_ckpt = time.time()
    train_seconds = time.time() - t0
    val_loss = evaluate(model, windows, device) if status == "ok" else None
    if val_loss is not None and not math.isfinite(val_loss):
        status, val_loss = "diverged", None
    if val_loss is not None:
        append_line(log_path, json.dumps({"step": step, "tokens": step * tokens_per_step, "val_loss": val_loss}))
    rec = _record(spec, t, device, status, val_loss, step, int(windows.shape[0] * spec.shape.seq_len),
                  time.time() - t0, train_seconds)
    if val_loss is not None and corpus.tokens_per_byte:  # bits per byte: comparable across tokenizers
        rec["loss_bpb"] = val_loss / math.log(2) * corpus.tokens_per_byte
    # the finished record, before the checkpoint goes: a sweep that dies before appending it to runs.jsonl (a
    # killed parent, a lost SLURM waiter) recovers it from here on resume instead of training the run again
    atomic_write_json(folder.record, rec)
    if not keep_state:
        state_path.unlink(missing_ok=True)
    return rec


def _restore(folder: RunFolder, model, opt, rng, device) -> tuple:
    """(step, wall seconds, best smoothed loss, its EMA) of a run resumed from its checkpoint (the model, optimizer
    and both random streams restored, the log cut back to the checkpoint's step), or of a fresh run."""
    folder.record.unlink(missing_ok=True)
    if not folder.state.exists():
        folder.log.unlink(missing_ok=True)
        return 0, 0.0, math.inf, None
    state = torch.load(folder.state, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    if folder.log.exists():  # log lines written after the checkpoint will be written again
        lines = [l for l in folder.log.read_text().splitlines() if l.strip()]
        folder.log.write_text("".join(l + "\n" for l in lines if _step_of(l) <= state["step"]))
    return state["step"], state["wall"], state["best"], state["ema"]


def _record(spec, t, device, status, val_loss, step, val_tokens, wall, train_seconds) -> dict:
    """The finished run's record: its plan, its loss (where it did not diverge), and how it trained."""
    rec = spec.as_dict()
    rec.update({
        "loss": val_loss, "loss_kind": "val nats/token", "status": status, "final": True, "steps_done": step,
        "val_tokens": val_tokens, "schedule": t.schedule, "wall_seconds": round(wall, 2),
        "train_seconds": round(train_seconds, 2),
        "train_flops_per_s": spec.shape.train_flops_per_token * step * spec.batch_tokens / max(train_seconds, 1e-9),
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),  # CPU losses are bit-reproducible at a fixed thread count only
    })
    if status != "ok":
        rec.pop("loss")
    return rec


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62
