"""fit-passrate and fit-tasks: laws of capabilities built on small runs (GPT-4's pass-rate law; task accuracy in
two steps, with the direct form beside it)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import defaults
from .group import cli
from .options import LAWS, FORMATS, check_positive, emit_json, floats, json_option, warn


@cli.command("fit-passrate")
@click.argument("table", type=click.Path(path_type=Path))
@click.option("--model-col", help="Column naming the model (default: model).")
@click.option("--problem-col", help="Column naming the problem (default: problem).")
@click.option("--compute-col", help="Column holding the model's training FLOPs (else params and tokens: 6ND).")
@click.option("--params-col", help="Column holding the parameter count.")
@click.option("--tokens-col", help="Column holding training tokens.")
@click.option("--samples-col", help="Column holding the samples drawn per problem (k; default: samples).")
@click.option("--passes-col", help="Column holding the samples that passed (default: passes).")
@click.option("--rate-col", help="Column holding the pass rate, where there are no counts (default: pass_rate).")
@click.option("--max-compute", type=float, help="Fit the models up to this compute only (the rest: a backtest).")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(0), default=defaults.PASSRATE_BOOTSTRAP,
              show_default=True, help="Bootstrap resamples over models and problems.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--target", "-t", multiple=True, help="Target compute(s) to predict (repeat or comma-separate).")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Write the fit file here.")
@json_option
def fit_passrate(table, model_col, problem_col, compute_col, params_col, tokens_col, samples_col, passes_col,
                 rate_col, max_compute, n_bootstrap, seed, target, out, as_json):
    """Fit GPT-4's pass-rate law, -mean log pass_rate = alpha * C^(-k), over the problems every fitted model solves.

    TABLE has one row per model and problem: compute (or params and tokens), problem, and samples with passes
    (or pass_rate)."""
    from ..capability.passrate import fit_pass_rate, read_pass_table
    from ..files import atomic_write_json
    from ..summary import passrate_lines

    check_positive(max_compute, "--max-compute")
    cols = {"model": model_col, "problem": problem_col, "compute": compute_col, "params": params_col,
            "tokens": tokens_col, "samples": samples_col, "passes": passes_col, "pass_rate": rate_col}
    f = fit_pass_rate(read_pass_table(table, cols), n_boot=n_bootstrap, seed=seed, max_compute=max_compute)
    targets = floats(target, "--target")
    preds = f.predict(targets) if targets else []
    if out:
        atomic_write_json(out, f.to_dict())
    warn(f.warnings + sorted({p["warning"] for p in preds if "warning" in p}))
    if as_json:
        d = f.to_dict()
        for k in ("boot", "problem_boot"):
            d.pop(k)
        emit_json({"fit": d, "predictions": preds})
        return
    for line in passrate_lines(f, preds):
        click.echo(line)
    if out:
        click.echo(f"wrote {out}")


@cli.command("fit-tasks")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--task-loss", required=True,
              help="Step 1's column or logged metric: the loss (or bits per byte) the accuracy follows. With a '*', "
                   "each metric a '*' pattern matched follows its own loss: -m 'acc_*' --task-loss 'bpb_*'.")
@click.option("--metric", "-m", "metrics", multiple=True, required=True,
              help="Accuracy or error column(s) or logged metric(s), fractions in [0, 1]; shell patterns allowed "
                   "('acc_*'). A name with 'err' in it is an error (lower is better).")
@click.option("--average", is_flag=True, help="Also fit the mean of the metrics per run (Gadre et al.'s average "
                                              "top-1 error).")
@click.option("--chance", "chances", multiple=True,
              help="Chance level, in the metric's own sense: one number for every metric, and/or METRIC=VALUE.")
@click.option("--form", type=click.Choice(defaults.TASK_FORMS), default="auto", show_default=True,
              help="Step 2: sigmoid (Bhagia et al. 2024, free ceiling), sigmoid1 (ceiling 1), exponential (Gadre et "
                   "al. 2024), or auto: the forms weighted by how well each predicts the runs of lowest loss.")
@click.option("--law", type=click.Choice(LAWS), default="auto", show_default=True, help="Step 1's loss law.")
@click.option("--max-compute", type=float, help="Fit the runs up to this compute only.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option("--compute-col", help="Column holding training FLOPs.")
@click.option("--params-col", help="Column holding the parameter count.")
@click.option("--tokens-col", help="Column holding training tokens.")
@click.option("--run-col", help="Column naming the run.")
@click.option("--compute-convention", type=click.Choice(defaults.CONVENTION_NAMES))
@click.option("--params", "params", type=float, help="Logs: the model's parameter count.")
@click.option("--tokens-per-step", type=float, help="Logs: tokens per optimizer step.")
@click.option("--run-meta", type=click.Path(path_type=Path), help="Logs: params and tokens per run (CSV/JSONL).")
@click.option("--name-pattern", help="Logs: a regex with named groups params, tokens... read from run names.")
@click.option("--checkpoints", type=click.Path(path_type=Path),
              help="Step 2 on every checkpoint (the OLMo ladder's way): a table with one row per run and step (run, "
                   "step, the task loss and the metrics); bootstrapped by run (docs/capabilities.md).")
@click.option("--step-col", default="step", show_default=True, help="--checkpoints: the column holding the step.")
@click.option("--smooth", type=click.IntRange(1), default=5, show_default=True,
              help="--checkpoints: a moving average over this many checkpoints.")
@click.option("--skip", type=click.FloatRange(0, 0.9), default=0.1, show_default=True,
              help="--checkpoints: leave out this share of each run's first steps.")
@click.option("--no-direct", is_flag=True, help="Do not fit the direct form (accuracy against compute).")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(0), default=defaults.TASK_BOOTSTRAP,
              show_default=True, help="Bootstrap resamples of each step.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--target", "-t", multiple=True, help="Target compute(s) to predict (repeat or comma-separate).")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Write the fit file here.")
@json_option
def fit_tasks_cmd(inputs, task_loss, metrics, average, chances, form, law, max_compute, fmt, compute_col,
                  params_col, tokens_col, run_col, compute_convention, params, tokens_per_step, run_meta,
                  name_pattern, checkpoints, step_col, smooth, skip, no_direct, n_bootstrap, seed, target, out,
                  as_json):
    """Predict task accuracy in two steps: a task loss from compute (or N, D), then accuracy from that loss.

    INPUTS: run tables with the task loss and the metrics as columns, or logs (W&B history, TensorBoard, MLflow...)
    that log them."""
    from ..capability.task_inputs import parse_chances, read_task_inputs, up_to_compute
    from ..capability.tasks import fit_task_groups
    from ..files import atomic_write_json
    from ..summary import task_lines

    for x, option in ((max_compute, "--max-compute"), (params, "--params"), (tokens_per_step, "--tokens-per-step")):
        check_positive(x, option)
    groups, explicit, missing = read_task_inputs(
        inputs, task_loss, metrics, fmt=fmt, columns={"compute": compute_col, "params": params_col,
                                                      "tokens": tokens_col, "run": run_col},
        params=params, tokens_per_step=tokens_per_step, run_meta=run_meta, name_pattern=name_pattern,
        compute_convention=compute_convention, average=average)
    groups = up_to_compute(groups, max_compute)
    chance = parse_chances(chances, [m for _, _, values in groups for m in values])
    ck = None
    if checkpoints:
        from ..capability.checkpoints import read_checkpoints

        cols = list(dict.fromkeys([g[0] for g in groups] + [m for _, _, values in groups for m in values]))
        ck = read_checkpoints(checkpoints, [c for c in cols if not c.startswith(("mean_err(", "mean_acc("))],
                              run_col or "run", step_col)
    tf = fit_task_groups(groups, law=law, forms=(form,), chance=chance, n_boot=n_bootstrap, seed=seed,
                         explicit=explicit, left_out=missing, checkpoints=ck, smooth=smooth, skip=skip,
                         direct=not no_direct)
    targets = floats(target, "--target")
    preds = tf.predict(compute=targets) if targets else []
    if out:
        atomic_write_json(out, tf.to_dict())
    warn(tf.warnings + sorted({p["warning"] for p in preds if "warning" in p}))
    if as_json:
        emit_json({"task_loss": task_loss, "metrics": [_metric_summary(m) for m in tf.metrics],
                   "left_out": tf.left_out, "predictions": preds})
        return
    for line in task_lines(tf, preds):
        click.echo(line)
    if out:
        click.echo(f"wrote {out}")


def _metric_summary(m) -> dict:
    return {"name": m.name, "kind": m.kind, "chance_accuracy": m.chance, "runs": len(set(m.runs)),
            "points": len(m.runs), "fitted_on": m.points, "predictability": m.predictability,
            "direct_weight": m.direct_weight, "direct_scores": m.direct_scores,
            "forms": {l.form: {"weight": w, "params": l.to_dict()["params"], "residual_sigma": l.sigma}
                      for l, w in zip(m.links, m.weights)}, "holdout_scores": m.scores}
