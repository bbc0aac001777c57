"""The options the commands share, declared once, every default from defaults.py; and the small helpers every
command uses (numbers from options, one JSON document, warnings). Nothing here imports numpy: `--help` and argument
errors stay fast."""

from __future__ import annotations

import math
from pathlib import Path

import click

from .. import defaults
from ..errors import InputError
from ..files import dumps_json

LAWS = ("auto", *defaults.LAW_NAMES)
FORMATS = ("auto", *defaults.LOG_FORMATS)
COLUMNS = ("compute", "params", "tokens", "loss", "run", "budget")


def _stack(opts):
    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return deco


def level_option(f):
    return click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=defaults.LEVEL,
                        show_default=True, help="Two-sided level of every interval.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(f)


def format_option(f):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
                        help="auto (detected from the content), runs (a JSONL/CSV run table), or a log format: "
                             + "; ".join(f"{k}: {v}" for k, v in defaults.LOG_FORMATS.items() if k != "runs")
                             + ".")(f)


def log_meta_options(f):
    """What logs do not say about their runs: the metric, params and tokens per step, a run-meta file, names."""
    return _stack([
        click.option("--metric", help="Logs: the metric to use (default: the validation loss the log has)."),
        click.option("--pattern", help="Logs: a regex with named groups step and value (optionally tokens, run)."),
        click.option("--params", "params", type=float, help="Logs: the model's parameter count."),
        click.option("--tokens-per-step", type=float, help="Logs: tokens per optimizer step (tokens = step * this)."),
        click.option("--run-meta", type=click.Path(path_type=Path),
                     help="Logs: a CSV/JSONL file, one row per run (name or glob): params, tokens, tokens_per_step, "
                          "compute, budget. It wins over --params/--tokens-per-step, which win over the log."),
        click.option("--name-pattern",
                     help="Logs: a regex read from each run's name, with named groups params, tokens, compute, "
                          "budget or tokens_per_step, e.g. '(?P<params>\\d+[MB])' reads 150M and 1B."),
        click.option("--last-k", type=click.IntRange(1), default=1, show_default=True,
                     help="Logs: a run's loss is the mean of its last k points."),
        click.option("--intermediate", is_flag=True,
                     help="Keep intermediate checkpoints as points (caveat: the middle of a cosine run is not the "
                          "end of a shorter run)."),
    ])(f)


def table_options(f):
    """Options that read a run table (or training logs, see `ingest`)."""
    return _stack([
        format_option,
        *[click.option(f"--{c}-col", help=f"Column holding the {c}" + (" (FLOPs)." if c == "compute" else "."))
          for c in COLUMNS],
        click.option("--compute-convention", type=click.Choice(defaults.CONVENTION_NAMES),
                     help="Fit compute in this convention, converting each run where its params and tokens (6nd) "
                          "or shape (exact) allow. Default: the one the runs share; mixed runs are converted to "
                          "6nd where they can be, else refused."),
        log_meta_options,
        click.option("--checkpoints/--no-checkpoints", default=None,
                     help="Logs (or a sweep's runs.jsonl beside its runs' logs): each run's checkpoints at 1/4, "
                          "1/2 and 3/4 of its steps as the finals of shorter runs, through the multi-power law of "
                          "its curve (and its size's cheaper runs') under its schedule; --law auto weighs each law "
                          "with and without them. Default: on with --law auto where runs have curves of the "
                          "fitted metric under a known schedule, else off (docs/curves.md)."),
    ])(f)


def law_options(f):
    return _stack([
        click.option("--law", type=click.Choice(LAWS), default="auto", show_default=True,
                     help="auto: the average of the laws the runs support, each scored by a nested backtest "
                          "(docs/fitting.md); compute: L=a*C^b+c (GPT-4); chinchilla: L=E+A/N^alpha+B/D^beta; "
                          "chinchilla_tied: the same with alpha=beta (Gadre et al. 2024); chinchilla_nd: "
                          "L=E+A/N^alpha+B*N^gamma/D^beta (an N x D term, after Farseer); power: L=a*C^b."),
        click.option("--huber-delta", type=float, default=defaults.HUBER_DELTA, show_default=True,
                     help="Huber loss delta on log-loss residuals."),
        click.option("--no-huber", is_flag=True, help="Plain least squares instead of the Huber loss."),
        click.option("--bootstrap", "n_bootstrap", type=click.IntRange(0), default=defaults.BOOTSTRAP,
                     show_default=True, help="Bootstrap resamples over runs (0 turns it off)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed."),
        click.option("--all-points", is_flag=True,
                     help="compute/power laws: fit every run, not the compute-efficient frontier."),
        click.option("--floor", type=float, default=None,
                     help="An irreducible loss known from outside these runs (a larger related fit, a planning "
                          "assumption): a single law's floor is fixed there; --law auto weighs each law with the "
                          "floor fixed against the same law fitted freely, by its nested backtest."),
        click.option("--floor-from", type=click.Path(path_type=Path),
                     help="--floor taken from a related fit file (a ladder on the same data and tokenizer: "
                          "its law's c or E, a law average's weighted over its laws)."),
    ])(f)


def take_table_options(kw: dict) -> dict:
    """The table options out of a command's keywords, as load_table's keywords."""
    out = {"columns": {c: kw.pop(f"{c}_col") for c in COLUMNS}, "fmt": kw.pop("fmt", "auto")}
    for k in ("metric", "params", "tokens_per_step", "pattern", "intermediate", "last_k", "run_meta",
              "compute_convention", "name_pattern"):
        if k in kw:
            out[k] = kw.pop(k)
    check_positive(out.get("params"), "--params")
    check_positive(out.get("tokens_per_step"), "--tokens-per-step")
    return out


def take_fit_options(kw: dict) -> dict:
    """The law options out of a command's keywords, as fit_law's keywords."""
    no_huber, delta = kw.pop("no_huber"), kw.pop("huber_delta")
    if not no_huber and not (math.isfinite(delta) and delta > 0):
        raise InputError(f"--huber-delta must be a positive number, got {delta} (use --no-huber for least squares)")
    floor, floor_from = kw.pop("floor", None), kw.pop("floor_from", None)
    check_positive(floor, "--floor")
    if floor_from is not None:
        if floor is not None:
            raise InputError("--floor and --floor-from: give one")
        from ..fitfile import floor_of

        floor = floor_of(floor_from)
    return dict(delta=None if no_huber else delta, n_bootstrap=kw.pop("n_bootstrap"), seed=kw.pop("seed"),
                all_points=kw.pop("all_points"), floor=floor)


def check_positive(x, option: str) -> None:
    if x is not None and not (math.isfinite(x) and x > 0):
        raise InputError(f"{option}: must be a positive number, got {x:g}")


def floats(values, option: str) -> list[float]:
    """Positive finite numbers from repeated and/or comma-separated option values ('1e21,1e22')."""
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


def jobs_value(value: str) -> int | str:
    """--jobs: a positive integer, or auto."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"--jobs must be a positive integer or auto, got {value!r}")
    return int(value)


def emit_json(obj, what: str = "the result") -> None:
    """One JSON document on stdout; a NaN or infinity is refused with a line naming it (files.dumps_json)."""
    click.echo(dumps_json(obj, what))


def warn(msgs) -> None:
    for m in msgs:
        click.echo(f"warning: {m}", err=True)


def need_torch(command: str) -> None:
    """Training needs torch, which the package leaves to the `train` extra (fitting never imports it)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise InputError(f"{command} trains models and needs torch: pip install 'scalepredict[train]' (a CPU build: "
                         f"pip install torch --index-url https://download.pytorch.org/whl/cpu)")
