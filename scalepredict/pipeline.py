"""The whole flow in memory: a sweep's runs -> fit -> predictions -> backtest -> figures -> report. Files are its
outputs (fit.json, predictions.json, backtest.json, prediction.png, report.md), never the way data travels between
its steps: the runs are read once, each fit is made once, each target predicted once, each figure drawn once.

`run_sweep` is the `sweep` command (train, then finish); `finish_sweep` the end step alone; `gather` and
`write_report` are the `report` command's, for a sweep folder or a fit file made elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import defaults
from .config import Config
from .core.backtest import backtest
from .core.curves import MIN_POINTS
from .core.fit import fit_law
from .core.result import FitData
from .errors import InputError
from .files import SweepFolder, atomic_write_json, atomic_write_text, read_json_object
from .fitfile import LOSS_KINDS, file_digest, is_fit_file, load_fit
from .forecast import forecast_run, run_curves
from .plan import optimal_split
from .plots import prediction_figure
from .report import ReportData, capability_report, capability_section, figures, html_page, render
from .runs import RunTable, load_runs
from .summary import describe, prediction_lines
from .train.status import sweep_status
from .train.sweep import train_sweep

CAPABILITY_FILES = ("tasks.json", "passrate.json")  # capability fits a sweep (or fit) folder may hold


def run_sweep(cfg: Config, out: Path, device: str = "auto", resume: bool = False, dry_run: bool = False,
              launcher: str | None = None, echo=print, keep_state: bool = False, jobs: int | str = 1,
              finish: bool = True) -> dict | None:
    """`scalepredict sweep`: train every planned run not yet finished, then (if `finish`) fit, predict, backtest,
    draw and report. Returns what the end step made (None for a dry run or without `finish`)."""
    folder = train_sweep(cfg, out, device=device, resume=resume, dry_run=dry_run, launcher=launcher, echo=echo,
                         keep_state=keep_state, jobs=jobs)
    if folder is None or not finish:
        return None
    return finish_sweep(cfg, folder, echo)


def finish_sweep(cfg: Config, folder: SweepFolder | Path, echo=print) -> dict:
    """The end step: the compute law on the frontier (GPT-4's method; the law average of every run where the frontier
    has too few points: on the CPU demo's backtest the compute law alone is the closer of the two) and the chinchilla
    law on all runs, predictions
    at the targets (with the compute-optimal N* and D* that spend each target's exact FLOPs on this recipe's
    shapes), the backtest, the figures and the report, each made once; fit.json, fit-chinchilla.json,
    predictions.json, backtest.json, prediction.png and report.md written; the fit and the predictions printed as
    `fit` and `predict` print them."""
    folder = folder if isinstance(folder, SweepFolder) else SweepFolder(Path(folder))
    table = load_runs(folder.runs)
    for r in table.excluded:
        echo(f"warning: run {r.get('run')} {r['reason']}: left out of the fit")
    sources = [file_digest(folder.runs)]
    try:
        fit = fit_law(table, "compute", sources=sources)
    except InputError as e:  # too few frontier points (a noisy trainer's sets beaten by cheaper ones): every run
        echo(f"warning: the compute law cannot be fitted to the frontier ({str(e).split(': ', 1)[-1]}); the law "
             f"average of every run is fitted instead")
        fit = fit_law(table, "auto", sources=sources)
    atomic_write_json(folder.fit, fit.to_dict())
    chin = None
    try:
        chin = fit_law(table, "chinchilla", sources=sources)
        atomic_write_json(folder.fit_chinchilla, chin.to_dict())
    except InputError as e:
        echo(f"warning: chinchilla fit skipped: {e}")
    targets = sorted(cfg.sweep.targets) or [fit.max_compute * k for k in defaults.TARGET_FACTORS]
    preds = fit.predict(compute=targets)
    optimal = None
    if chin is not None:
        vocab = int(table.records[0].get("vocab_size") or cfg.data.vocab_size or 256)
        n_opt, d_opt = optimal_split(chin, targets, cfg, vocab)
        optimal = chin.predict(compute=targets, params=n_opt, tokens=d_opt)
        for p, c in zip(preds, optimal):
            p["optimal_params"], p["optimal_tokens"] = c["params"], c["tokens"]
            p["chinchilla_loss"], p["chinchilla_lower"], p["chinchilla_upper"] = c["loss"], c["lower"], c["upper"]
    atomic_write_json(folder.predictions, {"law": fit.name, "compute_convention": fit.compute_convention,
                                           "predictions": preds})
    bt, why = report_backtest(table, fit)
    if bt is not None:
        atomic_write_json(folder.backtest, bt)
    for w in fit.warnings + sorted({p["warning"] for p in preds if "warning" in p}):
        echo(f"warning: {w}")
    prediction_figure(fit, folder.prediction_png, targets=targets)
    meta = read_json_object(folder.meta, "a sweep file (sweep.json)")
    data = ReportData(meta.get("config", {}).get("name") or cfg.name, fit, chin, table, meta, targets,
                      defaults.LEVEL, preds, optimal, bt, folder.path, why or "", plan_budgets(meta))
    write_report(data, folder.report, prediction_png=folder.prediction_png.name)
    echo("")
    for line in describe(fit) + [""] + prediction_lines(preds):
        echo(line)
    echo(f"wrote {folder.fit}, {folder.predictions}, {folder.prediction_png}, {folder.report}")
    return {"fit": fit, "chinchilla": chin, "predictions": preds, "backtest": bt}


def report_backtest(table: RunTable, fit) -> tuple[dict | None, str | None]:
    """The report's backtest: the fit's law refitted below C_max / k for the factors the runs' compute span allows
    (defaults.REPORT_BACKTEST_FACTORS), with a smaller bootstrap; (None, why) where none can be made."""
    span = table.compute.max() / table.compute.min()
    factors = [k for k in defaults.REPORT_BACKTEST_FACTORS if k < span]
    if not factors:
        return None, f"the runs span {span:.3g}x in compute, too little to hold any out"
    one = fit.members[0].fit
    try:
        return backtest(table, fit.name, factors, delta=one.delta, n_bootstrap=defaults.REPORT_BACKTEST_BOOTSTRAP,
                        seed=one.seed), None
    except InputError as e:
        return None, str(e).split(": ", 1)[-1]


def plan_budgets(meta: dict | None) -> dict:
    """Run id -> planned budget, from sweep.json's plan and bracketing runs (the curves figure's shading)."""
    out = {}
    for key in ("plan", "bracket"):
        for spec in (meta or {}).get(key) or []:
            if isinstance(spec, dict) and isinstance(spec.get("run"), str) and isinstance(spec.get("budget"),
                                                                                        (int, float)):
                out[spec["run"]] = spec["budget"]
    return out


def _table_from_fit(fit) -> RunTable:
    """The fitted points of a fit file, as runs (a report of a fit made elsewhere)."""
    d: FitData = fit.data
    recs = [{"run": n, "compute": float(c), "loss": float(l), "_where": "fit points",
             **({"params": float(p), "tokens": float(t)} if np.isfinite(p) and np.isfinite(t) else {})}
            for n, c, l, p, t in zip(d.names, d.compute, d.loss, d.n_params, d.tokens)]
    return RunTable(recs, ["fit points"])


def gather(source, targets=None, level: float = defaults.LEVEL) -> ReportData:
    """What `report` shows for SOURCE (a sweep folder, or a loss fit file): the fit (and a sweep's chinchilla fit,
    runs, config and backtest), the predictions at the targets, and the backtest (backtest.json where a sweep wrote
    one, else made here)."""
    source = Path(source)
    meta, chin, table, bt, sweep_dir, why = None, None, None, None, None, None
    if source.is_dir():
        folder, sweep_dir = SweepFolder(source), source
        fit = load_fit(folder.fit, LOSS_KINDS)
        if folder.fit_chinchilla.exists():
            chin = load_fit(folder.fit_chinchilla, LOSS_KINDS)
        if folder.meta.exists():
            meta = read_json_object(folder.meta, "a sweep file (sweep.json)")
        if folder.runs.exists():
            table = load_runs(folder.runs)
        if folder.backtest.exists():
            bt = read_json_object(folder.backtest, "a backtest file (backtest.json)")
    else:
        fit = load_fit(source, LOSS_KINDS)
    if table is None:
        table = _table_from_fit(fit)
    if bt is None:
        bt, why = report_backtest(table, fit)
    config = (meta or {}).get("config") if isinstance((meta or {}).get("config"), dict) else {}
    if targets is None:
        targets = (config.get("sweep") or {}).get("targets") or [fit.max_compute * k for k in defaults.TARGET_FACTORS]
    targets = sorted(float(t) for t in targets)
    optimal = chin.predict(compute=targets, level=level) if chin is not None else None
    caps = [load_fit(source / name) for name in CAPABILITY_FILES if source.is_dir() and is_fit_file(source / name)]
    return ReportData(config.get("name") or source.stem, fit, chin, table, meta, targets, level,
                      fit.predict(compute=targets, level=level), optimal, bt, sweep_dir, why or "", plan_budgets(meta),
                      caps)


def write_report(data: ReportData, out: Path, html: bool = False, prediction_png: str | None = None) -> Path:
    """The report and its figures, written beside `out` (report.md); `prediction_png`: a prediction figure already
    drawn beside it (a sweep's prediction.png), referenced instead of drawn again."""
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"{out}: folder {out.parent} does not exist")
    text = render(data, figures(data, out.parent, out.stem, prediction_png))
    for cap in data.capabilities:
        text += "\n" + "\n".join(capability_section(cap, None, data.level, out.parent, out.stem))
    _write(out, text, html)
    return out


def report_any(source, out, targets=None, html: bool = False, level: float = defaults.LEVEL) -> Path:
    """`scalepredict report`: a sweep folder or a loss fit file (gather), or a capability fit file alone."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if source.is_file() and is_fit_file(source):
        fit = load_fit(source)
        if fit.kind not in LOSS_KINDS:
            if not out.parent.is_dir():
                raise InputError(f"{out}: folder {out.parent} does not exist")
            _write(out, capability_report(fit, source, out.parent, out.stem, targets, level), html)
            return out
    return write_report(gather(source, targets, level), out, html)


def _write(out: Path, text: str, html: bool) -> None:
    if html:
        try:
            import markdown  # noqa: F401
        except ImportError:
            raise InputError("--html needs the markdown package (pip install markdown)") from None
    atomic_write_text(out, text)
    if html:
        atomic_write_text(out.with_suffix(".html"), html_page(text))


def status_with_forecasts(folder) -> dict:
    """`scalepredict status`: where a sweep stands (train/status.py), with the loss each running or stopped run is
    forecast to reach at its last step (its validation curve where it logs one, else its train loss, under its
    planned schedule: forecast.py)."""
    st = sweep_status(folder)
    for row in st["runs"]:
        if row["state"] not in ("running", "stopped") or not row["steps_done"]:
            continue
        log = SweepFolder(Path(st["folder"])).run(row["run"]).log
        try:
            curves = {c.metric: c for c in run_curves([log], None)}
            curves.update({c.metric: c for c in run_curves([log], "train_loss")})
            val = curves.get("val_loss")
            curve = val if val is not None and len(val.steps) >= 2 * MIN_POINTS else curves["train_loss"]
            f = forecast_run(curve, n_boot=100)
            row["forecast"] = {"metric": curve.metric, "step": f["step"], "loss": f["loss"], "lower": f["lower"],
                               "upper": f["upper"], "decay_unseen": bool(f["warnings"])}
        except (InputError, KeyError) as e:
            row["forecast_note"] = str(e).split(": ", 2)[-1] if isinstance(e, InputError) else "no loss logged yet"
    return st
