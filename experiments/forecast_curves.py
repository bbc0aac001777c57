"""Forecasting a run's final validation loss from a prefix of its curve, the schedule known: every law of the curve
on the development curves, and runs of one model under three schedules.

Development curves: llm.c's GPT-2 124M on 10B tokens (../shared/data: validation every 250 steps, the LR logged at
every step), llm.c's GPT-2 350M on 31B tokens (validation every 250 steps; its LR not logged: llm.c's cosine schedule
as the 124M log shows it, over 60,000 steps), modded-nanogpt's 124M record (validation every 125 steps; its schedule,
constant then a linear decay over the last 1,450 of 5,100 steps, read from the source it prints), and CPU runs
trained here with the cpu-demo recipe (two model sizes, each under a cosine, a warmup-stable-decay and a constant
schedule, validation every 1/40 of the run; cached in --out). For each curve and prefix (the first 25% and 50% of its
steps), each law is fitted on the prefix and predicts the last logged validation loss; printed: the error, whether
the 90% interval covers, whether the forecast warned that the run's decay lies beyond the curve fitted, and the mean
over curves. Then across schedules: each CPU model's cosine and constant curves fitted together predict its WSD run's
final loss.

    python experiments/forecast_curves.py [--out sweeps/forecast-dev] [--json figures/forecast-curves.json]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from scalepredict.textfmt import band
from scalepredict.core import schedules
from scalepredict.core.curves import Segment, fit_curve
from scalepredict.forecast import RunCurve, forecast_run
from scalepredict.ingest import read_curves

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "logs"
PREFIXES = (0.25, 0.5)
LAWS = ("auto", "annealing", "multipower", "power")


def _read(path: Path):
    """A log's validation-loss curve and its curves."""
    _, curves = read_curves(path)
    return next(c for c in curves if c.metric == "val_loss"), curves


def real_curves() -> list[dict]:
    out = []
    p = DATA / "llmc" / "llmc_gpt2_124M_10B_main.log"
    if p.exists():
        val, curves = _read(p)
        lr = next(c for c in curves if c.metric == "lr")
        sched = np.zeros(max(lr.steps) + 1)
        sched[lr.steps] = lr.values
        out.append({"name": "llm.c GPT-2 124M (10B tokens)", "lr": sched, "steps": np.array(val.steps),
                    "loss": np.array(val.values)})
    p = DATA / "llmc" / "llmc_gpt2_350M_main.log"
    if p.exists():  # its LR is not logged: llm.c's schedule, as the 124M run above logs it (cosine to zero after
        # 700 warmup steps; build() matches that log within its printed precision), over this run's 60,000 steps
        val, _ = _read(p)
        sched = schedules.build("cosine", 60000, warmup=700, final=0.0)
        out.append({"name": "llm.c GPT-2 350M (31B tokens)", "lr": sched, "steps": np.array(val.steps),
                    "loss": np.array(val.values)})
    p = DATA / "modded_nanogpt" / "modded_nanogpt_124M_2024-10-14_ModernArch.txt"
    if p.exists():
        val, _ = _read(p)
        sched = schedules.build("wsd", 5100, warmup=0, final=0.0, decay=1450 / 5100)
        out.append({"name": "modded-nanogpt 124M (WSD)", "lr": sched, "steps": np.array(val.steps),
                    "loss": np.array(val.values)})
    return out


def cpu_curves(out: Path) -> list[dict]:
    """Two cpu-demo model sizes, each under cosine, WSD and constant schedules, with a validation loss every 1/40
    of the run (trained once, then read from --out)."""
    from scalepredict.config import load_config
    from scalepredict.plan import lr_at, plan
    from scalepredict.train.data import load_corpus
    from scalepredict.train.trainer import train_run

    cfg = load_config("cpu-demo")
    specs = plan(cfg)
    chosen = [max((s for s in specs if s.shape.n_layer == 1), key=lambda s: s.compute),
              max((s for s in specs if s.shape.n_layer == 2), key=lambda s: s.compute)]
    corpus = None
    curves = []
    for spec in chosen:
        for sched in ("cosine", "wsd", "constant"):
            t = replace(cfg.train, schedule=sched, eval_interval=max(1, spec.steps // 40))
            folder = out / f"{spec.id}-{sched}"
            if not (folder / "record.json").exists():
                corpus = corpus or load_corpus(cfg.data.__dict__)
                print(f"training {folder.name} ({spec.steps} steps)")
                train_run(spec, corpus, t, folder, "cpu", cfg.data.val_tokens)
            rows = [json.loads(l) for l in (folder / "log.jsonl").read_text().splitlines()]
            val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
            lr = np.array([lr_at(i, spec, t) for i in range(spec.steps)])
            curves.append({"name": f"CPU {spec.shape.params:,}-param model, {sched}", "lr": lr, "model": spec.id,
                           "schedule": sched, "steps": np.array([s for s, _ in val]),
                           "loss": np.array([v for _, v in val])})
    return curves


def forecast(curve: dict, prefix: float, law: str) -> dict:
    """The product's own forecast (forecast.forecast_run) of the curve's last logged loss from its prefix."""
    last = int(curve["steps"][-1])
    keep = curve["steps"] <= prefix * last
    run = RunCurve(curve["name"], "val_loss", curve["steps"][keep], curve["loss"][keep], None, None, curve["name"])
    p = forecast_run(run, schedules.Schedule(curve["lr"], "known"), at_step=last, law=law, n_boot=200)
    actual = float(curve["loss"][-1])
    return {"curve": curve["name"], "prefix": prefix, "law": law, "points": p["points"], "predicted": p["loss"],
            "lower": p["lower"], "upper": p["upper"], "actual": actual, "rel_error": p["loss"] / actual - 1,
            "covered": p["lower"] is not None and p["lower"] <= actual <= p["upper"],
            "warned": bool(p["warnings"])}


def across_schedules(curves: list[dict]) -> list[dict]:
    out = []
    for model in sorted({c["model"] for c in curves if "model" in c}):
        by = {c["schedule"]: c for c in curves if c.get("model") == model}
        segs = [Segment(by[s]["lr"], by[s]["steps"][by[s]["steps"] > 0], by[s]["loss"][by[s]["steps"] > 0], s)
                for s in ("cosine", "constant")]
        wsd = by["wsd"]
        for law in ("annealing", "multipower"):
            fit = fit_curve(segs, law, n_boot=200)
            p = fit.predict(wsd["lr"], [int(wsd["steps"][-1])])[0]
            out.append({"model": model, "law": law, "predicted": p["loss"], "lower": p["lower"], "upper": p["upper"],
                        "actual": float(wsd["loss"][-1]), "rel_error": p["loss"] / float(wsd["loss"][-1]) - 1})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "sweeps" / "forecast-dev")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-cpu", action="store_true", help="the real curves only")
    a = ap.parse_args()
    curves = real_curves() + ([] if a.no_cpu else cpu_curves(a.out))
    rows = [forecast(c, f, law) for c in curves for f in PREFIXES for law in LAWS]
    for r in rows:
        print(f"{r['curve'][:44]:<44} {r['prefix']:>4.0%} {r['law']:<10} {r['predicted']:.4f} "
              f"{band(r)} actual {r['actual']:.4f} {r['rel_error']:+.2%} "
              f"{'ok' if r['covered'] else 'MISS'}{' (warned: decay unseen)' if r['warned'] else ''}")
    summary = {}
    for law in LAWS:
        for f in PREFIXES:
            sel = [r for r in rows if r["law"] == law and r["prefix"] == f]
            mae = float(np.mean([abs(r["rel_error"]) for r in sel]))
            cov = float(np.mean([r["covered"] for r in sel]))
            summary[f"{law}@{f:g}"] = {"mae": mae, "coverage": cov, "n": len(sel)}
            print(f"{law:<10} from the first {f:.0%}: mean |error| {mae:.2%}, 90% coverage {cov:.0%} ({len(sel)})")
    cross = [] if a.no_cpu else across_schedules(curves)
    for r in cross:
        print(f"across schedules, {r['model']} {r['law']}: WSD end predicted {r['predicted']:.4f} "
              f"{band(r)} vs {r['actual']:.4f}: {r['rel_error']:+.2%}")
    if a.json:
        a.json.write_text(json.dumps({"forecasts": rows, "summary": summary, "across_schedules": cross},
                                     indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
