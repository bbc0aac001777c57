"""ingest: training logs into curves, and into a run table."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from .group import cli
from .options import check_positive, emit_json, format_option, json_option, log_meta_options, warn


@cli.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@format_option
@log_meta_options
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), help="Write a run table (runs.jsonl).")
@json_option
def ingest(logs, fmt, metric, pattern, params, tokens_per_step, run_meta, name_pattern, last_k, intermediate, out,
           as_json):
    """Read training logs into curves, and (with -o) into a run table.

    Params and tokens per run come from --run-meta, else --params/--tokens-per-step, else the log itself
    (hparams.yaml, config.json beside trainer_state.json, W&B config columns, Megatron's consumed tokens;
    12 * n_layer * d_model^2 where only the shape is given). By default only each run's final value is kept:
    the middle of a cosine run is not the end of a shorter run; --intermediate keeps every point.
    """
    from ..files import atomic_write_text, dumps_json
    from ..ingest import compile_name_pattern, load_run_meta, read_logs, records_from_logs
    from ..textfmt import num

    check_positive(params, "--params")
    check_positive(tokens_per_step, "--tokens-per-step")
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
        atomic_write_text(out, "".join(dumps_json(r, str(out), indent=None) + "\n" for r in records))
    for c in all_curves:
        for f in c.flags[:3]:
            warn([f"{c.source}: {c.run} {c.metric}: {f['kind']} at step {f['step']}"])
    warn(dict.fromkeys([c.meta["note"] for c in all_curves if c.meta.get("note")]
                       + [r["note"] for r in records if r.get("note")]))
    if as_json:
        emit_json({"curves": [c.summary() for c in all_curves]})
        return
    click.echo(f"{'run':<28} {'metric':<28} {'points':>6} {'first':>7} {'last':>8} {'last value':>10}  flags")
    for c in all_curves:
        s = c.summary()
        click.echo(f"{s['run'][:28]:<28} {s['metric'][:28]:<28} {s['n_points']:>6} {s['first_step']:>7} "
                   f"{s['last_step']:>8} {num(s['last_value']):>10}  {len(c.flags) or ''}")
    if out:
        click.echo(f"wrote {out} ({len(records)} rows)")
