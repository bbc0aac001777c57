"""Task accuracy predicted in two steps on Gadre et al. 2024's downstream data (../shared/data/scaling/
gadre2024_rpj_rw_downstream.csv: C4 loss and top-1 error on 48 tasks of 70 models, 11M-6.9B parameters).

Fits on the runs of at most 2.1e19 FLOPs (as the paper's own split: runs of <= ~2e19 FLOPs) and predicts the
1.4B and 6.9B models (2.5e20-8e21 FLOPs, 12-400x beyond): the average top-1 error over the tasks (Gadre et al.'s
Figure 1 quantity), and each task's error where the largest models are clearly above the small ones (a task whose
error moves less than `--min-gain` between the smallest fitted model and the largest target is at chance at these
scales and left out, as the scored check leaves out tasks at chance).

  python experiments/task_accuracy.py                       # the default: auto link, auto step-1 law
  python experiments/task_accuracy.py --form sigmoid --law chinchilla
  python experiments/task_accuracy.py --json figures/task-accuracy.json --figure figures/task-accuracy.png

Prints, per target, the predicted and true average error with the 90% interval, then the mean absolute error in
points and the interval coverage, for the two-step law and the direct form (error against compute).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scaling" / "gadre2024_rpj_rw_downstream.csv"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--law", default="auto", help="step 1's loss law")
    ap.add_argument("--form", default="auto", help="step 2: auto, sigmoid, sigmoid1 or exponential")
    ap.add_argument("--max-fit", type=float, default=2.1e19, help="fit runs up to this compute")
    ap.add_argument("--min-target-params", type=float, default=1.4e9)
    ap.add_argument("--min-gain", type=float, default=0.05, help="a task counts as above chance where its error "
                    "falls by at least this between the smallest fitted run and the largest target")
    ap.add_argument("--boot", type=int, default=100)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--figure", type=Path, help="draw the average error's two steps, with the true targets, here")
    a = ap.parse_args(argv)
    if not a.data.exists():
        sys.exit(f"{a.data}: not found (the project's shared development data)")

    from scalepredict.ingest import load_table
    from scalepredict.capability.task_inputs import average_metric, expand_metrics, metric_values
    from scalepredict.capability.tasks import fit_tasks

    t = load_table([a.data], columns={"loss": "loss_c4_val", "run": "run"})
    train = t.subset(t.compute <= a.max_fit)
    test = t.subset(t.params >= a.min_target_params)
    names, _ = expand_metrics(["err_*"], set(t.records[0]))
    names = [n for n in names if "avg" not in n]  # the file's own averages (err_avg, err_avg_subset) are not tasks
    tv, fv = metric_values(test, names), metric_values(train, names)
    # tasks above chance at these scales: the error falls clearly from the smallest fitted model to the targets
    smallest = np.argmin(train.compute)
    moving = [n for n in names if fv[n][smallest] - np.max(tv[n]) >= a.min_gain]
    avg_name, avg = average_metric(fv, names)
    metrics = {avg_name: avg, **{n: fv[n] for n in moving}}
    t0 = time.time()
    tf = fit_tasks(train, metrics, "loss_c4_val", law=a.law, forms=(a.form,), n_boot=a.boot)
    fit_s = time.time() - t0
    preds = tf.predict(params=test.params, tokens=test.tokens)
    by = {}
    for p in preds:
        by.setdefault(p["metric"], []).append(p)
    _, tavg = average_metric(tv, names)
    truth = {avg_name: tavg, **{n: tv[n] for n in moving}}

    def score(metric, key=None):
        errs, cov = [], []
        for p, y in zip(by[metric], truth[metric]):
            q = p if key is None else p[key]
            errs.append(q["value"] - y)
            cov.append(q["lower"] <= y <= q["upper"])
        return np.array(errs), np.array(cov)

    print(f"fitted {len(train)} runs (<= {a.max_fit:.2g} FLOPs), step 1 {tf.step1.name}, step 2 "
          f"{', '.join(sorted({l.form for m in tf.metrics for l in m.links}))}; {len(test)} targets; {fit_s:.1f} s")
    print(f"\naverage top-1 error over {len(names)} tasks")
    print(f"{'target':<30} {'compute':>9} {'C4 loss':>7} {'pred':>7} {'true err':>8} {'pred err':>8}  90% interval"
          f"        direct")
    for p, y, name, loss in zip(by[avg_name], tavg, test.names, test.loss):
        d = p["direct"]
        print(f"{name:<30} {p['compute']:>9.3g} {loss:>7.3f} {p['task_loss']:>7.3f} {y:>8.4f} {p['value']:>8.4f}  "
              f"[{p['lower']:.4f}, {p['upper']:.4f}]  {d['value']:.4f}")
    e, c = score(avg_name)
    de, dc = score(avg_name, "direct")
    print(f"two-step: mean |error| {100 * np.mean(np.abs(e)):.2f} points, coverage {c.mean():.0%}; direct: "
          f"{100 * np.mean(np.abs(de)):.2f} points, coverage {dc.mean():.0%}")

    per = {}
    for n in moving:
        if n not in by:
            continue
        e, c = score(n)
        de, dc = score(n, "direct")
        per[n] = {"mae": float(np.mean(np.abs(e))), "coverage": float(c.mean()), "direct_mae":
                  float(np.mean(np.abs(de))), "direct_coverage": float(dc.mean()),
                  "form": "+".join(f"{l.form}" for l in next(m for m in tf.metrics if m.name == n).links)}
    largest = np.argsort(-test.compute)[:3]
    big_err, big_cov = [], []
    for n in per:
        e, c = score(n)
        big_err += list(np.abs(e[largest]))
        big_cov += list(c[largest])
    print(f"\nper task ({len(per)} of {len(names)} tasks above chance at these scales; left out: "
          f"{len(tf.left_out)} unfittable)")
    for n, s in sorted(per.items(), key=lambda kv: kv[1]["mae"]):
        print(f"  {n:<45} {s['form']:<12} mean |error| {100 * s['mae']:5.2f} pts, coverage {s['coverage']:4.0%}   "
              f"direct {100 * s['direct_mae']:5.2f} pts")
    mae = np.mean([s["mae"] for s in per.values()]) if per else float("nan")
    cov = np.mean([s["coverage"] for s in per.values()]) if per else float("nan")
    print(f"tasks: mean |error| {100 * mae:.2f} points, coverage {cov:.0%} (all targets); the 3 largest targets: "
          f"{100 * np.mean(big_err):.2f} points, coverage {np.mean(big_cov):.0%}")
    if a.figure:
        from scalepredict.plots import task_figure

        held = [(c, l, y) for c, l, y in zip(test.compute, test.loss, tavg)]
        task_figure(tf, a.figure, metric=avg_name, held_out=held, preds=by[avg_name])
        print(f"wrote {a.figure}")
    if a.json:
        out = {"law": a.law, "form": a.form, "fit_runs": len(train), "targets": test.names,
               "average": {"mae": float(np.mean(np.abs(score(avg_name)[0]))), "coverage": float(score(avg_name)[1].mean()),
                           "direct_mae": float(np.mean(np.abs(de))), "direct_coverage": float(dc.mean())},
               "tasks": per, "tasks_mae": float(mae), "tasks_coverage": float(cov),
               "largest_mae": float(np.mean(big_err)), "largest_coverage": float(np.mean(big_cov))}
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
