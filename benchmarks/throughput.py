"""Training throughput of the largest cpu-demo model against fp32 matmul throughput on the same machine.

Prints (or with --json emits) {"train_flops_per_s", "matmul_flops_per_s", "ratio"}: FLOP/s counted with the
exact accounting of scalepredict/flops.py over timed steps of the sweep's own training step (trainer.train_step:
clipping and AdamW included), divided by the FLOP/s of a square fp32
matmul measured in the same process. On CUDA (--device cuda) it also reports MFU against the bf16 peak you give
(--peak, default 989e12 for an H100 SXM) for a model of --params (default 50M). On CPU it also prints the FLOP/s
of the model's own matmul shapes alone: the ceiling a model this narrow can reach here.

    python benchmarks/throughput.py [--config cpu-demo] [--steps 20] [--jobs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from scalepredict.flops import Shape
from scalepredict.config import TrainConfig, load_config
from scalepredict.plan import plan, shape_for
from scalepredict.train.trainer import time_train_steps


def matmul_flops(device, n=1024, reps=20, dtype=torch.float32):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t)


def model_matmul_flops(shape: Shape, tokens: int, reps: int = 30):
    """fp32 FLOP/s of the model's own matmuls (qkv, proj, MLP up/down, head) at `tokens` rows: the ceiling that a
    model this narrow can reach on this machine, whatever the rest of the step costs."""
    d, v = shape.d_model, shape.vocab_size
    dims = [(d, 3 * d), (d, d), (d, shape.mlp_ratio * d), (shape.mlp_ratio * d, d), (d, v)]
    mats = [(torch.randn(tokens, k), torch.randn(k, n)) for k, n in dims]
    flops = sum(2 * tokens * k * n for k, n in dims)
    for a, b in mats:
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        for a, b in mats:
            a @ b
    return flops * reps / (time.perf_counter() - t)


def train_flops(shape: Shape, batch: int, steps: int, device: str, compile_: bool = False):
    """FLOP/s of the sweep's own training step (trainer.train_step: autocast, clipping, fused AdamW) on random
    tokens, batched the way the trainer batches them."""
    data = np.random.default_rng(0).integers(0, shape.vocab_size, 1 << 20).astype(np.uint16)
    return time_train_steps(shape, batch, steps, device, data, TrainConfig(), warmup=3, compile_=compile_)


def _one_thread_train_flops(args):
    torch.set_num_threads(1)
    return train_flops(*args)


def parallel_train_flops(shape: Shape, batch: int, steps: int, jobs: int) -> float:
    """Summed FLOP/s of `jobs` one-thread processes training the model at once (`scalepredict sweep --jobs`)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs) as pool:
        return sum(pool.map(_one_thread_train_flops, [(shape, batch, steps, "cpu")] * jobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="cpu-demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--params", type=float, default=50e6)
    ap.add_argument("--peak", type=float, default=989e12)
    ap.add_argument("--jobs", type=int, default=2, help="CPU: also time this many one-thread runs at once (0: skip)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = load_config(args.config)
    spec = max(plan(cfg), key=lambda s: s.shape.params)
    mm = matmul_flops(args.device)
    tf = train_flops(spec.shape, spec.batch_size, args.steps, args.device)
    own = model_matmul_flops(spec.shape, spec.batch_tokens) if args.device == "cpu" else None
    out = {"train_flops_per_s": tf, "matmul_flops_per_s": mm, "ratio": tf / mm, "model_matmul_flops_per_s": own,
           "model": spec.shape.as_dict(), "batch_size": spec.batch_size, "device": args.device,
           "threads": torch.get_num_threads()}
    if args.device == "cpu" and args.jobs > 1:
        par = parallel_train_flops(spec.shape, spec.batch_size, args.steps * 2, args.jobs)
        out.update({"parallel_jobs": args.jobs, "parallel_train_flops_per_s": par, "parallel_ratio": par / mm})
    if args.device == "cuda":
        shape = shape_for(args.params, 50304, cfg.model.__class__(seq_len=1024, aspect=64, head_dim=64))
        big = train_flops(shape, 16, args.steps, "cuda", compile_=True)
        out.update({"mfu_model_params": shape.params, "mfu_train_flops_per_s": big, "mfu": big / args.peak})
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"largest {args.config} model: {spec.shape.params:,} params, batch {spec.batch_size}x{spec.shape.seq_len}")
        print(f"training {tf / 1e9:.1f} GFLOP/s vs fp32 matmul {mm / 1e9:.1f} GFLOP/s: ratio {tf / mm:.2f} (target 0.7)")
        if own:
            print(f"the model's own matmul shapes ({spec.batch_tokens} x {spec.shape.d_model}-wide) alone run at "
                  f"{own / 1e9:.1f} GFLOP/s ({own / mm:.2f} of the square matmul): training reaches "
                  f"{tf / own:.2f} of that ceiling")
        if "parallel_ratio" in out:
            par = out["parallel_train_flops_per_s"]
            print(f"{args.jobs} one-thread runs at once (sweep --jobs {args.jobs}): {par / 1e9:.1f} GFLOP/s together: "
                  f"ratio {out['parallel_ratio']:.2f}")
        if "mfu" in out:
            print(f"{out['mfu_model_params']:,}-param model: {out['mfu_train_flops_per_s'] / 1e12:.1f} TFLOP/s, "
                  f"MFU {out['mfu']:.1%} of {args.peak / 1e12:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
