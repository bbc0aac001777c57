"""Seed-to-seed noise of one planned run, anywhere in a sweep (the sweep itself repeats only the compute-optimal
guess at its repeat_at budgets).

Trains the run `--run` of the config's plan with seeds 0..N-1 (same shape, tokens, LR and schedule; the seed sets
the initialization and the batch order), one one-thread run per core, and prints the losses and their relative
standard deviation. Seed 0 is the sweep's own run: with one thread it reproduces the sweep's loss bit for bit.

    python experiments/seed_noise.py [--config cpu-demo] [--run b8-L1d40-s0] [--seeds 4]

On 2 CPU cores the default (the demo's frontier model at 5.6e11 FLOPs) takes about 2 minutes.
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np


def train_seed(config: str, run: str, seed: int, folder: str) -> tuple[str, float]:
    import torch

    from scalepredict.config import load_config
    from scalepredict.plan import plan
    from scalepredict.train.data import load_corpus
    from scalepredict.train.trainer import train_run

    torch.set_num_threads(1)
    cfg = load_config(config)
    spec = next((s for s in plan(cfg) if s.id == run), None)
    if spec is None:
        raise SystemExit(f"{run}: not a run of {config}'s plan")
    spec = replace(spec, seed=seed, id=f"{run.rsplit('-s', 1)[0]}-s{seed}")
    rec = train_run(spec, load_corpus(cfg.data.__dict__), cfg.train, Path(folder) / spec.id, "cpu",
                    cfg.data.val_tokens)
    return spec.id, rec.get("loss", float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="cpu-demo")
    ap.add_argument("--run", default="b8-L1d40-s0")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.jobs) as ex:
        futures = [ex.submit(train_seed, args.config, args.run, s, tmp) for s in range(args.seeds)]
        losses = []
        for f in futures:
            rid, loss = f.result()
            losses.append(loss)
            print(f"{rid}: {loss:.4f}")
    x = np.array(losses)
    print(f"{args.run} over {len(x)} seeds: mean {x.mean():.4f}, range {x.min():.4f}..{x.max():.4f}, "
          f"relative std {x.std(ddof=1) / x.mean():.2%}")


if __name__ == "__main__":
    main()
