"""Does the prediction hold 100x beyond the largest fitted run? A CPU validation, trained end to end.

1. Sweep the cpu-validate config (budgets 1e10..1e12 FLOPs, 100x, three sizes each, three seeds at the smallest
   and the middle budget) and fit the compute law L(C) = a*C^b + c on its frontier (exactly what `scalepredict sweep` does).
2. Train, with the same recipe, the IsoFLOP set that the plan rule gives at --factor x the largest fitted budget
   (1e14 FLOPs by default), and take its frontier loss the same way (parabola vertex in log N, else the best size).
3. Compare: relative error of the prediction, whether the truth lies in the 90% interval, beside the
   seed-to-seed noise measured at the smallest budget.

Writes figures/cpu-validate.png (fit, interval and the held-out truth), figures/cpu-validate.json and
figures/cpu-validate.md (the result table). Both stages resume where an interrupted attempt stopped.

    python experiments/validate_cpu.py [--out sweeps/cpu-validate] [--factor 100]
    python experiments/validate_cpu.py --seed 10 --out sweeps/cpu-validate-seed10 --target-from sweeps/cpu-validate/target

The second form trains the whole fitted ladder with other seeds and predicts the same truth again: the spread of
those predictions is how reproducible a 100x prediction is at this scale.

On 2 CPU cores: about 2 min for the fitted sweep (two one-thread runs at once); the 1e14 set (three sizes, and a
fourth that bracketing added) took 4,659 s of training.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from scalepredict.files import atomic_write_json, atomic_write_text
from scalepredict.fitfile import load_fit
from scalepredict.frontier import seed_noise
from scalepredict.config import load_config
from scalepredict.plots import prediction_figure
from scalepredict.frontier import frontier
from scalepredict.runs import load_runs
from scalepredict.pipeline import run_sweep

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "sweeps/cpu-validate")
    ap.add_argument("--figures", type=Path, default=ROOT / "figures")
    ap.add_argument("--factor", type=float, default=100.0, help="target budget / largest fitted budget")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--config", default="cpu-validate", help="cpu-validate, cpu-validate-deep or a TOML file")
    ap.add_argument("--name", default=None, help="figure name (default: the config's name)")
    ap.add_argument("--target-from", type=Path, default=None,
                    help="compare with the target runs already trained in this sweep folder (its runs.jsonl) "
                         "instead of training them")
    ap.add_argument("--seed", type=int, default=None,
                    help="train the fitted ladder with this seed instead of the config's (with --target-from, an "
                         "independent second prediction of the same truth: how far seeds alone move it)")
    args = ap.parse_args()

    cfg = load_config(args.config)
    if args.seed is not None:
        cfg = replace(cfg, sweep=replace(cfg.sweep, seed=args.seed))
    name = args.name or (cfg.name if args.seed is None else f"{cfg.name}-seed{args.seed}")
    t0 = time.time()
    run_sweep(cfg, args.out / "fit", device=args.device, jobs="auto")
    t_fit = time.time() - t0
    fit = load_fit(args.out / "fit" / "fit.json")
    fitted = load_runs(args.out / "fit" / "runs.jsonl")

    target = max(fitted.compute.max(), cfg.sweep.max or 0) * args.factor
    target = float(f"{target:.3g}")
    tcfg = replace(cfg, name=f"{cfg.name}-target",
                   sweep=replace(cfg.sweep, budgets=[target], min=None, max=None, count=1, repeats=0, repeat_at=[0],
                                 targets=[]))
    t1 = time.time()
    target_dir = args.target_from or args.out / "target"
    if args.target_from is None:
        run_sweep(tcfg, target_dir, device=args.device, finish=False, jobs="auto")
    t_target = time.time() - t1
    truth_table = load_runs(target_dir / "runs.jsonl")
    (truth,) = frontier(truth_table)
    pred = fit.predict(compute=truth.compute)[0]
    rel = pred["loss"] / truth.loss - 1
    covered = pred["lower"] <= truth.loss <= pred["upper"]
    sn = seed_noise(fitted)  # repeated seeds of the compute-optimal guess at the repeat_at budgets
    each = sn["each"] if sn else []  # smallest compute first: the noise at the smallest budget is each[0]
    noise, n_seeds = (each[0]["sigma"], each[0]["seeds"]) if each else (float("nan"), 0)
    fit_chin = None
    if (args.out / "fit" / "fit-chinchilla.json").exists():
        fit_chin = load_fit(args.out / "fit" / "fit-chinchilla.json")

    runs = [{"run": r["run"], "params": r["params"], "tokens": r["tokens"], "loss": r["loss"],
             "train_seconds": r.get("train_seconds")} for r in truth_table.records]
    result = {
        "fitted_budgets": [float(fitted.compute.min()), float(fitted.compute.max())],
        "fitted_span": float(fit.max_compute / fit.data.compute.min()),
        "frontier_points": fit.n_points,
        "law": {n: float(v) for n, v in zip(fit.law.names, fit.values)},
        "target_compute": truth.compute, "extrapolation": truth.compute / fit.max_compute,
        "predicted": pred["loss"], "lower": pred["lower"], "upper": pred["upper"], "level": 0.9,
        "actual": truth.loss, "actual_method": truth.method, "actual_best_params": truth.params,
        "rel_error": rel, "covered": bool(covered),
        "seed_noise": noise, "seeds": n_seeds, "seed_noise_each": each,
        "seed_noise_pooled": sn["sigma"] if sn else None, "target_runs": runs,
            "wall_seconds": {"fitted_sweep": round(t_fit), "target_runs": round(t_target)},
        "train_seconds": {"fitted_runs": round(sum(r.get("wall_seconds", 0) for r in fitted.records)),
                          "target_runs": round(sum(r.get("wall_seconds", 0) for r in truth_table.records))},
    }
    if fit_chin is not None:
        c = fit_chin.predict(compute=truth.compute)[0]
        result["chinchilla"] = {"predicted": c["loss"], "lower": c["lower"], "upper": c["upper"],
                                "optimal_params": c["params"], "optimal_tokens": c["tokens"],
                                "rel_error": c["loss"] / truth.loss - 1}
    args.figures.mkdir(exist_ok=True)
    atomic_write_json(args.figures / f"{name}.json", result)
    prediction_figure(fit, args.figures / f"{name}.png", targets=[truth.compute],
                      held_out=[{"compute": truth.compute, "loss": truth.loss}])

    lines = [
        f"# CPU validation ({cfg.name}): fitted on {fitted.compute.min():.3g}..{fitted.compute.max():.3g} FLOPs, "
        "checked by training at "
        f"{truth.compute:.3g} FLOPs ({result['extrapolation']:.0f}x)",
        "",
        f"Compute law on {fit.n_points} frontier points: L = {fit.value('a'):.4g} * C^{fit.value('b'):.4f} + "
        f"{fit.value('c'):.4f}",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| predicted frontier loss (nats/token) | {pred['loss']:.4f} |",
        f"| 90% interval | [{pred['lower']:.4f}, {pred['upper']:.4f}] |",
        f"| trained frontier loss ({truth.method}) | {truth.loss:.4f} |",
        f"| relative error | {rel:+.2%} |",
        f"| truth inside the 90% interval | {'yes' if covered else 'no'} |",
        f"| seed-to-seed noise at the smallest budget ({n_seeds} seeds) | {noise:.2%} |",
    ]
    lines += [f"| seed-to-seed noise at {g['compute']:.3g} FLOPs ({g['seeds']} seeds) | {g['sigma']:.2%} |"
              for g in each[1:]]
    if sn:
        lines.append(f"| pooled seed noise (the floor of the interval's noise term) | {sn['sigma']:.2%} |")
    if "chinchilla" in result:
        c = result["chinchilla"]
        lines.append(f"| chinchilla law on all runs | {c['predicted']:.4f} ({c['rel_error']:+.2%}), "
                     f"N* {c['optimal_params']:.3g} |")
    lines += ["", "| run at the target | params | tokens | loss | train s |", "|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {int(r['params']):,} | {int(r['tokens']):,} | {r['loss']:.4f} | {r['train_seconds']:.0f} |"
              for r in runs]
    if args.target_from is not None:
        lines += ["", f"The target runs were not trained here: they are those of {args.target_from}, made with that "
                  "folder's config (its shape rule may differ from this one's)."]
    ts = result["train_seconds"]
    lines += ["", f"Training time of the runs (2 CPU cores here): fitted {ts['fitted_runs']} s, target "
              f"{ts['target_runs']} s. Reproduce: `python experiments/validate_cpu.py"
              + "".join(f" {a}" for a in sys.argv[1:]) + "`.", ""]
    atomic_write_text(args.figures / f"{name}.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
