"""A review-ready report: a one-page summary first (predictions with intervals, recommended N* and D*, the
backtest error at the largest factor the data allows), then the runs, the parameters, the backtest, the figures
and the provenance. Deterministic: the same inputs give the same bytes except the line starting "Generated".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__, defaults, plots
from .frontier import isoflop_groups
from .runs import RunTable


def fmt(x, digits: int = 6) -> str:
    """The one number format of the report (tests compare report numbers with fit.json through it)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


@dataclass
class ReportData:
    """Everything the report shows, gathered before anything is rendered."""

    name: str
    fit: object  # a loss fit: one law or the law average (core/result.py's face)
    chin: object | None  # a sweep's chinchilla fit on all runs, for N* and D*
    table: RunTable
    meta: dict | None  # sweep.json
    targets: list[float]
    level: float
    preds: list[dict]
    optimal: list[dict] | None
    backtest: dict | None
    sweep_dir: Path | None
    no_backtest: str = "the runs span too little compute to hold any out"  # why there is no backtest
    budgets: dict = field(default_factory=dict)  # run id -> planned budget (the curves figure's shading)
    capabilities: list = field(default_factory=list)  # capability fits beside the loss fit (tasks, pass rate)


def figures(data: ReportData, figdir: Path, stem: str, prediction_png: str | None = None) -> list[tuple[str, str]]:
    """The report's figures, written next to it: (file name, caption). `prediction_png`: the prediction figure a
    sweep already drew in the report's folder (drawn once, referenced here)."""
    fit, table, meta = data.fit, data.table, data.meta
    figs = []
    if prediction_png is None:
        prediction_png = f"{stem}-prediction.png"
        plots.prediction_figure(fit, figdir / prediction_png, targets=data.targets, level=data.level)
    figs.append((prediction_png, "Loss against compute, the fitted law and its extrapolation"))
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
        plots.curves_figure(data.sweep_dir, figdir / f"{stem}-curves.png", data.budgets)
        figs.append((f"{stem}-curves.png", "Training curves"))
    return figs


def capability_section(cap, targets, level, figdir: Path, stem: str) -> list[str]:
    """The report's capabilities section for a task fit or a pass-rate fit: the fit, the predictions at the
    targets with their intervals, and its figure (written beside the report)."""
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
        laws = ", ".join(f"`{k}` by the {v.name} law" for k, v in cap.steps1.items())
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


def capability_report(cap, source: Path, figdir: Path, stem: str, targets=None, level: float = defaults.LEVEL) -> str:
    """A report of a capability fit alone (fit-tasks' or fit-passrate's file)."""
    return "\n".join([f"# Capability prediction: {source.stem}", "",
                      f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by scalepredict "
                      f"{__version__}.", ""] + capability_section(cap, targets, level, figdir, stem))


def _parameter_table(fit) -> list[str]:
    L = ["| parameter | value | stderr | bootstrap 5% | bootstrap 95% |", "|---|---:|---:|---:|---:|"]
    for p in fit.params.values():
        value = fmt(p.value) + (" (fixed)" if p.min == p.max else " (at bound)" if p.at_bound else "")
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
    L = [f"# Loss prediction: {data.name}", "",
         f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by scalepredict {__version__}.", ""]
    L += _summary(data) + _parameters(data) + _runs(data.table) + _backtest_table(data.backtest, data.level)
    L += ["## Figures", ""]
    for f, caption in figs:
        L += [f"![{caption}]({f})", ""]
    L += _provenance(data.meta, data.fit)
    return "\n".join(L)


def _summary(data: ReportData) -> list[str]:
    fit, level, opt, bt = data.fit, data.level, data.optimal, data.backtest
    kind = "frontier points" if fit.data.frontier is not None else "runs"
    L = ["## Summary", "",
         f"Law: `{fit.formula}` ({fit.name}), fitted on {fit.n_points} {kind} from {fmt(fit.data.compute.min(), 3)} "
         f"to {fmt(fit.max_compute, 3)} FLOPs; {'converged' if fit.converged else '**did not converge**'}.", "",
         f"| target compute (FLOPs) | × largest run | predicted loss | {level:.0%} interval |"
         + (" N* (params) | D* (tokens) |" if opt else ""),
         "|---:|---:|---:|:---:|" + ("---:|---:|" if opt else "")]
    for i, p in enumerate(data.preds):
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
        L.append(f"Backtest: not possible ({data.no_backtest}).")
    L.append("")
    for w in fit.warnings + sorted({p["warning"] for p in data.preds if "warning" in p}):
        L += [f"> **Warning:** {w}", ""]
    return L


def _parameters(data: ReportData) -> list[str]:
    fit, chin = data.fit, data.chin
    L = ["## Fitted parameters", ""]
    if len(fit.members) > 1:
        L += ["`--law auto`: the laws below are averaged (weighted log predictions; weights from a nested backtest "
              "inside the fitted range: mean absolute log error on the largest groups, held out); the interval is "
              "that of the mixture of their predictive distributions.", "",
              "| law | weight | nested score |", "|---|---:|---:|"]
        for m in fit.members:
            L.append(f"| {m.name} | {fmt(m.weight, 3)} | {'–' if m.score is None else f'{m.score:.2%}'} |")
        L.append("")
    for m in fit.members:
        if len(fit.members) > 1:
            L += [f"### {m.name}: `{m.fit.formula}`", ""]
        L += _parameter_table(m.fit)
    if chin is not None:
        L += ["Chinchilla fit on all runs: " + ", ".join(f"{n} = {fmt(float(v), 4)}"
                                                      for n, v in zip(chin.law.names, chin.values)) + ".", ""]
    return L


def _runs(table: RunTable) -> list[str]:
    L = ["## Runs", "", "| run | budget | params | tokens | compute (FLOPs) | loss | status |",
         "|---|---:|---:|---:|---:|---:|---|"]
    for r in sorted(table.records + table.excluded, key=lambda r: (r.get("compute") or 0, str(r.get("run")))):
        L.append(f"| {r.get('run', '')} | {fmt(r.get('budget'), 3)} | {fmt(r.get('params'), 4)} | "
                 f"{fmt(r.get('tokens'), 4)} | {fmt(r.get('compute'), 4)} | {fmt(r.get('loss'), 5)} | "
                 f"{r.get('status', 'ok')} |")
    return L + [""]


def _backtest_table(bt: dict | None, level: float) -> list[str]:
    if bt is None:
        return []
    L = ["## Backtest", "", f"| k | fitted up to | compute | predicted | actual | error | {level:.0%} interval | "
                            f"covered |", "|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
    for c in bt["cases"]:
        band = f"[{fmt(c['lower'], 4)}, {fmt(c['upper'], 4)}]" if c["lower"] is not None else "–"
        L.append(f"| {c['factor']:g} | {fmt(c['fit_max_compute'], 3)} | {fmt(c['compute'], 3)} | "
                 f"{fmt(c['predicted'], 4)} | {fmt(c['actual'], 4)} | {c['rel_error'] * 100:+.2f}% | {band} | "
                 f"{'–' if c['covered'] is None else 'yes' if c['covered'] else 'no'} |")
    return L + [""]


def _provenance(meta: dict | None, fit) -> list[str]:
    L = ["## Provenance", ""]
    if meta:
        L.append(f"- config: `{meta.get('config_file')}` (digest {meta.get('config_digest')})")
        dd = meta.get("data") if isinstance(meta.get("data"), dict) else {}
        L.append(f"- data: {dd.get('description')}; fingerprint `{dd.get('fingerprint')}`; "
                 f"{_count(dd.get('train_tokens'))} train / {_count(dd.get('val_tokens'))} validation tokens")
        v = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
        L.append(f"- versions: scalepredict {v.get('scalepredict')}, torch {v.get('torch')}, python {v.get('python')}")
        L.append(f"- device: {meta.get('device')}")
    for i in fit.input_files:
        L.append(f"- fit input: `{i.get('path')}` sha256 `{i.get('sha256')}`")
    return L + [""]


def _count(x) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def html_page(markdown_text: str) -> str:
    """The report as one HTML page (the `markdown` package renders it)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}")
    return f"<!doctype html><meta charset='utf-8'><title>scalepredict report</title><style>{style}</style>{body}"
