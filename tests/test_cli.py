import json

import pytest
from click.testing import CliRunner

from scalepredict.cli import cli
from tests.conftest import synthetic_compute_runs, write_jsonl


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_fit_predict_backtest_json_contracts(tmp_path):
    runs = write_jsonl(tmp_path / "runs.jsonl", synthetic_compute_runs(n=15, lo=1e16, hi=1e20))
    fit_path = tmp_path / "fit.json"
    r = run("fit", runs, "--out", fit_path, "--json", "--bootstrap", 200)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {"law", "params", "n_points", "converged"} <= out.keys()
    assert set(out["params"]) == {"a", "b", "c"}
    assert set(out["params"]["b"]) == {"value", "stderr"}
    assert out["n_points"] == 15 and out["converged"] is True
    saved = json.loads(fit_path.read_text())
    for key in ("law", "formula", "params", "covariance", "n_points", "x_range", "converged", "objective",
                "residuals", "bootstrap", "inputs", "version"):
        assert key in saved
    assert saved["inputs"][0]["sha256"]

    r = run("predict", fit_path, "--compute", "1e22,1e23", "--json")
    assert r.exit_code == 0, r.output
    preds = json.loads(r.stdout)["predictions"]
    assert len(preds) == 2
    for p in preds:
        assert {"compute", "params", "tokens", "loss", "lower", "upper", "level"} <= p.keys()
        assert p["lower"] < p["loss"] < p["upper"] and p["level"] == 0.9 and p["params"] is None

    r = run("backtest", runs, "--factors", "10,100", "--json", "--bootstrap", 100)
    assert r.exit_code == 0, r.output
    bt = json.loads(r.stdout)
    assert {"cases", "mape", "coverage"} <= bt.keys()
    case_keys = {"factor", "fit_max_compute", "compute", "predicted", "actual", "rel_error", "lower", "upper",
                 "covered"}
    assert case_keys <= bt["cases"][0].keys()
    assert {c["factor"] for c in bt["cases"]} == {10.0, 100.0}
    for c in bt["cases"]:
        assert c["fit_max_compute"] <= 1e20 / c["factor"] < c["compute"]
        assert c["rel_error"] == pytest.approx((c["predicted"] - c["actual"]) / c["actual"])


def test_chinchilla_predict_compute_alone_gives_optimal_split(tmp_path):
    rows = []
    for n in (1e7, 3e7, 1e8, 3e8):
        for tpp in (5, 20, 80):
            d = n * tpp
            rows.append({"params": n, "tokens": d, "loss": 1.8 + 400 / n**0.34 + 2000 / d**0.36})
    runs = write_jsonl(tmp_path / "runs.jsonl", rows)
    fit_path = tmp_path / "fit.json"
    assert run("fit", runs, "--law", "chinchilla", "--out", fit_path, "--bootstrap", 50).exit_code == 0
    r = run("predict", fit_path, "--compute", "1e22", "--json")
    p = json.loads(r.stdout)["predictions"][0]
    assert p["params"] * p["tokens"] * 6 == pytest.approx(1e22, rel=1e-9)
    r = run("predict", fit_path, "--params", "1e9", "--tokens", "2e10", "--json")
    p = json.loads(r.stdout)["predictions"][0]
    assert p["loss"] == pytest.approx(1.8 + 400 / 1e9**0.34 + 2000 / 2e10**0.36, rel=0.01)


def test_predict_at_a_run_table(tmp_path):
    runs = write_jsonl(tmp_path / "runs.jsonl", synthetic_compute_runs(n=10))
    fit_path = tmp_path / "fit.json"
    run("fit", runs, "--out", fit_path, "--bootstrap", 50)
    target = write_jsonl(tmp_path / "big.jsonl", [{"run": "big", "params": 1e9, "tokens": 2e10, "loss": 2.0}])
    r = run("predict", fit_path, "--at", target, "--json")
    p = json.loads(r.stdout)["predictions"][0]
    assert p["compute"] == pytest.approx(6 * 1e9 * 2e10) and p["params"] == 1e9 and p["run"] == "big"


@pytest.mark.parametrize("content, needle", [
    ("", "empty file"),
    ("compute,loss\n1e18,x\n", "line 2, column 'loss'"),
    ("compute,loss\n1e18,3\n1e19,2.5\n", "2 points to fit"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, content, needle):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    out = tmp_path / "fit.json"
    r = run("fit", bad, "--out", out)
    assert r.exit_code == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("scalepredict: error:") and needle in lines[0]
    assert "bad.csv" in lines[0] and "Traceback" not in r.output
    assert not out.exists()


def test_unknown_column_option_via_cli(tmp_path):
    runs = write_jsonl(tmp_path / "runs.jsonl", synthetic_compute_runs(n=6))
    r = run("fit", runs, "--compute-col", "flops")
    assert r.exit_code == 2 and "no column 'flops'" in r.stderr


def test_missing_and_corrupt_fit_files(tmp_path):
    r = run("predict", tmp_path / "nope.json", "--compute", "1e20")
    assert r.exit_code == 2 and "no such file" in r.stderr
    bad = tmp_path / "fit.json"
    bad.write_text("[1, 2]")
    r = run("predict", bad, "--compute", "1e20")
    assert r.exit_code == 2 and "expected a scalepredict fit file (a JSON object)" in r.stderr


def test_an_explicit_out_is_obeyed_even_where_it_equals_the_default(tmp_path, monkeypatch):
    """`sweep --config cpu-validate --out sweeps/cpu-demo` went to sweeps/cpu-validate."""
    from scalepredict import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "run_sweep", lambda cfg, out, **kw: seen.update(out=out, name=cfg.name))
    assert run("sweep", "--config", "cpu-validate", "--out", "sweeps/cpu-demo").exit_code == 0
    assert str(seen["out"]) == "sweeps/cpu-demo" and seen["name"] == "cpu-validate"
    assert run("sweep", "--config", "cpu-validate").exit_code == 0
    assert str(seen["out"]) == "sweeps/cpu-validate"


def test_the_sweeps_end_step_does_not_swallow_a_broken_install(tmp_path, monkeypatch):
    """The end step caught ImportError around the plot and the report: a broken install ended with neither and no
    word about it."""
    from scalepredict import pipeline
    from scalepredict.config import Config, SweepConfig
    from scalepredict.pipeline import finish_sweep
    from tests.test_conventions import sweep_rows

    write_jsonl(tmp_path / "runs.jsonl", sweep_rows())
    (tmp_path / "sweep.json").write_text('{"plan": []}')

    def broken(*a, **k):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(pipeline, "write_report", broken)
    with pytest.raises(ImportError, match="matplotlib"):
        finish_sweep(Config(sweep=SweepConfig(targets=[1e15])), tmp_path, echo=lambda *a: None)
