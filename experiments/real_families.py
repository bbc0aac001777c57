"""Backtest on real scaling families, through the product's own command line.

Every family in ../shared/data/scaling/ and ../shared/data/chinchilla_epoch/ is split "fit the small runs, predict
the runs 10x-300x beyond": for each k in --splits, the runs whose (group) compute is at most C_max / k are written
to a run table and fitted with `scalepredict fit`, and the targets (the per-budget best run of IsoFLOP sweeps, every
run of over-training sweeps) whose compute lies 10x to 300x beyond the largest fitted compute are predicted with
`scalepredict predict --at`. Per family: mean absolute relative error, coverage of the 90% intervals, median
interval half-width relative to the prediction; then one summary line, and the same for a plain reference fit
(scipy L-BFGS-B, Huber on log loss, a small start grid, the compute law on each budget's minimum).

    python experiments/real_families.py [--law auto] [--splits 30,100,300] [--json out.json] [--figure FILE.png]
        [--checkpoints]   (every checkpoint into the fit, where a family has curves: Pythia's)
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
DATA = ROOT.parent / "shared" / "data"
LOW, HIGH = 10.0, 300.0  # targets lie this many times beyond the largest fitted compute


def _f(x):
    return float(x)


def families(data: Path) -> dict[str, dict]:
    """name -> {"kind": "isoflop" | "overtrain", "rows": [run records]}."""
    out = {}
    path = data / "chinchilla_epoch" / "svg_extracted_data.csv"
    if path.exists():
        rows = []
        for i, r in enumerate(csv.DictReader(open(path))):
            n, c = _f(r["Model Size"]), _f(r["Training FLOP"])
            rows.append({"run": f"p{i}", "params": n, "tokens": c / (6 * n), "compute": c, "loss": _f(r["loss"])})
        out["chinchilla"] = {"kind": "isoflop", "rows": rows}
    path = data / "scaling" / "porian2024_owt2_isoflops.csv"
    if path.exists():
        by = {}
        for i, r in enumerate(csv.DictReader(open(path))):
            by.setdefault(r["config"], []).append(
                {"run": f"r{i}", "budget": _f(r["budget"]), "params": _f(r["params"]), "tokens": _f(r["tokens"]),
                 "compute": _f(r["compute"]), "loss": _f(r["loss"])})
        for cfg, rows in by.items():
            name = "porian/" + "/".join(cfg.split("/")[1:])
            out[name] = {"kind": "isoflop", "rows": rows}
    path = data / "scaling" / "gadre2024_rpj_rw.csv"
    if path.exists():
        by = {}
        for r in csv.DictReader(open(path)):
            by.setdefault(r["dataset"], []).append(
                {"run": r["run"], "params": _f(r["params"]), "tokens": _f(r["tokens"]), "compute": _f(r["compute"]),
                 "loss": _f(r["loss_c4_val"])})
        for ds, rows in by.items():
            out[f"gadre/{ds}"] = {"kind": "overtrain", "rows": rows}
    path = data / "scaling" / "pythia_zero_shot.csv"
    if path.exists():  # no pretraining loss in the file: LAMBADA's log-perplexity at each model's last step
        last = {}
        for r in csv.DictReader(open(path)):
            key = (r["model"], r["data"])
            if key not in last or int(r["step"]) > int(last[key]["step"]):
                last[key] = r
        for ds in sorted({k[1] for k in last}):
            rows = [{"run": m, "params": _f(r["params"]), "tokens": _f(r["tokens"]),
                     "compute": 6 * _f(r["params"]) * _f(r["tokens"]), "loss": math.log(_f(r["lambada_openai_ppl"]))}
                    for (m, d), r in last.items() if d == ds]
            # eight sizes on one data budget: fitted up to the 410M model, predicting 6.9B
            # and 12B, 17x-29x beyond (the 30x-300x splits leave fewer than three fitted sizes)
            out[f"pythia/{ds} (LAMBADA log-ppl)"] = {"kind": "overtrain", "rows": rows, "task_loss": True,
                                                      "splits": (12.0,), "curves": pythia_curves(path, ds)}
    return out


PYTHIA_STEPS, PYTHIA_WARMUP = 143_000, 1_430  # Biderman et al. 2023: warmup over 1% of the steps, then cosine
# decay to 10% of the peak LR


def pythia_curves(path: Path, data: str) -> dict:
    """Each Pythia model's LAMBADA log-perplexity at every checkpoint, with the LR of its schedule there:
    run -> [(step, tokens, loss, lr)]."""
    from scalepredict.core import schedules

    lr = schedules.build("cosine", PYTHIA_STEPS, warmup=PYTHIA_WARMUP, final=0.1)
    out = {}
    for r in csv.DictReader(open(path)):
        step = int(r["step"])
        if r["data"] == data and step >= 1:
            out.setdefault(r["model"], []).append((step, _f(r["tokens"]), math.log(_f(r["lambada_openai_ppl"])),
                                                   float(lr[min(step, PYTHIA_STEPS) - 1])))
    return {m: sorted(v) for m, v in out.items()}


def transferred_floors(fams: dict, tmp: Path) -> dict:
    """family -> the median compute-law floor c of the other porian validation-loss families, each fitted on every
    one of its runs."""
    related = [k for k in fams if k.startswith("porian/") and k.endswith("val-loss")]
    own = {}
    for k in related:
        _write(tmp / "all.csv", fams[k]["rows"])
        fit = json.loads(_cli("fit", tmp / "all.csv", "--law", "compute", "-o", tmp / "all.json", "--json"))
        own[k] = fit["params"]["c"]["value"]
        print(f"floor of {k}: {own[k]:.4f}", file=sys.stderr)
    return {k: float(np.median([own[o] for o in related if o != k])) for k in related}


def write_curves(folder: Path, fitted, curves: dict) -> None:
    """The fitted runs' curves as scalepredict run logs beside their table (runs/<run>/log.jsonl), where
    `fit --checkpoints` reads them."""
    for r in fitted:
        if r["run"] in curves:
            log = folder / "runs" / r["run"] / "log.jsonl"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(json.dumps({"step": s, "tokens": t, "val_loss": v, "lr": lr}) + "\n"
                                   for s, t, v, lr in curves[r["run"]]))


def groups(rows, tol=0.05):
    """IsoFLOP groups: by budget where given, else by compute within `tol` dex."""
    if all("budget" in r for r in rows):
        keys = sorted({r["budget"] for r in rows})
        return [[r for r in rows if r["budget"] == k] for k in keys]
    out = []
    for r in sorted(rows, key=lambda r: r["compute"]):
        if out and math.log10(r["compute"]) - math.log10(out[-1][0]["compute"]) < tol:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def group_compute(g):
    return float(np.exp(np.mean(np.log([r.get("budget", r["compute"]) for r in g]))))


def split(family: dict, k: float):
    """(fitted runs, targets) for C <= C_max / k, or None where fewer than 3 groups are fitted or no target is
    10x-300x beyond."""
    gs = groups(family["rows"])
    c_max = max(group_compute(g) for g in gs)
    fitted = [g for g in gs if group_compute(g) <= c_max / k * (1 + 1e-9)]
    if len(fitted) < 3:
        return None
    top = max(group_compute(g) for g in fitted)
    targets = []
    for g in gs:
        c = group_compute(g)
        if LOW * top * (1 - 1e-9) <= c <= HIGH * top * (1 + 1e-9):
            if family["kind"] == "isoflop":
                best = dict(min(g, key=lambda r: r["loss"]))
                best["compute"] = c
                targets.append(best)
            else:
                targets += g
    if not targets:
        return None
    return [r for g in fitted for r in g], targets


def _write(path: Path, rows):
    cols = ["run", "compute", "params", "tokens", "loss"] + (["budget"] if all("budget" in r for r in rows) else [])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])


def _cli(*args):
    r = subprocess.run([sys.executable, "-m", "scalepredict.cli", *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"scalepredict {' '.join(map(str, args))}: {r.stderr.strip()}")
    return r.stdout


def product(fitted, targets, tmp: Path, law: str, extra=(), curves=None):
    """Predictions of `scalepredict fit` + `scalepredict predict --at`: (loss, lower, upper) per target. With
    `curves` (run -> its checkpoints), the fit takes every checkpoint too (`fit --checkpoints`)."""
    tmp = Path(tempfile.mkdtemp(dir=tmp))
    _write(tmp / "fit.csv", fitted)
    if curves:
        write_curves(tmp, fitted, curves)
        extra = [*extra, "--checkpoints"]
    _write(tmp / "targets.csv", targets)
    _cli("fit", tmp / "fit.csv", "--law", law, "-o", tmp / "fit.json", *extra)
    preds = json.loads(_cli("predict", tmp / "fit.json", "--at", tmp / "targets.csv", "--json"))["predictions"]
    return [(p["loss"], p["lower"], p["upper"]) for p in preds]


def reference(fitted, targets):
    """The plain reference: L = a C^b + c by scipy's L-BFGS-B on each group's minimum loss, Huber (delta 1e-3) on log
    loss, from a small grid of starts; no interval."""
    from scipy.optimize import minimize

    pts = [(group_compute(g), min(r["loss"] for r in g)) for g in groups(fitted)]
    x = np.log([c for c, _ in pts])
    y = np.log([l for _, l in pts])

    def objective(t):
        log_a, b, c = t
        pred = np.logaddexp(log_a + b * x, np.log(max(c, 1e-12)))
        r = pred - y
        d = 1e-3
        return float(np.sum(np.where(np.abs(r) <= d, 0.5 * r * r, d * (np.abs(r) - 0.5 * d))))

    best = None
    for b0 in (-0.05, -0.1, -0.2, -0.4):
        for frac in (0.0, 0.5, 0.9):
            c0 = frac * math.exp(y.min())
            a0 = float(np.median(np.log(np.maximum(np.exp(y) - c0, 1e-9)) - b0 * x))
            res = minimize(objective, [a0, b0, c0], method="L-BFGS-B",
                           bounds=[(-50, 200), (-3, 0), (0, math.exp(y.min()))])
            if best is None or res.fun < best.fun:
                best = res
    log_a, b, c = best.x
    return [math.exp(log_a) * t["compute"] ** b + c for t in targets]


def score(preds, targets):
    errs, cov, half = [], [], []
    for (p, lo, hi), t in zip(preds, targets):
        errs.append(abs(p / t["loss"] - 1))
        if lo is not None:
            cov.append(lo <= t["loss"] <= hi)
            half.append((hi - lo) / 2 / p)
    return {"n": len(targets), "mape": float(np.mean(errs)),
            "coverage": float(np.mean(cov)) if cov else None, "half_width": float(np.median(half)) if half else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--law", default="auto")
    ap.add_argument("--splits", default="30,100,300")
    ap.add_argument("--fit-args", default="", help="extra arguments for `scalepredict fit`")
    ap.add_argument("--only", help="the families whose name contains this")
    ap.add_argument("--transfer-floor", action="store_true",
                    help="fit each porian validation-loss family with --floor at the median floor of the compute "
                         "law fitted on every run of each other one (same data, same tokenizer: Brandfonbrener et "
                         "al. 2024's loss-to-loss transfer at its simplest, a shared irreducible loss)")
    ap.add_argument("--checkpoints", action="store_true",
                    help="fit every checkpoint too where a family has curves (`fit --checkpoints`: Pythia)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--replot", type=Path, help="redraw --figure from a --json file of an earlier run")
    args = ap.parse_args()
    if args.replot:
        figure(json.loads(args.replot.read_text())["cases"], args.figure)
        return
    fams = {k: v for k, v in families(args.data).items() if not args.only or args.only in k}
    if not fams:
        sys.exit(f"no families under {args.data}")
    ks = [float(k) for k in args.splits.split(",")]
    results, all_cases = [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        floors = transferred_floors(families(args.data), tmp) if args.transfer_floor else {}
        for name, fam in fams.items():
            cases = []
            for k in fam.get("splits", ks):
                s = split(fam, k)
                if s is None:
                    continue
                fitted, targets = s
                try:
                    extra = args.fit_args.split() + (["--floor", f"{floors[name]:.6g}"] if name in floors else [])
                    preds = product(fitted, targets, tmp, args.law, extra,
                                    fam.get("curves") if args.checkpoints else None)
                except RuntimeError as e:
                    print(f"{name} k={k:g}: {e}", file=sys.stderr)
                    preds = [(float("nan"), None, None)] * len(targets)
                ref = reference(fitted, targets)
                top = max(r["compute"] for r in fitted)
                for (p, lo, hi), rp, t in zip(preds, ref, targets):
                    cases.append({"family": name, "k": k, "target": t["run"], "compute": t["compute"],
                                  "extrapolation": t["compute"] / top, "actual": t["loss"], "predicted": p,
                                  "lower": lo, "upper": hi, "reference": rp})
            if not cases:
                continue
            mine = score([(c["predicted"], c["lower"], c["upper"]) for c in cases], [{"loss": c["actual"]} for c in cases])
            ref = score([(c["reference"], None, None) for c in cases], [{"loss": c["actual"]} for c in cases])
            results.append({"family": name, **mine, "reference_mape": ref["mape"],
                            "task_loss": bool(fam.get("task_loss"))})
            for c in cases:
                c["task_loss"] = bool(fam.get("task_loss"))
            all_cases += cases
    print(f"{'family':<40} {'n':>3} {'|err|':>7} {'ref |err|':>9} {'cover90':>8} {'half-width':>10}")
    for r in results:
        cov = "-" if r["coverage"] is None else f"{r['coverage']:.0%}"
        hw = "-" if r["half_width"] is None else f"{r['half_width']:.2%}"
        print(f"{r['family']:<40} {r['n']:>3} {r['mape']:>7.2%} {r['reference_mape']:>9.2%} {cov:>8} {hw:>10}")
    lm = [r for r in results if not r["task_loss"]]
    if lm:
        summarize(f"--law {args.law}, loss families", lm, [c for c in all_cases if not c["task_loss"]])
    if len(lm) < len(results):
        summarize(f"--law {args.law}, with the task-loss families", results, all_cases)
    if args.json:
        args.json.write_text(json.dumps({"law": args.law, "families": results, "cases": all_cases}, indent=1))
    if args.figure:
        figure(all_cases, args.figure)


def summarize(label, results, cases):
    tot = score([(c["predicted"], c["lower"], c["upper"]) for c in cases], [{"loss": c["actual"]} for c in cases])
    ref = score([(c["reference"], None, None) for c in cases], [{"loss": c["actual"]} for c in cases])
    fam_mape = np.mean([r["mape"] for r in results])
    wins = sum(r["mape"] < r["reference_mape"] for r in results)
    worst = min((r["coverage"] for r in results if r["coverage"] is not None), default=float("nan"))
    print(f"summary ({label}): {len(cases)} targets in {len(results)} families; mean |error| "
          f"{tot['mape']:.2%} over targets, {fam_mape:.2%} over families (reference {ref['mape']:.2%}); better than the "
          f"reference on {wins}/{len(results)} families; 90% coverage {tot['coverage']:.0%} (lowest family "
          f"{worst:.0%}); median half-width {tot['half_width']:.2%}")


def figure(cases, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = sorted({c["family"] for c in cases})
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    markers = "osD^v<>ph*"
    for i, f in enumerate(fams):
        cs = [c for c in cases if c["family"] == f]
        x = [c["extrapolation"] for c in cs]
        y = [(c["predicted"] / c["actual"] - 1) * 100 for c in cs]
        lo = [(c["predicted"] - c["lower"]) / c["actual"] * 100 if c["lower"] else 0 for c in cs]
        hi = [(c["upper"] - c["predicted"]) / c["actual"] * 100 if c["upper"] else 0 for c in cs]
        ax.errorbar(x, y, yerr=[lo, hi], fmt=markers[i % len(markers)], ms=4, capsize=2, lw=0.7, label=f,
                    color=str(round(0.1 + 0.6 * i / max(1, len(fams) - 1), 2)))
    ax.axhline(0, color="#5b6b7b", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("extrapolation (target compute / largest fitted compute)")
    ax.set_ylabel("prediction - actual (% of actual)")
    ax.set_title("real scaling families: held-out predictions with 90% intervals")
    ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.savefig(path, dpi=150, bbox_inches="tight")


if __name__ == "__main__":
    main()
