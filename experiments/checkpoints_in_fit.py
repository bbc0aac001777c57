"""Every checkpoint into the scaling fit, against final losses only, on a finished CPU sweep.

Each run of a scalepredict sweep logs its training loss every 10 steps (and its validation loss every
`eval_interval` steps where the config sets one). With `--checkpoints`, each run's checkpoints at 1/4, 1/2 and 3/4
of its steps become the finals of shorter runs through the multi-power law of its curve under its planned schedule
(scalepredict/annealed.py), and the law average weighs every law with and without them by its nested backtest.
Printed, for the same sweep and the same targets:

- the backtest `scalepredict backtest runs.jsonl --factors 3,10,30` (for each k, fit the runs below C_max / k,
  predict the larger budgets' best runs): final losses only; with --checkpoints from the validation curves (where
  logged) and from the training-loss curves (each scaled to its run's final validation loss); and the raw
  checkpoints as finals (--intermediate, on the training loss: the reference the annealing corrects);
- the annealed checkpoints themselves, against the real shorter runs of the same model (the sweep trains most sizes
  at several budgets): each run's checkpoint at the share of its tokens that a shorter run of its size trained,
  annealed (its multi-power law fitted with the other runs of its size that cost no more than it, never the
  shorter run itself), against that run's final validation loss, and the raw checkpoint likewise;
- the full fit's weight on the '+ checkpoints' laws and its prediction of the CPU validation's trained 1e14 FLOP
  frontier (figures/cpu-validate.json), with and without checkpoints.

    scalepredict sweep --config cpu-demo --out sweeps/cpu-demo    # or a copy with [train] eval_interval = 20
    python experiments/checkpoints_in_fit.py --sweep sweeps/cpu-demo
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from scalepredict.annealed import annealed_losses
from scalepredict.forecast import curves_of
from scalepredict.ingest import read_logs

ROOT = Path(__file__).resolve().parents[1]


def cli(*args) -> dict:
    r = subprocess.run([sys.executable, "-m", "scalepredict", *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"scalepredict {' '.join(map(str, args))}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def has_val_curves(sweep: Path) -> bool:
    log = next(iter(sorted((sweep / "runs").glob("*/log.jsonl"))), None)
    return log is not None and sum('"val_loss"' in line for line in log.read_text().splitlines()) > 6


def line(label: str, res: dict) -> str:
    cases = res["cases"]
    cov = [c["covered"] for c in cases if c.get("covered") is not None]
    detail = ", ".join(f"{c['rel_error']:+.1%} at {c['extrapolation']:.1f}x" for c in cases)
    return f"{label:<52} mean |error| {res['mape']:.2%} ({detail}); 90% coverage {sum(cov)}/{len(cov)}"


@functools.lru_cache(maxsize=None)  # each run's log read once, though it serves in many pairs
def curve(sweep: Path, run: str, metric: str):
    log = sweep / "runs" / run / "log.jsonl"
    return [c for p, k, cs in read_logs([log]) for c in curves_of(p, k, cs, metric)][0]


def pairs(sweep: Path, metric: str, rows: list[dict]) -> str:
    """Mean |error| of annealed and raw checkpoints against the finals of shorter runs of the same model."""
    ann, raw = [], []
    for long in rows:
        for short in rows:
            f = short["tokens"] / long["tokens"]
            if short["params"] != long["params"] or not 0.2 <= f < 1:
                continue
            c = curve(sweep, long["run"], metric)
            comp = [curve(sweep, o["run"], metric) for o in rows
                    if o["params"] == long["params"] and o["run"] not in (long["run"], short["run"])
                    and o["compute"] <= long["compute"]]
            (s, pseudo), = annealed_losses(c, long["loss"], (f,), companions=comp)
            end = float(np.mean(c.loss[-10:])) if metric == "train_loss" else float(c.loss[-1])  # as the run's
            at = float(np.interp(s, c.steps, c.loss)) * long["loss"] / end  # final, scaled like the annealed ones
            ann.append(pseudo / short["loss"] - 1)
            raw.append(at / short["loss"] - 1)
    return (f"{metric} curves, {len(ann)} pairs: annealed {np.mean(np.abs(ann)):.2%} mean |error| (mean "
            f"{np.mean(ann):+.2%}); raw checkpoint {np.mean(np.abs(raw)):.2%} (mean {np.mean(raw):+.2%})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", type=Path, default=ROOT / "sweeps/cpu-demo")
    ap.add_argument("--factors", default="3,10,30",
                    help="comma-separated k: fit below C_max / k (the report's factors that a demo sweep's span allows)")
    args = ap.parse_args()
    table = args.sweep / "runs.jsonl"
    bt = ["backtest", table, "--factors", args.factors, "--json"]
    variants = [("final losses only", ["--no-checkpoints"]),
                ("+ checkpoints (training-loss curves)", ["--checkpoints", "--metric", "train_loss"])]
    if has_val_curves(args.sweep):
        variants.insert(1, ("+ checkpoints (validation curves)", ["--checkpoints", "--metric", "val_loss"]))
    print(f"{args.sweep}: backtest k={args.factors} (fit below C_max/k, predict the larger budgets' best runs)")
    for label, extra in variants:
        print(line(label, cli(*bt, *extra)))
    rows = [json.loads(x) for x in table.read_text().splitlines() if x.strip()]
    print(f"\nannealed checkpoints against the finals of shorter runs of the same model:")
    print(pairs(args.sweep, "val_loss" if has_val_curves(args.sweep) else "train_loss", rows))
    with tempfile.TemporaryDirectory() as d:
        meta = Path(d) / "meta.csv"
        with open(meta, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["run", "params", "tokens_per_step", "budget"])
            for r in rows:
                w.writerow([r["run"], r["params"], r["batch_tokens"], r["budget"]])
        logs = sorted(str(p) for p in (args.sweep / "runs").glob("*/log.jsonl"))
        ref = cli("backtest", *logs, "--metric", "train_loss", "--last-k", "10", "--run-meta", meta, "--factors",
                  args.factors, "--json", "--intermediate")
        print(line("raw checkpoints as finals (--intermediate, train loss)", ref))
    val = ROOT / "figures" / "cpu-validate.json"
    if val.exists():
        v = json.loads(val.read_text())
        print(f"\nthe full fit, predicting the CPU validation's trained frontier at {v['target_compute']:.3g} FLOPs "
              f"({v['actual']:.4f}):")
        with tempfile.TemporaryDirectory() as d:
            for label, extra in variants:
                fit = Path(d) / "fit.json"
                summary = cli("fit", table, "--out", fit, "--json", *extra)
                w = sum(c["weight"] for c in summary.get("candidates", []) if c.get("checkpoints"))
                p = cli("predict", fit, "--compute", v["target_compute"], "--json")["predictions"][0]
                err = p["loss"] / v["actual"] - 1
                inside = p["lower"] is not None and p["lower"] <= v["actual"] <= p["upper"]
                print(f"{label:<52} {p['loss']:.4f} [{p['lower']:.4f}, {p['upper']:.4f}]: {err:+.1%} "
                      f"({'covered' if inside else 'not covered'}); weight on '+ checkpoints' laws {w:.2f}")


if __name__ == "__main__":
    main()
