"""fit, predict, backtest, plot, report: the commands that read runs (tables or logs) or a fit file."""

from __future__ import annotations

from pathlib import Path

import click

from .. import defaults
from ..errors import InputError
from .group import cli
from .options import (emit_json, floats, json_option, law_options, level_option, table_options,
                      take_fit_options, take_table_options, warn)


def _load_table(inputs, kw, law: str | None = None):
    """The runs of `inputs`; with their checkpoints as annealed rows where --checkpoints asks for them, or by
    default under the law average (`law` auto) where the runs have curves of the fitted metric under a known
    schedule (the nested backtest then weighs each law with and without them)."""
    from ..ingest import load_table, read_logs

    asked = kw.pop("checkpoints", None)
    opts = take_table_options(kw)
    if asked is None:
        asked = "auto" if law == "auto" and not opts.get("intermediate") else False
    if not asked:
        return load_table(inputs, **opts)
    if opts.get("intermediate"):
        raise InputError("--checkpoints and --intermediate: give one (--checkpoints anneals each checkpoint, "
                         "--intermediate takes it as it is)")
    from ..annealed import NoCurves, with_annealed_checkpoints

    read = read_logs(inputs, opts["fmt"], opts.get("pattern"))
    table = load_table(inputs, read=read, **opts)
    try:
        return with_annealed_checkpoints(table, read, opts.get("metric"))
    except NoCurves:
        if asked == "auto":
            return table
        raise


def _sources(inputs) -> list[dict]:
    from ..fitfile import file_digest

    return [file_digest(p) for p in inputs if Path(p).is_file()]


def _fit_summary(fit) -> dict:
    """A fit file's content without its bulk (bootstrap samples, points): what `fit --json` prints."""
    d = fit.to_dict()
    if "candidates" in d:
        for c in d["candidates"]:
            c["fit"] = _law_summary(c["fit"])
        return d
    return _law_summary(d)


def _law_summary(d: dict) -> dict:
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
@json_option
def fit(inputs, out, as_json, **kw):
    """Fit a scaling law to the runs in INPUT (JSONL/CSV run tables, or training logs)."""
    from ..core.fit import fit_law
    from ..files import atomic_write_json
    from ..summary import describe

    law = kw.pop("law")
    fit_kws = take_fit_options(kw)
    table = _load_table(inputs, kw, law)
    result = fit_law(table, law, sources=_sources(inputs), **fit_kws)
    summary = _fit_summary(result) if as_json else None
    if out:
        atomic_write_json(out, result.to_dict())
    warn(result.warnings)
    if as_json:
        emit_json(summary)
        return
    for line in describe(result):
        click.echo(line)
    if out:
        click.echo(f"wrote {out}")


@cli.command()
@click.argument("fit_file", metavar="FIT", type=click.Path(path_type=Path))
@click.option("--compute", "-c", multiple=True, help="Target training FLOPs (repeat or comma-separate).")
@click.option("--params", "n", multiple=True, help="Target parameter count(s), with --tokens.")
@click.option("--tokens", "d", multiple=True, help="Target token count(s), with --params.")
@click.option("--at", "at", type=click.Path(path_type=Path), help="Predict every row of this run table.")
@level_option
@json_option
def predict(fit_file, compute, n, d, at, level, as_json):
    """Predict the final loss at target compute (or params and tokens) from a fit file; from a capability fit
    (fit-passrate, fit-tasks), the pass rate or the task accuracy there."""
    from ..fitfile import load_fit
    from ..runs import CONVENTIONS, load_runs
    from ..summary import PREDICTION_LINES

    compute, n, d = floats(compute, "--compute"), floats(n, "--params"), floats(d, "--tokens")
    if len(n) != len(d):  # every kind of fit reads them as pairs
        raise InputError(f"--params and --tokens: give as many of each ({len(n)} vs {len(d)})")
    fit = load_fit(fit_file)
    preds = []
    if at:
        if fit.kind not in ("law", "average"):
            raise InputError("--at predicts a loss fit's rows; give a capability fit --compute (or --params/--tokens)")
        # a compute law's targets must count compute as its runs did: converted where the rows allow it
        t = load_runs(at, convention=fit.target_convention if fit.inputs == ("compute",) else None)
        preds += fit.predict(compute=t.compute, params=t.params, tokens=t.tokens, level=level)
        for p, name, loss in zip(preds, t.names, t.loss):
            p["run"], p["actual"] = name, float(loss)
    if n:
        preds += fit.predict(params=n, tokens=d, level=level)
    if compute:
        preds += fit.predict(compute=compute, level=level)
    if not preds:
        raise InputError("nothing to predict: give --compute, --params with --tokens, or --at FILE")
    conv = getattr(fit, "target_convention", fit.compute_convention)
    warn(sorted({p["warning"] for p in preds if "warning" in p}))
    if as_json:
        emit_json({"kind": fit.kind, "law": fit.name, "compute_convention": conv, "predictions": preds},
                  "the predictions")
        return
    click.echo(f"target compute is read as {conv} ({CONVENTIONS.get(conv, conv)})")
    for line in PREDICTION_LINES[fit.kind](fit, preds):
        click.echo(line)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@table_options
@law_options
@click.option("--factors", default=",".join(map(str, defaults.BACKTEST_FACTORS)), show_default=True,
              help="Hold out everything above C_max/k for each k.")
@level_option
@json_option
def backtest(inputs, factors, level, as_json, **kw):
    """Refit on the runs below C_max/k and score the prediction of the held-out larger runs."""
    from ..core.backtest import backtest as run_backtest
    from ..summary import backtest_lines

    law = kw.pop("law")
    fit_kws = take_fit_options(kw)
    table = _load_table(inputs, kw, law)
    result = run_backtest(table, law, floats([factors], "--factors"), level=level, **fit_kws)
    warn([f"factor {s['factor']:g} skipped: {s['reason']}" for s in result["skipped"]])
    if as_json:
        emit_json(result, "the backtest")
        return
    for line in backtest_lines(result):
        click.echo(line)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@table_options
@law_options
@click.option("--target", "-t", multiple=True, help="Target compute(s) to mark (repeat or comma-separate).")
@click.option("--held-out", type=click.Path(path_type=Path),
              help="Runs not used in the fit (a run table or a log, read with the same options), drawn as "
                   "held-out points.")
@level_option
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="FILE.png, .svg or .pdf")
def plot(inputs, target, held_out, level, out, **kw):
    """Draw loss against compute with the fitted law, its interval, the targets and the residuals.

    INPUTS is a fit file (fit.json), or run tables and training logs, which are fitted first (same options as
    `fit`). A capability fit (fit-tasks: the two steps side by side for --metric, default the first; fit-passrate:
    the pass-rate law and the per-problem pass rates it implies) is drawn with its targets.
    """
    from ..core.fit import fit_law
    from ..fitfile import is_fit_file, load_fit
    from ..frontier import frontier
    from ..plots import FIGURES

    targets = floats(target, "--target")
    law, fit_kws = kw.pop("law"), take_fit_options(kw)
    if len(inputs) == 1 and is_fit_file(inputs[0]):
        fit = load_fit(inputs[0])
    else:
        held_kw = dict(kw)
        fit = fit_law(_load_table(inputs, kw, law), law, sources=_sources(inputs), **fit_kws)
        warn(fit.warnings)
        kw = held_kw
    held = None
    if held_out:
        held = [{"compute": p.compute, "loss": p.loss} for p in frontier(_load_table([held_out], {**kw, "checkpoints": False}))]
    FIGURES[fit.kind](fit, out, targets=targets, held_out=held, level=level, metric=kw.get("metric"))
    click.echo(f"wrote {out}")


@cli.command()
@click.argument("source", metavar="DIR|FIT", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="report.md")
@click.option("--target", "-t", multiple=True, help="Target compute(s) (default: the sweep config's targets).")
@click.option("--html", is_flag=True, help="Also write report.html beside it.")
def report(source, out, target, html):
    """Write a review-ready markdown report (summary, runs, parameters, backtest, figures, provenance)."""
    from ..pipeline import report_any

    report_any(source, out, targets=floats(target, "--target") or None, html=html)
    click.echo(f"wrote {out}")
