"""Task accuracy on Pythia (../shared/data/scaling/pythia_zero_shot.csv): fit the models up to 1.4B, predict the
6.9B and 12B models' accuracy at their last step on each task, through `scalepredict fit-tasks`.

The intermediate feature is LAMBADA's log-perplexity (the file has no per-task loss), step 1 the compute law (every
Pythia model saw the same 300B tokens, so N and D cannot be told apart). Three ways, each printed per task (error in
points, whether the 90% interval covers) and summed up:
- default: step 2 on every checkpoint of the fitted models (`--checkpoints`, smoothed over 5, the first 10% left
  out, bootstrapped by model), the direct form weighed in by the holdout where it applies;
- finals: step 2 on the fitted models' final values only (the previous default);
- direct: the direct form alone (accuracy against -log10 compute; Krajewski et al. 2025).
Tasks flagged as not predictable are marked; the mean is printed over all tasks and over the predictable ones.

    python experiments/pythia_tasks.py [--json figures/pythia-tasks.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scaling" / "pythia_zero_shot.csv"
TASKS = {"lambada_openai_acc": 0.0, "piqa_acc": 0.5, "winogrande_acc": 0.5, "arc_easy_acc": 0.25,
         "arc_challenge_acc": 0.25, "sciq_acc": 0.25, "logiqa_acc": 0.25, "wsc_acc": 0.5, "mmlu_acc": 0.25}
FIT_MAX = 1.5e9  # parameters: fit up to the 1.4B models
TARGETS = ("6.9b", "12b")


def load(path: Path):
    rows = []
    for r in csv.DictReader(open(path)):
        rec = {"run": r["model"], "data": r["data"], "params": float(r["params"]), "step": int(r["step"]),
               "tokens": float(r["tokens"]), "logppl": math.log(float(r["lambada_openai_ppl"]))}
        rec.update({t: float(r[t]) for t in TASKS})
        rows.append(rec)
    return rows


def _write(path: Path, rows, cols):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])


def _fit(tmp: Path, runs, checkpoints, targets, extra=()):
    cols = ["run", "params", "tokens", "compute", "logppl", *TASKS]
    _write(tmp / "runs.csv", runs, cols)
    args = [sys.executable, "-m", "scalepredict.cli", "fit-tasks", str(tmp / "runs.csv"), "--task-loss", "logppl",
            "--law", "compute", "--bootstrap", "100", "--json", *extra]
    args += ["-m", "*_acc"]  # a pattern: a task at chance at every fitted scale is left out, and said
    for t in TASKS:
        args += ["--chance", f"{t}={TASKS[t]}"]
    args += ["-t", ",".join(f"{c:.6g}" for c in targets)]
    if checkpoints is not None:
        _write(tmp / "ck.csv", checkpoints, ["run", "step", "logppl", *TASKS])
        args += ["--checkpoints", str(tmp / "ck.csv")]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"fit-tasks failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if not a.data.exists():
        sys.exit(f"{a.data}: not found (the project's shared development data)")
    rows = load(a.data)
    cases = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for data in sorted({r["data"] for r in rows}):
            mine = [r for r in rows if r["data"] == data and r["step"] > 0]
            last = {}
            for r in mine:
                if r["run"] not in last or r["step"] > last[r["run"]]["step"]:
                    last[r["run"]] = r
            for r in last.values():
                r["compute"] = 6 * r["params"] * r["tokens"]
            fitted = [r for r in last.values() if r["params"] <= FIT_MAX]
            names = {r["run"] for r in fitted}
            targets = [r for r in last.values() if any(r["run"].startswith(f"pythia-{t}") for t in TARGETS)]
            ck = [r for r in mine if r["run"] in names]
            comp = [t["compute"] for t in targets]
            out = {"default": _fit(tmp, fitted, ck, comp)}
            if len(fitted) >= 5:  # step 2 on final values needs five runs
                out["finals"] = _fit(tmp, fitted, None, comp)
            for way, res in out.items():
                flags = {m["name"]: m["predictability"]["predictable"] for m in res["metrics"]}
                for p in res["predictions"]:
                    t = next(t for t in targets if abs(t["compute"] / p["compute"] - 1) < 1e-5)
                    actual = t[p["metric"]]
                    cases.append({"data": data, "target": t["run"], "task": p["metric"], "way": way,
                                  "predicted": p["value"], "lower": p["lower"], "upper": p["upper"], "actual": actual,
                                  "predictable": flags.get(p["metric"], True), "direct_weight": p["direct_weight"]})
                    if way == "default" and "direct" in p:
                        dp = p["direct"]
                        cases.append({"data": data, "target": t["run"], "task": p["metric"], "way": "direct",
                                      "predicted": dp["value"], "lower": dp["lower"], "upper": dp["upper"],
                                      "actual": actual, "predictable": flags.get(p["metric"], True)})
    print(f"{'task':<20} {'target':<22} {'actual':>7} " + " ".join(f"{w:>16}" for w in ("default", "finals",
                                                                                      "direct")))
    keys = sorted({(c["task"], c["target"]) for c in cases})
    for task, target in keys:
        by = {c["way"]: c for c in cases if c["task"] == task and c["target"] == target}
        flag = "" if by["default"]["predictable"] else " (flagged)"
        cells = []
        for w in ("default", "finals", "direct"):
            c = by.get(w)
            cells.append("-" if c is None else
                         f"{100 * (c['predicted'] - c['actual']):+6.1f}pt {'ok' if c['lower'] <= c['actual'] <= c['upper'] else 'MISS':>4}")
        print(f"{task:<20} {target:<22} {by['default']['actual']:>7.3f} " + " ".join(f"{x:>16}" for x in cells) + flag)
    summary = {}
    for w in ("default", "finals", "direct"):
        for label, sel in (("all tasks", lambda c: True), ("predictable", lambda c: c["predictable"])):
            cs = [c for c in cases if c["way"] == w and sel(c)]
            if not cs:
                continue
            err = np.array([abs(c["predicted"] - c["actual"]) for c in cs])
            cov = np.mean([c["lower"] <= c["actual"] <= c["upper"] for c in cs])
            summary[f"{w}/{label}"] = {"mae_points": 100 * float(err.mean()), "within_2": int((err <= 0.02).sum()),
                                       "n": len(cs), "coverage": float(cov)}
            print(f"{w:<8} {label:<12}: mean |error| {100 * err.mean():.2f} points over {len(cs)}, "
                  f"{int((err <= 0.02).sum())} within 2 points, 90% coverage {cov:.0%}")
    if a.json:
        a.json.write_text(json.dumps({"cases": cases, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
