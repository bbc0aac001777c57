"""The smaller defects a maintainer found reading the package: each test failed before its fix."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from scalepredict import defaults
from scalepredict.cli import cli
from scalepredict.errors import InputError
from tests.conftest import synthetic_compute_runs, write_jsonl


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_backtest_holds_out_the_default_factors(tmp_path):
    """defaults.BACKTEST_FACTORS was unused while backtest and the command line typed (10, 100) themselves."""
    from scalepredict.core import backtest as bt

    p = write_jsonl(tmp_path / "runs.jsonl", synthetic_compute_runs(n=16, lo=1e16, hi=1e21))
    r = run("backtest", p, "--law", "compute", "--bootstrap", "0", "--json")
    assert r.exit_code == 0, r.output
    assert sorted({c["factor"] for c in json.loads(r.stdout)["cases"]}) == list(defaults.BACKTEST_FACTORS)
    assert bt.backtest.__defaults__[1] == defaults.BACKTEST_FACTORS


def test_every_command_default_comes_from_defaults():
    """fit-tasks --bootstrap defaulted to 100 while the library's task bootstrap was 200; --level was typed 0.9."""
    params = {(c, p.name): p.default for c, cmd in cli.commands.items() for p in cmd.params}
    assert params[("fit-tasks", "n_bootstrap")] == defaults.TASK_BOOTSTRAP
    assert params[("fit-passrate", "n_bootstrap")] == defaults.PASSRATE_BOOTSTRAP
    assert params[("fit", "n_bootstrap")] == defaults.BOOTSTRAP
    assert all(v == defaults.LEVEL for (c, name), v in params.items() if name == "level")


def test_task_forms_are_weighed_as_the_law_average_weighs_its_laws():
    """form_weights re-implemented the law average's weights (and did not renormalise after dropping a form)."""
    from scalepredict.capability.links import form_weights
    from scalepredict.core.ensemble import score_weights

    scores = {"sigmoid": 0.010, "sigmoid1": 0.012, "exponential": 0.2}
    w = form_weights(scores)
    full = dict(zip(scores, score_weights(scores.values())))
    assert set(w) == {"sigmoid", "sigmoid1"}  # the exponential form's weight is under 1%: dropped
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["sigmoid"] / w["sigmoid1"] == pytest.approx(full["sigmoid"] / full["sigmoid1"])


def test_a_report_says_why_it_has_no_backtest(tmp_path):
    """report swallowed the backtest's InputError and then said the runs spanned too little compute."""
    from scalepredict.pipeline import report_backtest
    from scalepredict.runs import RunTable

    rows = synthetic_compute_runs(n=3, lo=1e17, hi=1e20)
    table = RunTable([dict(r, _where="x") for r in rows], ["x"])
    from scalepredict.core.fit import fit_law

    fit = fit_law(table, "compute", n_bootstrap=0)
    bt, why = report_backtest(table, fit)
    assert bt is None and "points to fit" in why  # 1 or 2 runs below C_max / k cannot fit three parameters
    narrow = RunTable([dict(r, _where="x", compute=r["compute"] * 1e-3 + 1e20) for r in rows], ["x"])
    assert "too little to hold any out" in report_backtest(narrow, fit)[1]


def test_a_logged_loss_of_zero_or_less_is_one_line_naming_the_run(tmp_path):
    """Rows from logs skipped the run table's positivity checks: a logged loss of 0 reached np.log."""
    log = tmp_path / "ladder.log"
    log.write_text("".join(f"step {s}: train loss 2.0, val loss {v}\n" for s, v in ((100, 1.5), (200, 0.0))))
    r = run("fit", log, "--params", "1e6", "--tokens-per-step", "1000")
    assert r.exit_code == 2 and "ladder.log, run 'ladder'" in r.stderr and "must be a positive number" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_run_whose_log_ends_diverged_is_left_out_with_a_warning(tmp_path):
    """A run that diverged to inf entered `fit` with its pre-divergence loss and no warning (ingest warned)."""
    from scalepredict.ingest import load_table

    for i, n in enumerate((1e6, 2e6, 4e6, 8e6)):
        end = "inf" if i == 3 else f"{3.0 - 0.2 * i}"
        (tmp_path / f"r{i}.log").write_text(f"step 100: train loss 3.5, val loss 3.4\nstep 200: train loss 3.1, "
                                            f"val loss {end}\n")
    t = load_table(sorted(tmp_path.glob("*.log")), params=1e6, tokens_per_step=1e4)
    assert sorted(t.names) == ["r0", "r1", "r2"] and [e["run"] for e in t.excluded] == ["r3"]
    assert any("r3" in w and "diverged at step 200" in w for w in t.warnings)


def test_mlflow_stores_are_read_page_after_page(tmp_path, monkeypatch):
    """mlflow_store read at most 50,000 runs and dropped the rest silently."""
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    from scalepredict.ingest import mlflow_store, read_curves

    store = tmp_path / "mlruns"
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    exp = client.create_experiment("many")
    for k in range(5):
        rid = client.create_run(exp, run_name=f"r{k}").info.run_id
        client.log_metric(rid, "val/loss", 3.0 - 0.1 * k, step=10)
    monkeypatch.setattr(mlflow_store, "PAGE", 2)  # five runs come in three pages
    _, curves = read_curves(store)
    assert sorted(c.run for c in curves) == [f"r{k}" for k in range(5)]


def test_is_fit_file_answers_yes_or_no(tmp_path):
    """is_fit_file returned the parsed dict (or None)."""
    from scalepredict.core.fit import fit_law
    from scalepredict.fitfile import is_fit_file
    from scalepredict.runs import RunTable

    fit = fit_law(RunTable([dict(r, _where="x") for r in synthetic_compute_runs()], ["x"]), "compute", n_bootstrap=0)
    (tmp_path / "fit.json").write_text(json.dumps(fit.to_dict()))
    write_jsonl(tmp_path / "runs.jsonl", synthetic_compute_runs())
    assert is_fit_file(tmp_path / "fit.json") is True and is_fit_file(tmp_path / "runs.jsonl") is False
    assert is_fit_file(tmp_path) is False and is_fit_file(tmp_path / "missing.json") is False


def test_a_fit_file_given_as_runs_is_named_as_a_fit_file(tmp_path):
    """A valid tasks (or loss) fit given to `fit` or `backtest` was reported as "not valid JSON"."""
    from scalepredict.core.fit import fit_law
    from scalepredict.runs import RunTable

    fit = fit_law(RunTable([dict(r, _where="x") for r in synthetic_compute_runs()], ["x"]), "compute", n_bootstrap=0)
    (tmp_path / "fit.json").write_text(json.dumps(fit.to_dict(), indent=2))
    for command in ("fit", "backtest"):
        r = run(command, tmp_path / "fit.json")
        assert r.exit_code == 2 and "a scalepredict fit file, not runs" in r.stderr, r.stderr


def test_numbers_are_parsed_and_formatted_in_one_place_each():
    """`num` parsed in ingest/curve.py and formatted in summary.py under one name."""
    from scalepredict.ingest.curve import to_float
    from scalepredict.textfmt import num

    assert to_float("3.5") == 3.5 and to_float("x") is None and to_float(None) is None
    assert num(1.5e21) == "1.500e+21" and num(None) == "-" and num(math.inf) == "-" and num(0.25) == "0.25"


def test_fit_data_names_model_size_apart_from_fitted_parameters():
    """FitData.params was model size while Fit.params was fitted parameters."""
    from scalepredict.core.fit import fit_law
    from scalepredict.runs import RunTable

    rows = [dict(r, params=1e8, tokens=r["compute"] / 6e8, _where="x") for r in synthetic_compute_runs()]
    fit = fit_law(RunTable(rows, ["x"]), "compute", n_bootstrap=0, all_points=True)
    assert np.all(fit.data.n_params == 1e8) and set(fit.params) == {"a", "b", "c"}


def test_no_docstring_cites_a_page_the_repository_does_not_have():
    """12 docstrings cited method.md, which is not in the repository."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cited = [p.name for p in (root / "scalepredict").rglob("*.py") if "method.md" in p.read_text()]
    assert not cited
    for p in (root / "scalepredict").rglob("*.py"):
        for page in set(__import__("re").findall(r"docs/([\w-]+\.md)", p.read_text())):
            assert (root / "docs" / page).exists(), (p.name, page)


def test_huber_delta_nan_is_refused_not_converged():
    """`--huber-delta nan` "converged" to a wrong law."""
    from scalepredict.core.fit import fit_law
    from scalepredict.runs import RunTable

    table = RunTable([dict(r, _where="x") for r in synthetic_compute_runs()], ["x"])
    for delta in (math.nan, -1.0, 0.0, math.inf):
        with pytest.raises(InputError, match="huber-delta"):
            fit_law(table, "compute", delta=delta)
