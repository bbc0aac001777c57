import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from scalepredict.cli import cli
from scalepredict.report import fmt
from tests.conftest import write_jsonl


def sweep_like_runs():
    rng = np.random.default_rng(0)
    rows = []
    for budget in np.geomspace(1e15, 1e18, 6):
        for n in np.geomspace(1e6, 1e8, 5):
            d = budget / (6 * n)
            loss = (1.8 + 400 / n**0.34 + 2000 / d**0.36) * np.exp(rng.normal(0, 0.003))
            rows.append({"run": f"{budget:.0e}-{n:.0e}", "budget": budget, "params": n, "tokens": d, "loss": loss})
    return rows


def test_plot_and_report_numbers_equal_fit_json(tmp_path):
    runs = write_jsonl(tmp_path / "runs.jsonl", sweep_like_runs())
    fit_path = tmp_path / "fit.json"
    runner = CliRunner()
    assert runner.invoke(cli, ["fit", str(runs), "-o", str(fit_path), "--bootstrap", "200", "--law",
                               "compute"]).exit_code == 0
    for ext in ("png", "svg", "pdf"):
        r = runner.invoke(cli, ["plot", str(fit_path), "--target", "1e20", "-o", str(tmp_path / f"p.{ext}")])
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"p.{ext}").stat().st_size > 1000
    r = runner.invoke(cli, ["report", str(fit_path), "-o", str(tmp_path / "report.md"), "--target", "1e20"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "report.md").read_text()
    fit = json.loads(fit_path.read_text())
    for name, p in fit["params"].items():
        row = re.search(rf"^\| {name} \| (\S+) \| (\S+) \|", text, re.M)
        assert row, name
        assert row.group(1) == fmt(p["value"]) and row.group(2) == fmt(p["stderr"])
    pred = json.loads(runner.invoke(cli, ["predict", str(fit_path), "-c", "1e20", "--json"]).stdout)["predictions"][0]
    assert f"| {fmt(pred['loss'], 4)} | [{fmt(pred['lower'], 4)}, {fmt(pred['upper'], 4)}] |" in text
    assert (tmp_path / "report-prediction.png").exists() and (tmp_path / "report-backtest.png").exists()
    # deterministic apart from the timestamp line
    again = tmp_path / "again"
    again.mkdir()
    runner.invoke(cli, ["report", str(fit_path), "-o", str(again / "report.md"), "--target", "1e20"])
    strip = lambda s: [l for l in s.splitlines() if not l.startswith("Generated")]  # noqa: E731
    assert strip(text) == strip((again / "report.md").read_text())


def test_plot_bad_inputs(tmp_path):
    bad = tmp_path / "fit.json"
    bad.write_text('{"format": 0, "law": "compute"}')
    r = CliRunner().invoke(cli, ["plot", str(bad), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "refit" in r.stderr
    runs = write_jsonl(tmp_path / "runs.jsonl", sweep_like_runs())
    good = tmp_path / "good.json"
    CliRunner().invoke(cli, ["fit", str(runs), "-o", str(good), "--bootstrap", "50"])
    r = CliRunner().invoke(cli, ["plot", str(good), "-o", str(tmp_path / "no" / "such" / "x.png")])
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = CliRunner().invoke(cli, ["plot", str(good), "-o", str(tmp_path / "x.gif")])
    assert r.exit_code == 2 and ".png, .svg or .pdf" in r.stderr


def test_training_curves_are_smoothed_and_shaded_by_budget_order(tmp_path, monkeypatch):
    from scalepredict import plots
    from scalepredict.pipeline import plan_budgets

    # budgets come from the sweep's plan (sweep.json), not from the run ids: eleven budgets, two of them with logs
    plan = [{"run": f"b{i}-L1d16-s0", "budget": 1e9 * 2**i} for i in range(11)]
    (tmp_path / "sweep.json").write_text(json.dumps({"plan": plan}))
    for name, losses in [("b10-L1d16-s0", [4.0, 2.0, 2.0]), ("b2-L1d16-s0", [3.0, 3.0, 1.0])]:
        rows = [{"step": i + 1, "tokens": 100 * (i + 1), "train_loss": v} for i, v in enumerate(losses)]
        (tmp_path / "runs" / name).mkdir(parents=True)
        write_jsonl(tmp_path / "runs" / name / "log.jsonl", rows + [{"step": 3, "tokens": 300, "val_loss": 1.5}])
    saved = {}
    monkeypatch.setattr(plots.loss, "save", lambda fig, path: saved.setdefault("fig", fig))
    budgets = plan_budgets(json.loads((tmp_path / "sweep.json").read_text()))
    plots.curves_figure(tmp_path, tmp_path / "c.png", budgets, smooth=0.5)
    lines = [ln for ln in saved["fig"].axes[0].get_lines() if ln.get_linestyle() == "-"]
    # b2 before b10 (numeric budget order, not the folders' text order); grey level 0.1 + 0.6 * index / 10
    assert [float(ln.get_color()) for ln in lines] == pytest.approx([0.1 + 0.6 * 2 / 10, 0.7])
    # bias-corrected EMA with 0.5: 3, (0.25*3 + 0.5*3)/0.75 = 3, (0.125*3 + 0.25*3 + 0.5*1)/0.875 = 1.857...
    assert np.allclose(lines[0].get_ydata(), [3.0, 3.0, (0.125 * 3 + 0.25 * 3 + 0.5) / 0.875])
    assert np.allclose(lines[1].get_ydata(), [4.0, (0.25 * 4 + 0.5 * 2) / 0.75, (0.125 * 4 + 0.75 * 2) / 0.875])


def test_isoflop_figure_draws_the_runs_bracketing_added_hollow(tmp_path, monkeypatch):
    from scalepredict import plots
    from scalepredict.runs import load_runs

    rows = sweep_like_runs()
    added = {rows[4]["run"], rows[9]["run"]}  # the largest size of the first two budgets
    table = load_runs(write_jsonl(tmp_path / "runs.jsonl", rows))
    saved = {}
    monkeypatch.setattr(plots.loss, "save", lambda fig, path: saved.setdefault("fig", fig))
    plots.isoflop_figure(table, tmp_path / "i.png", added=added)
    lines = saved["fig"].axes[0].get_lines()
    hollow = [ln for ln in lines if ln.get_markerfacecolor() == "none" and len(ln.get_xdata())]
    assert sorted(float(x) for ln in hollow for x in ln.get_xdata()) == sorted([rows[4]["params"], rows[9]["params"]])
    assert sorted(float(y) for ln in hollow for y in ln.get_ydata()) == sorted([rows[4]["loss"], rows[9]["loss"]])
    assert "added by bracketing" in [t.get_text() for t in saved["fig"].axes[0].get_legend().get_texts()]
    budgets = {f"{b:.2g}" for b in sorted({r["budget"] for r in rows})}
    filled = [ln for ln in lines if ln.get_label() in budgets]
    assert sum(len(ln.get_xdata()) for ln in filled) == len(rows) - 2  # every other run drawn once, filled
