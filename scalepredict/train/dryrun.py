"""The dry run: the plan with each run's estimated time, from a few timed training steps of the smallest and the
largest model on this device, and the warnings a plan deserves before anything trains."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..textfmt import duration


MAX_EPOCHS = 4.0  # Muennighoff et al. 2023: up to ~4 epochs of repeated data train about as well as fresh data
STEP_BUDGET = 3e10  # FLOPs of one timed step on a CPU (~0.3 s): a GPU ladder's large models are timed on a proxy
PROXY_SEQ = 128


def timing_shape(shape, batch_size: int, device: str):
    """The shape and batch a dry run times for `shape`: itself on a GPU; on a CPU, short steps (at most
    STEP_BUDGET FLOPs each), and for a model whose single sequence exceeds that (a GPU ladder's largest, planned on
    a laptop), a one-layer proxy of the same width on PROXY_SEQ tokens: its matmuls run at about the full model's
    rate, in a fraction of a second."""
    if device != "cpu":
        return shape, batch_size
    per_seq = shape.train_flops_per_token * shape.seq_len
    if per_seq <= STEP_BUDGET:
        return shape, min(batch_size, max(1, int(STEP_BUDGET // per_seq)))
    proxy = replace(shape, n_layer=1, seq_len=min(shape.seq_len, PROXY_SEQ))
    return proxy, max(1, min(batch_size, int(STEP_BUDGET // (proxy.train_flops_per_token * proxy.seq_len))))


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


def print_plan(specs, cfg, corpus, device, echo, jobs: int = 1):
    import torch

    from .trainer import time_train_steps

    flops_s, proxied = {}, []
    threads = torch.get_num_threads()
    if jobs > 1:  # time one run as each parallel worker runs it
        torch.set_num_threads(max(1, threads // jobs))
    try:
        for s in {specs[0].shape: specs[0], specs[-1].shape: specs[-1]}.values():
            shape, batch = timing_shape(s.shape, s.batch_size, device)
            if shape != s.shape:
                proxied.append(s.shape)
            steps, warmup = (6, 2) if device != "cpu" else (3, 1)
            flops_s[s.shape] = time_train_steps(shape, batch, steps, device, corpus.train, cfg.train, warmup=warmup)
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
    echo(f"total {sum(s.compute for s in specs):.3g} FLOPs; about {duration(total)} on {device}"
         + (f" with {jobs} runs at once" if jobs > 1 else "")
         + f" (measured {r0 / 1e9:.1f} to {r1 / 1e9:.1f} GFLOP/s per run, smallest to largest model)")
    if cfg.sweep.bracket:
        echo(f"bracketing: a set whose best run is its smallest or largest size gets up to {cfg.sweep.bracket} more "
             f"size(s) beyond that edge, decided as the sets finish (not in the total above)")
    for sh in proxied:
        echo(f"(the {sh.params:,}-parameter model was timed as a one-layer, {min(sh.seq_len, PROXY_SEQ)}-token proxy "
             f"of its width: this {device} cannot train it in seconds)")
    warning = repetition_warning(specs, corpus)
    if warning:
        echo(warning)
    return total
