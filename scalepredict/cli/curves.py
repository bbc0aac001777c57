"""forecast: the loss a run still training will reach, from its curve so far and its schedule."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..textfmt import band as textband
from .group import cli
from .options import FORMATS, emit_json, json_option, level_option, warn


@cli.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--metric", help="The loss to forecast (default: the log's validation loss).")
@click.option("--schedule", help="The run's learning-rate schedule to its end: a spec such as "
                                 "cosine:total=20000,warmup=700,final=0.1 (also linear, constant, wsd with decay=), or "
                                 "a CSV of step,lr. Default: a scalepredict sweep's plan, or the LR the log recorded.")
@click.option("--at-step", type=click.IntRange(1), help="Forecast the loss at this step (default: the schedule's "
                                                          "last step).")
@click.option("--schedule-what-if", "what_if", help="Also forecast the run under this schedule (a spec or CSV), e.g. "
                                                    "decaying now instead of at the planned end.")
@click.option("--law", type=click.Choice(["auto", "annealing", "multipower", "power"]), default="auto",
              show_default=True, help="The law of the curve: auto averages the laws by how well each predicts the "
                                      "last 30% of the curve from the rest (docs/curves.md).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@level_option
@click.option("--plot", type=click.Path(path_type=Path), help="Draw the curves and forecasts (.png, .svg, .pdf).")
@click.option("--follow", is_flag=True, help="Forecast again as the logs grow, until every run reaches its last step "
                                             "(or Ctrl-C).")
@click.option("--interval", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="--follow: seconds between looks at the logs.")
@json_option
def forecast(logs, metric, schedule, at_step, what_if, law, fmt, level, plot, follow, interval, as_json):
    """Forecast each run's loss at its last step (or --at-step) from its curve so far, with its interval.

    The schedule after the last logged step must be known (--schedule, a sweep's plan, or the log's own LR)."""
    from ..core.schedules import parse
    from ..forecast import forecast_run, run_curves

    given = parse(schedule) if schedule else None
    other = parse(what_if) if what_if else None
    seen: dict = {}
    while True:
        curves = run_curves(logs, metric, fmt)
        fresh = [c for c in curves if seen.get((c.source, c.run)) != (len(c.steps), c.steps[-1] if len(c.steps) else 0)]
        results = [forecast_run(c, given, at_step, level, law, other) for c in fresh]
        for c in fresh:
            seen[(c.source, c.run)] = (len(c.steps), c.steps[-1] if len(c.steps) else 0)
        if results:
            _show(results, as_json, level)
            if plot:
                from ..plots import forecast_figure

                forecast_figure(results, plot, level)
        if not follow or all(r["last_step"] >= r["step"] for r in results) and results:
            return
        time.sleep(interval)


def _show(results, as_json, level) -> None:
    from ..forecast import public

    if as_json:
        emit_json({"forecasts": [public(r) for r in results]}, "the forecasts")
        return
    warn([w for r in results for w in r["_fit"].warnings + r["warnings"]])
    click.echo(f"{'run':<28} {'metric':<12} {'at step':>8} {'loss':>8}  {int(round(level * 100))}% interval"
               f"{'':6} law        from")
    for r in results:
        band = textband(r)
        click.echo(f"{r['run'][:28]:<28} {r['metric'][:12]:<12} {r['step']:>8} {r['loss']:>8.4f}  {band:<21} "
                   f"{r['law']:<10} {r['points']} points to step {r['last_step']} ({r['schedule']})")
        if "what_if" in r:
            w = r["what_if"]
            click.echo(f"{'':<28} {'what if':<12} {w['step']:>8} {w['loss']:>8.4f}  {textband(w)}  {w['schedule']}")
