"""The command line: parse, call the library, print a human table or one JSON document (--json).

Bad input ends in one line on stderr naming the file, line or column at fault, and exit status 2.
"""

from __future__ import annotations

import json
import math
import signal
import sys
from pathlib import Path

import click
import numpy as np

from . import __version__, defaults
from .errors import InputError, Stopped
from .files import atomic_write_json
from .ingest import FORMATS, READERS
from .laws import LAWS


def _num(x, digits=4):
    from .summary import num

    return num(x, digits)


def _floats(values, option):
    """Numbers from repeated and/or comma-separated option values ('1e21,1e22')."""
    out = []
    for v in values or ():
        for part in str(v).split(","):
            if part.strip():
                try:
                    x = float(part)
                except ValueError:
                    raise InputError(f"{option}: {part.strip()!r} is not a number") from None
                if not math.isfinite(x) or x <= 0:
                    raise InputError(f"{option}: must be a positive number, got {part.strip()}")
                out.append(x)
    return out


def _emit_json(obj):
    click.echo(json.dumps(obj, indent=2, allow_nan=False))


def _warn(msgs):
    for m in msgs:
        click.echo(f"warning: {m}", err=True)


# ---- shared options ---------------------------------------------------------------------------------------------


def table_options(f):
    """Options that read a run table (or a training log, see `ingest`)."""
    opts = [
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
                     help="Input format: auto (detected from the content), runs (a JSONL/CSV run table), or a log "
                          "format (see `ingest --help`)."),
        click.option("--compute-col", help="Column holding training FLOPs."),
        click.option("--params-col", help="Column holding the parameter count."),
        click.option("--tokens-col", help="Column holding training tokens."),
        click.option("--loss-col", help="Column holding the final loss."),
        click.option("--run-col", help="Column naming the run."),
        click.option("--budget-col", help="Column holding the planned compute budget (groups IsoFLOP sets)."),
        click.option("--compute-convention", type=click.Choice(["exact", "6nd", "reported"]),
                     help="Fit compute in this convention, converting each run where its params and tokens (6nd) "
                          "or shape (exact) allow. Default: the one the runs share; mixed runs are converted to "
                          "6nd where they can be, else refused."),
        click.option("--metric", help="Logs: the metric to use (default: the validation loss the log has)."),
        click.option("--pattern", help="Logs: a regex with named groups step and value (optionally tokens, run)."),
        click.option("--params", "params", type=float, help="Logs: the model's parameter count."),
        click.option("--tokens-per-step", type=float, help="Logs: tokens per optimizer step (tokens = step * this)."),
        click.option("--run-meta", type=click.Path(path_type=Path),
                     help="Logs: a CSV/JSONL file, one row per run (name or glob): params, tokens, tokens_per_step, "
                          "compute, budget."),
        click.option("--name-pattern",
                     help="Logs: a regex read from each run's name, with named groups params, tokens, compute, "
                          "budget or tokens_per_step, e.g. '(?P<params>\\d+[MB])' reads 150M and 1B."),
        click.option("--last-k", type=click.IntRange(1), default=1, show_default=True,
                     help="Logs: a run's loss is the mean of its last k points."),
        click.option("--intermediate", is_flag=True,
                     help="Keep intermediate checkpoints as points (caveat: the middle of a cosine run is not the "
                          "end of a shorter run)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def law_options(f):
    opts = [
        click.option("--law", type=click.Choice(["auto", *LAWS]), default="auto", show_default=True,
                     help="auto: the average of the laws the runs support, each scored by a nested backtest "
                          "(docs/fitting.md); compute: L=a*C^b+c (GPT-4); chinchilla: L=E+A/N^alpha+B/D^beta; "
                          "chinchilla_tied: the same with alpha=beta (Gadre et al. 2024); power: L=a*C^b."),
        click.option("--huber-delta", type=float, default=defaults.HUBER_DELTA, show_default=True,
                     help="Huber loss delta on log-loss residuals."),
        click.option("--no-huber", is_flag=True, help="Plain least squares instead of the Huber loss."),
        click.option("--bootstrap", "n_bootstrap", type=click.IntRange(0), default=defaults.BOOTSTRAP,
                     show_default=True,
                     help="Bootstrap resamples over runs (0 turns it off)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed."),
        click.option("--all-points", is_flag=True,
                     help="compute/power laws: fit every run, not the compute-efficient frontier."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _columns(kw):
    return {k: kw.pop(f"{k}_col") for k in ("compute", "params", "tokens", "loss", "run", "budget")}


def _load_table(inputs, kw):
    from .ingest import load_table

    columns = _columns(kw)
    fmt = kw.pop("fmt", "auto")
    ingest_kw = {k: kw.pop(k) for k in ("metric", "params", "tokens_per_step", "pattern", "intermediate", "last_k",
                                        "run_meta", "compute_convention", "name_pattern") if k in kw}
    return load_table(inputs, fmt=fmt, columns=columns, **ingest_kw)


def _fit_kws(kw):
    no_huber, delta = kw.pop("no_huber"), kw.pop("huber_delta")
    delta = None if no_huber else delta
    return dict(delta=delta, n_bootstrap=kw.pop("n_bootstrap"), seed=kw.pop("seed"), all_points=kw.pop("all_points"))


# ---- the group ----------------------------------------------------------------------------------------------------


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"scalepredict: error: {e}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            line = f"scalepredict: interrupted ({signal.Signals(signum).name})"
            if ctx.invoked_subcommand in ("sweep", "probe"):
                line += ("; finished runs are kept and runs in progress saved a checkpoint (SLURM jobs go on): rerun "
                         "the same command to resume")
            click.echo(line, err=True)
            ctx.exit(128 + signum)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="scalepredict")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx, debug):
    """Predict the final loss of a large training run from small runs.

    \b
    sweep    train a ladder of small runs with one recipe, then fit, predict and plot
    probe    calibrate the recipe's learning rate (and its exponent) before a sweep
    ingest   turn training logs into a run table
    fit      fit a scaling law to a run table (or logs)
    predict  predict the loss at a target compute (or N, D) with an interval
    backtest hold out the largest runs and score the extrapolation
    plot     draw the prediction figure of a fit
    report   write a review-ready markdown report
    fit-tasks     task accuracy in two steps (task loss, then accuracy)
    fit-passrate  GPT-4's pass-rate law over a benchmark's problems
    status   where a sweep stands: runs planned, queued, running, finished, failed
    """
    ctx.obj = {"debug": debug}


def _fit_summary(fit) -> dict:
    d = fit.to_dict()
    if d["law"] == "auto":
        for c in d["candidates"]:
            c["fit"] = _fit_summary_dict(c["fit"])
        return d
    return _fit_summary_dict(d)


def _fit_summary_dict(d: dict) -> dict:
    out = {k: d[k] for k in ("law", "formula", "params", "n_points", "converged", "dof", "x_range", "noise_sigma",
                             "at_bound", "warnings", "objective", "compute_convention")}
    if d["bootstrap"]:
        out["bootstrap"] = {k: d["bootstrap"][k] for k in ("n", "seed", "quantiles")}
    return out


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@table_options
@law_options
@click.option("--out", "-o", "out", type=click.Path(path_type=Path), help="Write the fit file (fit.json) here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def fit(inputs, out, as_json, **kw):
    """Fit a scaling law to the runs in INPUT (JSONL/CSV run tables, or training logs)."""
    from .fit import fit_law
    from .fitfile import file_digest

    law = kw.pop("law")
    fit_kws = _fit_kws(kw)
    table = _load_table(inputs, kw)
    result = fit_law(table, law, inputs=[file_digest(p) for p in inputs if Path(p).is_file()], **fit_kws)
    if out:
        atomic_write_json(out, result.to_dict())
    _warn(result.warnings)
    if as_json:
        _emit_json(_fit_summary(result))
        return
    for line in result.report():
        click.echo(line)
    if out:
        click.echo(f"wrote {out}")


@cli.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="auto: detected from the content. " + "; ".join(f"{r.name}: {r.doc}" for r in READERS) + ".")
@click.option("--metric", help="The metric to turn into runs (default: the validation loss the log has).")
@click.option("--pattern", help="A regex with named groups step and value (optionally tokens, run).")
@click.option("--params", "params", type=float, help="The model's parameter count (for compute = 6 N D).")
@click.option("--tokens-per-step", type=float, help="Tokens per optimizer step (tokens = step * this).")
@click.option("--run-meta", type=click.Path(path_type=Path),
              help="A CSV/JSONL file, one row per run (a name or a glob) with any of params, tokens, tokens_per_step, "
                   "compute, budget: for several runs at once. It wins over --params/--tokens-per-step, which win "
                   "over what the log says.")
@click.option("--name-pattern",
              help="A regex read from each run's name, with named groups params, tokens, compute, budget or "
                   "tokens_per_step, e.g. '(?P<params>\\d+[MB])'.")
@click.option("--last-k", type=click.IntRange(1), default=1, show_default=True,
              help="A run's loss is the mean of its last k points.")
@click.option("--intermediate", is_flag=True, help="One row per logged point instead of one per run.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Write a run table (runs.jsonl).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def ingest(logs, fmt, metric, pattern, params, tokens_per_step, run_meta, name_pattern, last_k, intermediate, out,
           as_json):
    """Read training logs into curves, and (with -o) into a run table.

    Params and tokens per run come from --run-meta, else --params/--tokens-per-step, else the log itself
    (hparams.yaml, config.json beside trainer_state.json, W&B config columns, Megatron's consumed tokens;
    12 * n_layer * d_model^2 where only the shape is given). By default only each run's final value is kept:
    the middle of a cosine run is not the end of a shorter run; --intermediate keeps every point.
    """
    from .files import atomic_write_text
    from .ingest import compile_name_pattern, load_run_meta, read_logs, records_from_logs

    meta = load_run_meta(run_meta) if run_meta else None
    read = read_logs(logs, fmt, pattern)
    for path, kind, _ in read:
        if kind == "runs":
            raise InputError(f"{path}: already a run table; use it with fit/backtest directly")
    all_curves = [c for _, _, curves in read for c in curves]
    rx = compile_name_pattern(name_pattern) if name_pattern else None
    records = records_from_logs(read, metric, params, tokens_per_step, last_k, intermediate, meta, rx) \
        if (metric or out) else []
    if out:
        atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in records))
    for c in all_curves:
        for f in c.flags[:3]:
            _warn([f"{c.source}: {c.run} {c.metric}: {f['kind']} at step {f['step']}"])
    if as_json:
        _emit_json({"curves": [c.summary() for c in all_curves]})
        return
    click.echo(f"{'run':<28} {'metric':<28} {'points':>6} {'first':>7} {'last':>8} {'last value':>10}  flags")
    for c in all_curves:
        s = c.summary()
        click.echo(f"{s['run'][:28]:<28} {s['metric'][:28]:<28} {s['n_points']:>6} {s['first_step']:>7} "
                   f"{s['last_step']:>8} {_num(s['last_value']):>10}  {len(c.flags) or ''}")
    if out:
        click.echo(f"wrote {out} ({len(records)} rows)")


@cli.command()
@click.argument("fit_file", metavar="FIT", type=click.Path(path_type=Path))
@click.option("--compute", "-c", multiple=True, help="Target training FLOPs (repeat or comma-separate).")
@click.option("--params", "n", multiple=True, help="Chinchilla fits: parameter count(s).")
@click.option("--tokens", "d", multiple=True, help="Chinchilla fits: token count(s).")
@click.option("--at", "at", type=click.Path(path_type=Path), help="Predict every row of this run table.")
@click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def predict(fit_file, compute, n, d, at, level, as_json):
    """Predict the final loss at target compute (or params and tokens) from a fit file; from a capability fit
    (fit-passrate, fit-tasks), the pass rate or the task accuracy there."""
    from .summary import prediction_lines
    from .fitfile import load_fit
    from .runs import CONVENTIONS

    from .fitfile import load_capability_file

    compute, n, d = _floats(compute, "--compute"), _floats(n, "--params"), _floats(d, "--tokens")
    if len(n) != len(d):  # every kind of fit reads them as pairs
        raise InputError(f"--params and --tokens: give as many of each ({len(n)} vs {len(d)})")
    cap = load_capability_file(fit_file)
    if cap is not None:
        if at:
            raise InputError("--at predicts a loss fit's rows; give a capability fit --compute (or --params/--tokens)")
        _predict_capability(cap, compute, n, d, level, as_json)
        return
    fit = load_fit(fit_file)
    by_compute = fit.law.inputs == ("compute",)
    preds = []
    if at:
        from .runs import load_runs

        # a compute law's targets must count compute as its runs did: converted where the rows allow it
        t = load_runs(at, convention=fit.compute_convention if by_compute else None)
        preds += fit.predict(compute=t.compute, params=t.params, tokens=t.tokens, level=level)
        for p, name, loss in zip(preds, t.names, t.loss):
            p["run"], p["actual"] = name, float(loss)
    if n:
        if by_compute:
            preds += fit.predict(compute=fit.compute_6nd(n, d), params=n, tokens=d, level=level)
        else:
            preds += fit.predict(params=n, tokens=d, level=level)
    if compute:
        preds += fit.predict(compute=compute, level=level)
    if not preds:
        raise InputError("nothing to predict: give --compute, --params with --tokens, or --at FILE")
    ensemble = hasattr(fit, "members")
    conv = fit.compute_convention if by_compute or ensemble else "6nd"
    for p in preds:
        p["compute_convention"] = conv
    _warn(sorted({p["warning"] for p in preds if "warning" in p}))
    if as_json:
        _emit_json({"law": fit.law.name, "compute_convention": conv, "predictions": preds})
        return
    what = "the laws" if ensemble else "the compute-optimal split" if not by_compute else "the law"
    click.echo(f"compute is read as {conv} ({CONVENTIONS.get(conv, conv)}) for {what}")
    for line in prediction_lines(preds):
        click.echo(line)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@table_options
@law_options
@click.option("--factors", default="10,100", show_default=True,
              help="Hold out everything above C_max/k for each k.")
@click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def backtest(inputs, factors, level, as_json, **kw):
    """Refit on the runs below C_max/k and score the prediction of the held-out larger runs."""
    from .backtest import backtest as run_backtest

    law = kw.pop("law")
    fit_kws = _fit_kws(kw)
    table = _load_table(inputs, kw)
    ks = _floats([factors], "--factors")
    result = run_backtest(table, law, ks, level=level, **fit_kws)
    for s in result["skipped"]:
        _warn([f"factor {s['factor']:g} skipped: {s['reason']}"])
    if as_json:
        _emit_json(result)
        return
    click.echo(f"{'k':>6} {'fit up to':>10} {'compute':>10} {'predicted':>9} {'actual':>8} {'error':>7}  "
               f"{int(level * 100)}% interval")
    for c in result["cases"]:
        band = f"[{_num(c['lower'])}, {_num(c['upper'])}]" if c["lower"] is not None else "-"
        mark = "" if c["covered"] is None else ("ok" if c["covered"] else "MISS")
        click.echo(f"{c['factor']:>6g} {_num(c['fit_max_compute']):>10} {_num(c['compute']):>10} "
                   f"{_num(c['predicted']):>9} {_num(c['actual']):>8} {c['rel_error'] * 100:>+6.2f}%  {band} {mark}")
    cov = result["coverage"]
    click.echo(f"mean absolute relative error {result['mape'] * 100:.2f}%; "
               f"interval coverage {'-' if cov is None else f'{cov * 100:.0f}%'} ({len(result['cases'])} cases)")


@cli.command()
@click.option("--config", "config", help="Sweep config: a TOML file or a packaged name (cpu-demo, gpu-ladder, "
                                         "cpu-validate).  [default: cpu-demo]")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Sweep folder (runs.jsonl, fit.json, prediction.png, report.md).  [default: sweeps/<config name>]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Require an existing sweep in --out (rerunning resumes anyway).")
@click.option("--dry-run", is_flag=True, help="Print the plan and the estimated time; train nothing.")
@click.option("--launcher", type=click.Choice(["local", "slurm", "submitit"]), default=None,
              help="local: this machine (--jobs runs at once); slurm: one SLURM job per run (the config's "
                   "[launcher] section: partition, time, CPUs, GPUs...); submitit: SLURM where sbatch is found, else "
                   "one local process per run.  [default: the config's [launcher] kind, local]")
@click.option("--keep-checkpoints", is_flag=True, help="Keep each run's state.pt after it finishes.")
@click.option("--jobs", "-j", default="auto", show_default=True, metavar="N|auto",
              help="Train N runs at once: on CPU each with cores/N threads (small models gain most), on CUDA each "
                   "on a GPU of its own; auto: one one-thread run per core (at most 8) on CPU, one run per visible "
                   "GPU on CUDA, 1 where [train] threads is set.")
def sweep(config, out, device, resume, dry_run, launcher, keep_checkpoints, jobs):
    """Train small runs at several compute budgets with one recipe, then fit, predict and plot."""
    from .config import load_config
    from .train.sweep import run_sweep

    cfg = load_config(config)
    jobs = _jobs(jobs)
    out = out or Path("sweeps") / cfg.name
    _need_torch("sweep")
    run_sweep(cfg, out, device=device, resume=resume, dry_run=dry_run, launcher=launcher, echo=click.echo,
              keep_state=keep_checkpoints, jobs=jobs)


def _need_torch(command: str) -> None:
    """Training needs torch, which the package leaves to the `train` extra (fitting never imports it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError(f"{command} trains models and needs torch: pip install 'scalepredict[train]' (a CPU build: "
                         f"pip install torch --index-url https://download.pytorch.org/whl/cpu)") from None


def _jobs(value: str) -> int | str:
    """--jobs: a positive integer, or auto."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"--jobs must be a positive integer or auto, got {value!r}")
    return int(value)


@cli.command()
@click.option("--config", "config", help="Sweep config: a TOML file or a packaged name.  [default: cpu-demo]")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Probe folder (resumable).  [default: sweeps/<config name>-probe]")
@click.option("--factors", default="0.25,0.5,1,2,4", show_default=True,
              help="Multiples of the rule's learning rate to train (comma-separated, at least 3).")
@click.option("--at", "at", default="0,-1", show_default=True,
              help="Budgets to probe, by position in the plan (0: the smallest, -1: the largest), comma-separated.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--jobs", default="auto", show_default=True, help="Runs at once on CPU (auto: one per core).")
def probe(config, out, factors, at, device, jobs):
    """Calibrate the recipe's learning rate: train the compute-optimal guess of the smallest and the largest
    budget at several multiples of the rule's LR and recommend [train] lr and lr_exponent."""
    from .config import load_config
    from .train.probe import run_probe

    cfg = load_config(config)
    _need_torch("probe")
    try:
        fs = [float(f) for f in factors.split(",") if f.strip()]
    except ValueError:
        raise InputError(f"--factors: expected comma-separated numbers, got {factors!r}") from None
    try:
        positions = [int(i) for i in at.split(",") if i.strip()]
    except ValueError:
        raise InputError(f"--at: expected comma-separated budget positions (0, 1, ..., -1), got {at!r}") from None
    jobs = _jobs(jobs)
    run_probe(cfg, out or Path("sweeps") / f"{cfg.name}-probe", fs, positions, device, jobs, click.echo)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@table_options
@law_options
@click.option("--target", "-t", multiple=True, help="Target compute(s) to mark (repeat or comma-separate).")
@click.option("--held-out", type=click.Path(path_type=Path),
              help="Runs not used in the fit (a run table or a log, read with the same options), drawn as "
                   "held-out points.")
@click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9, show_default=True)
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="FILE.png, .svg or .pdf")
def plot(inputs, target, held_out, level, out, **kw):
    """Draw loss against compute with the fitted law, its interval, the targets and the residuals.

    INPUTS is a fit file (fit.json), or run tables and training logs, which are fitted first (same options as
    `fit`). A capability fit (fit-tasks: the two steps side by side for --metric, default the first; fit-passrate:
    the pass-rate law and the per-problem pass rates it implies) is drawn with its targets.
    """
    from .fit import fit_law
    from .fitfile import file_digest, fit_from_dict, is_fit_file
    from .frontier import frontier
    from .fitfile import load_capability_file
    from .plots import passrate_figure, prediction_figure, task_figure

    cap = load_capability_file(inputs[0]) if len(inputs) == 1 else None
    if cap is not None:
        targets = _floats(target, "--target")
        if cap.kind == "tasks":
            task_figure(cap, out, targets=targets, metric=kw.get("metric"), level=level)
        else:
            passrate_figure(cap, out, targets=targets, level=level)
        click.echo(f"wrote {out}")
        return
    law, fit_kws = kw.pop("law"), _fit_kws(kw)
    held_kw = dict(kw)
    obj = is_fit_file(inputs[0]) if len(inputs) == 1 else None
    if obj is not None:
        fit = fit_from_dict(obj, str(inputs[0]))
    else:
        table = _load_table(inputs, kw)
        fit = fit_law(table, law, inputs=[file_digest(p) for p in inputs if Path(p).is_file()], **fit_kws)
        _warn(fit.warnings)
    held = None
    if held_out:
        held = [{"compute": p.compute, "loss": p.loss} for p in frontier(_load_table([held_out], held_kw))]
    prediction_figure(fit, out, targets=_floats(target, "--target"), held_out=held, level=level)
    click.echo(f"wrote {out}")


@cli.command()
@click.argument("source", metavar="DIR|FIT", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="report.md")
@click.option("--target", "-t", multiple=True, help="Target compute(s) (default: the sweep config's targets).")
@click.option("--html", is_flag=True, help="Also write report.html beside it.")
def report(source, out, target, html):
    """Write a review-ready markdown report (summary, runs, parameters, backtest, figures, provenance)."""
    from .report import write_report

    if not Path(source).exists():
        raise InputError(f"{source}: no such file or folder")
    write_report(source, out, targets=_floats(target, "--target") or None, html=html)
    click.echo(f"wrote {out}")


# ---- capabilities -----------------------------------------------------------------------------------------------


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
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(0), default=1000, show_default=True,
              help="Bootstrap resamples over models and problems.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--target", "-t", multiple=True, help="Target compute(s) to predict (repeat or comma-separate).")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Write the fit file here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def fit_passrate(table, model_col, problem_col, compute_col, params_col, tokens_col, samples_col, passes_col,
                 rate_col, max_compute, n_bootstrap, seed, target, out, as_json):
    """Fit GPT-4's pass-rate law, -mean log pass_rate = alpha * C^(-k), over the problems every fitted model solves.

    TABLE has one row per model and problem: compute (or params and tokens), problem, and samples with passes
    (or pass_rate)."""
    from .passrate import fit_pass_rate, read_pass_table

    cols = {"model": model_col, "problem": problem_col, "compute": compute_col, "params": params_col,
            "tokens": tokens_col, "samples": samples_col, "passes": passes_col, "pass_rate": rate_col}
    pt = read_pass_table(table, cols)
    f = fit_pass_rate(pt, n_boot=n_bootstrap, seed=seed, max_compute=max_compute)
    targets = _floats(target, "--target")
    preds = f.predict(targets) if targets else []
    if out:
        atomic_write_json(out, f.to_dict())
    _warn(f.warnings)
    if as_json:
        d = f.to_dict()
        for k in ("boot", "problem_boot"):
            d.pop(k)
        _emit_json({"fit": d, "predictions": preds})
        return
    from .summary import passrate_lines

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
              help="Chance level, in the metric's own sense: one number for every metric, or METRIC=VALUE.")
@click.option("--form", type=click.Choice(["auto", "sigmoid", "sigmoid1", "exponential"]), default="auto",
              show_default=True,
              help="Step 2: sigmoid (Bhagia et al. 2024, free ceiling), sigmoid1 (ceiling 1), exponential (Gadre et "
                   "al. 2024), or auto: the forms weighted by how well each predicts the runs of lowest loss.")
@click.option("--law", type=click.Choice(["auto", *LAWS]), default="auto", show_default=True,
              help="Step 1's loss law.")
@click.option("--max-compute", type=float, help="Fit the runs up to this compute only.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option("--compute-col", help="Column holding training FLOPs.")
@click.option("--params-col", help="Column holding the parameter count.")
@click.option("--tokens-col", help="Column holding training tokens.")
@click.option("--run-col", help="Column naming the run.")
@click.option("--compute-convention", type=click.Choice(["exact", "6nd", "reported"]))
@click.option("--params", "params", type=float, help="Logs: the model's parameter count.")
@click.option("--tokens-per-step", type=float, help="Logs: tokens per optimizer step.")
@click.option("--run-meta", type=click.Path(path_type=Path), help="Logs: params and tokens per run (CSV/JSONL).")
@click.option("--name-pattern", help="Logs: a regex with named groups params, tokens... read from run names.")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(0), default=100, show_default=True,
              help="Bootstrap resamples of each step.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--target", "-t", multiple=True, help="Target compute(s) to predict (repeat or comma-separate).")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Write the fit file here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def fit_tasks_cmd(inputs, task_loss, metrics, average, chances, form, law, max_compute, fmt, compute_col,
                  params_col, tokens_col, run_col, compute_convention, params, tokens_per_step, run_meta,
                  name_pattern, n_bootstrap, seed, target, out, as_json):
    """Predict task accuracy in two steps: a task loss from compute (or N, D), then accuracy from that loss.

    INPUTS: run tables with the task loss and the metrics as columns, or logs (W&B history, TensorBoard, MLflow...)
    that log them."""
    from .tasks import fit_task_groups, read_task_inputs

    groups, explicit, missing = read_task_inputs(
        inputs, task_loss, metrics, fmt=fmt, columns={"compute": compute_col, "params": params_col,
                                                      "tokens": tokens_col, "run": run_col},
        params=params, tokens_per_step=tokens_per_step, run_meta=run_meta, name_pattern=name_pattern,
        compute_convention=compute_convention, average=average)
    if max_compute:
        kept = []
        for name, table, values in groups:
            keep = table.compute <= max_compute
            if not keep.any():
                raise InputError(f"--max-compute {max_compute:g}: no run at or below it")
            kept.append((name, table.subset(keep), {k: v[keep] for k, v in values.items()}))
        groups = kept
    chance = _chances(chances, [m for _, _, values in groups for m in values])
    tf = fit_task_groups(groups, law=law, forms=(form,), chance=chance, n_boot=n_bootstrap, seed=seed,
                         explicit=explicit, left_out=missing)
    targets = _floats(target, "--target")
    preds = tf.predict(compute=targets) if targets else []
    if out:
        atomic_write_json(out, tf.to_dict())
    _warn(tf.warnings + sorted({p["warning"] for p in preds if "warning" in p}))
    if as_json:
        _emit_json({"task_loss": task_loss, "metrics": [_metric_summary(m) for m in tf.metrics],
                    "left_out": tf.left_out, "predictions": preds})
        return
    from .summary import task_lines

    for line in task_lines(tf, preds):
        click.echo(line)
    if out:
        click.echo(f"wrote {out}")


def _metric_summary(m) -> dict:
    return {"name": m.name, "kind": m.kind, "chance_accuracy": m.chance, "runs": len(m.runs),
            "forms": {l.form: {"weight": w, "params": l.to_dict()["params"], "residual_sigma": l.sigma}
                      for l, w in zip(m.links, m.weights)}, "holdout_scores": m.scores}


def _chances(values, metrics) -> dict | float | None:
    """--chance: one number for every metric, or METRIC=VALUE pairs."""
    if not values:
        return None
    out = {}
    for v in values:
        name, _, num = v.rpartition("=")
        try:
            x = float(num)
        except ValueError:
            raise InputError(f"--chance: {v!r} is not a number or METRIC=NUMBER") from None
        if not 0 <= x <= 1:
            raise InputError(f"--chance: {x:g} is not a rate in [0, 1]")
        if name:
            if name not in metrics:
                raise InputError(f"--chance {v}: no metric {name!r} (metrics: {', '.join(metrics)})")
            out[name] = x
        else:
            out.update({m: x for m in metrics if m not in out})
    return out


def _predict_capability(fit, compute, n, d, level, as_json):
    if fit.kind == "passrate":
        compute = list(compute) + [6.0 * a * b for a, b in zip(n, d)]
        if not compute:
            raise InputError("nothing to predict: give --compute (or --params with --tokens)")
        preds = fit.predict(compute, level=level)
        if as_json:
            _emit_json({"kind": "passrate", "predictions": preds})
            return
        from .summary import passrate_lines

        for line in passrate_lines(fit, preds, header=False):
            click.echo(line)
        return
    preds = []
    if n:
        preds += fit.predict(params=np.asarray(n), tokens=np.asarray(d), level=level)
    if compute:
        preds += fit.predict(compute=np.asarray(compute), level=level)
    if not preds:
        raise InputError("nothing to predict: give --compute, or --params with --tokens")
    _warn(sorted({p["warning"] for p in preds if "warning" in p}))
    if as_json:
        _emit_json({"kind": "tasks", "task_loss": fit.task_loss, "predictions": preds})
        return
    from .summary import task_prediction_lines

    for line in task_prediction_lines(fit, preds):
        click.echo(line)


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def status(folder, as_json):
    """Where a sweep stands: each planned run's state (planned, queued, running, stopped, finished, diverged,
    failed), its steps, its SLURM job, and the compute spent against the plan."""
    from .train.status import status_lines, sweep_status

    st = sweep_status(folder)
    if as_json:
        _emit_json(st)
        return
    for line in status_lines(st):
        click.echo(line)


def _terminated(signum, frame):
    raise Stopped(signum, "terminated")


def main(argv=None):
    # SIGTERM (`timeout`, a scheduler, `kill`) ends a command like Ctrl-C does: one line, no traceback, exit 143;
    # a sweep catches it itself to end its runs on a step boundary with a checkpoint
    signal.signal(signal.SIGTERM, _terminated)
    try:
        cli.main(args=argv, prog_name="scalepredict", standalone_mode=True)
    except InputError as e:  # raised outside a command's invoke (should not happen, but never a traceback)
        click.echo(f"scalepredict: error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
