"""A review-ready report: a one-page summary first (predictions with intervals, recommended N* and D*, the
backtest error at the largest factor the data allows), then the runs, the parameters, the backtest, the figures
and the provenance. Deterministic: the same inputs give the same bytes except the line starting "Generated".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__, defaults
from .errors import InputError
from .files import atomic_write_text
from .fit import Fit
from .fitfile import load_fit
from .frontier import isoflop_groups
from .runs import RunTable, load_runs


def fmt(x, digits: int = 6) -> str:
    """The one number format of the report (tests compare report numbers with fit.json through it)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def _table_from_fit(fit: Fit) -> RunTable:
    d = fit.data
    recs = [{"run": n, "compute": float(c), "loss": float(l), "_where": "fit points",
             **({"params": float(p), "tokens": float(t)} if np.isfinite(p) and np.isfinite(t) else {})}
            for n, c, l, p, t in zip(d.names, d.compute, d.loss, d.params, d.tokens)]
    return RunTable(recs, ["fit points"])


def report_backtest(table: RunTable, fit: Fit) -> dict | None:
    """The report's backtest: the fit's law refitted below C_max / k for the factors the runs' compute span allows
    (3, 10, 30, 100, 1000), 200 bootstrap resamples each; None where no factor fits. A sweep writes it to
    backtest.json at its end step, and the report reads that file instead of running it again."""
    from .backtest import backtest

    span = table.compute.max() / table.compute.min()
    factors = [k for k in (3, 10, 30, 100, 1000) if k < span]
    if not factors:
        return None
    try:
        one = fit.primary if hasattr(fit, "members") else fit
        return backtest(table, "auto" if hasattr(fit, "members") else fit.law, factors, delta=one.delta,
                        n_bootstrap=200, seed=one.seed)
    except InputError:
        return None


@dataclass
class ReportData:
    """Everything the report shows, gathered before anything is rendered."""

    name: str
    fit: Fit
    chin: Fit | None
    table: RunTable
    meta: dict | None
    targets: list[float]
    level: float
    preds: list[dict]
    optimal: list[dict] | None
    backtest: dict | None
    sweep_dir: Path | None


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path}: corrupt {what}") from None


def gather(source, targets=None, level: float = defaults.LEVEL) -> ReportData:
    """The fit (and a sweep's chinchilla fit, runs, config and backtest where SOURCE is a sweep folder), the
    predictions at the targets and the backtest (read from backtest.json where it exists, else run)."""
    source = Path(source)
    meta, chin, table, bt, sweep_dir = None, None, None, None, None
    if source.is_dir():
        sweep_dir = source
        fit = load_fit(source / "fit.json")
        if (source / "fit-chinchilla.json").exists():
            chin = load_fit(source / "fit-chinchilla.json")
        if (source / "sweep.json").exists():
            meta = _read_json(source / "sweep.json", "sweep file")
        if (source / "runs.jsonl").exists():
            table = load_runs(source / "runs.jsonl")
        if (source / "backtest.json").exists():
            bt = _read_json(source / "backtest.json", "backtest file")
    else:
        fit = load_fit(source)
    if table is None:
        table = _table_from_fit(fit)
    if bt is None:
        bt = report_backtest(table, fit)
    if targets is None:
        targets = (meta or {}).get("config", {}).get("sweep", {}).get("targets") or [
            fit.max_compute * k for k in (10, 100, 1000, 10000)]
    targets = sorted(float(t) for t in targets)
    name = (meta or {}).get("config", {}).get("name") or source.stem
    return ReportData(name, fit, chin, table, meta, targets, level, fit.predict(compute=targets, level=level),
                      chin.predict(compute=targets, level=level) if chin is not None else None, bt, sweep_dir)


def figures(data: ReportData, figdir: Path, stem: str) -> list[tuple[str, str]]:
    """The report's figures, written next to it: (file name, caption)."""
    from . import plots

    fit, table, meta = data.fit, data.table, data.meta
    figs = []
    plots.prediction_figure(fit, figdir / f"{stem}-prediction.png", targets=data.targets, level=data.level)
    figs.append((f"{stem}-prediction.png", "Loss against compute, the fitted law and its extrapolation"))
    if np.all(np.isfinite(table.params)) and any(len(g) >= 3 for g in isoflop_groups(table)):
        plots.isoflop_figure(table, figdir / f"{stem}-isoflop.png",
                             added={b["run"] for b in (meta or {}).get("bracket", [])})
        figs.append((f"{stem}-isoflop.png", "IsoFLOP sets"))
    if data.chin is not None:
        plots.optimal_figure(data.chin, figdir / f"{stem}-optimal.png", targets=data.targets, table=table)
        figs.append((f"{stem}-optimal.png", "Compute-optimal parameters and tokens"))
    if data.backtest is not None:
        plots.backtest_figure(data.backtest, figdir / f"{stem}-backtest.png")
        figs.append((f"{stem}-backtest.png", "Backtest: error against extrapolation distance"))
    if data.sweep_dir is not None and list((data.sweep_dir / "runs").glob("*/log.jsonl")):
        plots.curves_figure(data.sweep_dir, figdir / f"{stem}-curves.png")
        figs.append((f"{stem}-curves.png", "Training curves"))
    return figs


CAPABILITY_FILES = ("tasks.json", "passrate.json")  # capability fits a sweep (or fit) folder may hold


def capability_section(cap, targets, level, figdir: Path, stem: str) -> list[str]:
    """The report's capabilities section for a task fit or a pass-rate fit: the fit, the predictions at the
    targets with their intervals, and its figure (written beside the report)."""
    from . import plots

    L = ["## Capabilities", ""]
    if cap.kind == "passrate":
        targets = targets or [float(np.max(cap.compute)) * k for k in (10, 100, 1000)]
        L.append(f"GPT-4's pass-rate law, `-mean log pass_rate = alpha * C^(-k)`, on {len(cap.models)} models and the "
                 f"{len(cap.problems)} problems every one of them solves ({len(cap.dropped)} left out): "
                 f"alpha = {fmt(cap.alpha, 4)}, k = {fmt(cap.k, 4)}.")
        L += ["", f"| target compute (FLOPs) | -mean log pass rate | {level:.0%} interval | mean pass rate | "
                  f"{level:.0%} interval |", "|---:|---:|:---:|---:|:---:|"]
        for p in cap.predict(targets, level=level):
            L.append(f"| {fmt(p['compute'], 3)} | {fmt(p['metric'], 4)} | [{fmt(p['lower'], 4)}, {fmt(p['upper'], 4)}]"
                     f" | {p['mean_pass_rate']:.3f} | [{p['mean_pass_rate_lower']:.3f}, "
                     f"{p['mean_pass_rate_upper']:.3f}] |")
        plots.passrate_figure(cap, figdir / f"{stem}-passrate.png", targets=targets, level=level)
        L += ["", f"![The pass-rate law]({stem}-passrate.png)", ""]
    else:
        targets = targets or [float(np.max(cap.metrics[0].compute)) * k for k in (10, 100)]
        laws = ", ".join(f"`{k}` by the {v.law.name} law" for k, v in cap.steps1.items())
        L.append(f"Two steps: {laws}, then each metric from its task loss "
                 f"(forms weighted by how well each predicts the runs of lowest loss when fitted on the others). "
                 f"The direct form (the metric against compute alone) is shown for comparison.")
        L += ["", f"| target compute (FLOPs) | metric | predicted task loss | two-step | {level:.0%} interval | "
                  f"direct |", "|---:|---|---:|---:|:---:|---:|"]
        for p in cap.predict(compute=targets, level=level):
            d = p.get("direct")
            L.append(f"| {fmt(p['compute'], 3)} | {p['metric']} | {fmt(p['task_loss'], 4)} | {p['value']:.4f} | "
                     f"[{p['lower']:.4f}, {p['upper']:.4f}] | {'-' if d is None else format(d['value'], '.4f')} |")
        for d in cap.left_out:
            L.append(f"\nLeft out: {d['metric']} ({d['reason']}).")
        for m in cap.metrics[:6]:
            name = f"{stem}-task-{''.join(ch if ch.isalnum() else '_' for ch in m.name)[:60]}.png"
            plots.task_figure(cap, figdir / name, targets=targets, metric=m.name, level=level)
            L += ["", f"![{m.name}: task loss against compute, and the metric against the task loss]({name})"]
        L.append("")
    return L


def write_report(source, out, targets=None, html: bool = False, level: float = defaults.LEVEL) -> Path:
    from .fitfile import load_capability_file

    out = Path(out)
    if not out.parent.exists():
        raise InputError(f"{out}: folder {out.parent} does not exist")
    cap = load_capability_file(source) if Path(source).is_file() else None
    if cap is not None:
        text = "\n".join([f"# Capability prediction: {Path(source).stem}", "",
                          f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by scalepredict "
                          f"{__version__}.", ""] + capability_section(cap, targets, level, out.parent, out.stem))
    else:
        data = gather(source, targets, level)
        text = render(data, figures(data, out.parent, out.stem))
        if Path(source).is_dir():
            for name in CAPABILITY_FILES:
                extra = load_capability_file(Path(source) / name)
                if extra is not None:
                    text += "\n" + "\n".join(capability_section(extra, None, level, out.parent, out.stem))
    atomic_write_text(out, text)
    if html:
        try:
            import markdown
        except ImportError:
            raise InputError("--html needs the markdown package (pip install markdown)") from None
        body = markdown.markdown(text, extensions=["tables"])
        atomic_write_text(out.with_suffix(".html"), "<!doctype html><meta charset='utf-8'><title>scalepredict report"
                          f"</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-"
                          f"collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}img{{max-width:100%}}"
                          f"</style>{body}")
    return out


def _parameter_table(fit: Fit) -> list[str]:
    L = ["| parameter | value | stderr | bootstrap 5% | bootstrap 95% |", "|---|---:|---:|---:|---:|"]
    for p in fit.params.values():
        value = fmt(p.value) + (" (at bound)" if p.at_bound else "")
        L.append(f"| {p.name} | {value} | {fmt(p.stderr)} | {fmt(p.quantiles.get('0.05'))} | "
                 f"{fmt(p.quantiles.get('0.95'))} |")
    L.append("")
    L.append(f"Objective: {'linear' if fit.delta is None else 'huber'} loss on log-loss residuals"
             + (f" (delta {fmt(fit.delta)})" if fit.delta else "") + f", {fit.n_starts} starting points; residual "
             f"scale {fmt(fit.noise_sigma, 3)}; model-error prior {fmt(fit.model_error_per_decade, 3)} per decade "
             f"of extrapolation; bootstrap {0 if fit.bootstrap is None else len(fit.bootstrap)} resamples "
             f"(seed {fit.seed}).")
    L.append("")
    return L


def render(data: ReportData, figs: list[tuple[str, str]]) -> str:
    """The markdown report from gathered data: deterministic but for the line starting "Generated"."""
    fit, chin, table, meta, level = data.fit, data.chin, data.table, data.meta, data.level
    preds, opt, bt = data.preds, data.optimal, data.backtest
    L = []
    L.append(f"# Loss prediction: {data.name}")
    L.append("")
    L.append(f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by scalepredict {__version__}.")
    L.append("")
    L.append("## Summary")
    L.append("")
    L.append(f"Law: `{fit.law.formula}` ({fit.law.name}), fitted on {fit.n_points} "
             f"{'frontier points' if fit.data.frontier is not None else 'runs'} from {fmt(fit.data.compute.min(), 3)} "
             f"to {fmt(fit.max_compute, 3)} FLOPs; {'converged' if fit.converged else '**did not converge**'}.")
    L.append("")
    L.append(f"| target compute (FLOPs) | × largest run | predicted loss | {level:.0%} interval |"
             + (" N* (params) | D* (tokens) |" if opt else ""))
    L.append("|---:|---:|---:|:---:|" + ("---:|---:|" if opt else ""))
    for i, p in enumerate(preds):
        band = f"[{fmt(p['lower'], 4)}, {fmt(p['upper'], 4)}]" if p["lower"] is not None else "not computable"
        row = f"| {fmt(p['compute'], 3)} | {fmt(p['extrapolation'], 3)} | {fmt(p['loss'], 4)} | {band} |"
        if opt:
            row += f" {fmt(opt[i]['params'], 3)} | {fmt(opt[i]['tokens'], 3)} |"
        L.append(row)
    L.append("")
    if bt is not None:
        top = max(b["factor"] for b in bt["by_factor"])
        b = next(b for b in bt["by_factor"] if b["factor"] == top)
        cov = "–" if b["coverage"] is None else f"{b['coverage']:.0%}"
        L.append(f"Backtest at the largest factor the data allows (fit on runs up to C_max/{top:g}): mean absolute "
                 f"error {b['mape'] * 100:.2f}%, worst {b['max_abs_error'] * 100:.2f}%, {level:.0%} intervals "
                 f"covered {cov} of {b['n']} held-out points.")
    else:
        L.append("Backtest: not possible (the runs span too little compute to hold any out).")
    L.append("")
    for w in fit.warnings:
        L.append(f"> **Warning:** {w}")
        L.append("")

    L.append("## Fitted parameters")
    L.append("")
    if hasattr(fit, "members"):
        L.append("`--law auto`: the laws below are averaged (weighted log predictions; weights from a nested backtest "
                 "inside the fitted range: mean absolute log error on the largest groups, held out); the interval is "
                 "that of the mixture of their predictive distributions.")
        L.append("")
        L.append("| law | weight | nested score |")
        L.append("|---|---:|---:|")
        for m in fit.members:
            L.append(f"| {m.candidate.name} | {fmt(m.weight, 3)} | "
                     f"{'–' if m.score is None else f'{m.score:.2%}'} |")
        L.append("")
        for m in fit.members:
            L.append(f"### {m.candidate.name}: `{m.fit.law.formula}`")
            L.append("")
            L += _parameter_table(m.fit)
    else:
        L += _parameter_table(fit)
    if chin is not None:
        L.append("Chinchilla fit on all runs: " + ", ".join(f"{n} = {fmt(float(v), 4)}"
                                                          for n, v in zip(chin.law.names, chin.values)) + ".")
        L.append("")

    L.append("## Runs")
    L.append("")
    L.append("| run | budget | params | tokens | compute (FLOPs) | loss | status |")
    L.append("|---|---:|---:|---:|---:|---:|---|")
    for r in sorted(table.records + table.excluded, key=lambda r: (r.get("compute") or 0, str(r.get("run")))):
        L.append(f"| {r.get('run', '')} | {fmt(r.get('budget'), 3)} | {fmt(r.get('params'), 4)} | "
                 f"{fmt(r.get('tokens'), 4)} | {fmt(r.get('compute'), 4)} | {fmt(r.get('loss'), 5)} | "
                 f"{r.get('status', 'ok')} |")
    L.append("")
    if bt is not None:
        L.append("## Backtest")
        L.append("")
        L.append(f"| k | fitted up to | compute | predicted | actual | error | {level:.0%} interval | covered |")
        L.append("|---:|---:|---:|---:|---:|---:|:---:|:---:|")
        for c in bt["cases"]:
            band = f"[{fmt(c['lower'], 4)}, {fmt(c['upper'], 4)}]" if c["lower"] is not None else "–"
            L.append(f"| {c['factor']:g} | {fmt(c['fit_max_compute'], 3)} | {fmt(c['compute'], 3)} | "
                     f"{fmt(c['predicted'], 4)} | {fmt(c['actual'], 4)} | {c['rel_error'] * 100:+.2f}% | {band} | "
                     f"{'yes' if c['covered'] else 'no'} |")
        L.append("")
    L.append("## Figures")
    L.append("")
    for f, caption in figs:
        L.append(f"![{caption}]({f})")
        L.append("")
    L.append("## Provenance")
    L.append("")
    if meta:
        L.append(f"- config: `{meta.get('config_file')}` (digest {meta.get('config_digest')})")
        dd = meta.get("data", {})
        L.append(f"- data: {dd.get('description')}; fingerprint `{dd.get('fingerprint')}`; "
                 f"{dd.get('train_tokens'):,} train / {dd.get('val_tokens'):,} validation tokens")
        v = meta.get("versions", {})
        L.append(f"- versions: scalepredict {v.get('scalepredict')}, torch {v.get('torch')}, python {v.get('python')}")
        L.append(f"- device: {meta.get('device')}")
    for i in fit.inputs:
        L.append(f"- fit input: `{i['path']}` sha256 `{i['sha256']}`")
    L.append("")
    return "\n".join(L)
