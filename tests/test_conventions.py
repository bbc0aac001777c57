"""One FLOP convention end to end: every run says how its compute was counted, fits record it, mixing is converted
where the data allow it and refused in one line where they do not."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from scalepredict.cli import cli
from scalepredict.config import Config, ModelConfig
from scalepredict.errors import InputError
from scalepredict.fit import fit_law
from scalepredict.flops import Shape
from scalepredict.runs import RunTable, load_runs
from tests.conftest import write_jsonl


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def sweep_rows(n_budgets=6):
    """Records as a sweep writes them: exact compute from the shape, 6ND beside it, the shape's columns."""
    rows = []
    for i, budget in enumerate(np.geomspace(1e12, 1e14, n_budgets)):
        for layers, width in ((2, 64), (3, 96), (4, 128)):
            s = Shape(layers, width, width // 32, 256, 128)
            tokens = int(budget / s.train_flops_per_token)
            loss = 1.2 + 30 * s.params**-0.3 + 300 * tokens**-0.3
            rows.append({"run": f"b{i}-L{layers}d{width}", "budget": float(budget), "compute": s.train_flops(tokens),
                         "compute_convention": "exact", "compute_6nd": s.flops_6nd(tokens), "params": s.params,
                         "tokens": tokens, "n_layer": layers, "d_model": width, "seq_len": 128, "vocab_size": 256,
                         "loss": loss})
    return rows


def test_each_record_says_its_convention(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", [
        {"run": "derived", "params": 1e6, "tokens": 2e7, "loss": 4.0},  # compute = 6ND
        {"run": "equal", "compute": 6 * 2e6 * 4e7, "params": 2e6, "tokens": 4e7, "loss": 3.8},  # it is 6ND
        {"run": "other", "compute": 7e14, "params": 3e6, "tokens": 3e7, "loss": 3.7},  # not 6ND: as reported
    ])
    t = load_runs(p, convention="6nd")
    assert [r.get("compute_converted_from") for r in t.records] == [None, None, "reported"]
    assert t.records[2]["compute"] == pytest.approx(6 * 3e6 * 3e7) and t.records[2]["compute_reported"] == 7e14
    rows = sweep_rows()
    assert {r["compute_convention"] for r in load_runs(write_jsonl(tmp_path / "s.jsonl", rows)).records} == {"exact"}
    # a sweep's records from before they said their convention: compute_6nd beside a different compute and a shape
    old = [{k: v for k, v in r.items() if k != "compute_convention"} for r in rows]
    assert load_runs(write_jsonl(tmp_path / "old.jsonl", old)).convention == "exact"


def test_mixed_conventions_convert_where_the_data_allow_and_refuse_otherwise(tmp_path):
    rows = sweep_rows()
    mixed = rows + [{"run": "theirs", "compute": 5e14, "params": 2e6, "tokens": 4e7, "loss": 2.0}]
    t = load_runs(write_jsonl(tmp_path / "m.jsonl", mixed))
    assert t.convention == "6nd"
    assert t.records[0]["compute"] == pytest.approx(rows[0]["compute_6nd"])
    assert t.records[0]["compute_exact"] == rows[0]["compute"]
    assert any("converted" in w or "counted as 6nd" in w for w in t.warnings)
    # a run with compute alone cannot be converted to 6ND: one line naming it
    bad = rows + [{"run": "theirs", "compute": 5e14, "loss": 2.0}]
    with pytest.raises(InputError, match=r"b.jsonl, line 19: compute conventions are mixed"):
        load_runs(write_jsonl(tmp_path / "b.jsonl", bad))
    # exact FLOPs for 6ND rows need the shape
    with pytest.raises(InputError, match="cannot be converted to exact without the model's shape"):
        load_runs(write_jsonl(tmp_path / "c.jsonl", [{"params": 1e6, "tokens": 2e7, "loss": 4.0}]), convention="exact")
    six = {"params": 1e6, "tokens": 2e7, "loss": 4.0, "n_layer": 2, "d_model": 64, "seq_len": 128, "vocab_size": 256}
    t = load_runs(write_jsonl(tmp_path / "d.jsonl", [six]), convention="exact")
    assert t.records[0]["compute"] == Shape(2, 64, 1, 256, 128).train_flops(2e7)


def test_fit_records_its_convention_and_predict_refuses_6nd_targets_on_an_exact_fit(tmp_path):
    runs = write_jsonl(tmp_path / "runs.jsonl", sweep_rows())
    fit_path = tmp_path / "fit.json"
    assert run("fit", runs, "--out", fit_path, "--bootstrap", 50, "--law", "compute").exit_code == 0
    assert json.loads(fit_path.read_text())["compute_convention"] == "exact"
    r = run("predict", fit_path, "--params", "1e7", "--tokens", "1e9")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "counts compute as exact" in r.stderr and "--compute-convention 6nd" in r.stderr
    r = run("predict", fit_path, "--compute", "1e16")
    assert r.exit_code == 0 and "compute is read as exact" in r.stdout
    # refitted in 6ND, the same targets are predicted at 6ND
    six = tmp_path / "fit6.json"
    assert run("fit", runs, "--out", six, "--bootstrap", 50, "--compute-convention", "6nd", "--law",
               "compute").exit_code == 0
    r = run("predict", six, "--params", "1e7", "--tokens", "1e9", "--json")
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)
    assert p["compute_convention"] == "6nd" and p["predictions"][0]["compute"] == pytest.approx(6e16)
    # --at rows are converted to the fit's convention where their shape is known, refused where not
    at = write_jsonl(tmp_path / "at.jsonl", [{"run": "big", "params": 1e6, "tokens": 2e9, "loss": 1.5, "n_layer": 4,
                                              "d_model": 128, "seq_len": 128, "vocab_size": 256}])
    r = run("predict", fit_path, "--at", at, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["predictions"][0]["compute"] == Shape(4, 128, 1, 256, 128).train_flops(2e9)
    r = run("predict", fit_path, "--at", write_jsonl(tmp_path / "at2.jsonl", [{"params": 1e6, "tokens": 2e9,
                                                                                 "loss": 1.5}]))
    assert r.exit_code == 2 and "cannot be converted to exact" in r.stderr


def test_the_sweeps_optimal_split_spends_exact_flops():
    from scalepredict.plan import optimal_split

    rows = sweep_rows(8)
    chin = fit_law(RunTable([{**r, "_where": "t"} for r in rows], ["t"]), "chinchilla", n_bootstrap=0)
    cfg = Config(model=ModelConfig(seq_len=128, aspect=32.0, head_dim=32))
    targets = [1e15, 1e16]
    n_opt, d_opt = optimal_split(chin, targets, cfg)
    n6, d6 = chin.law.derived["optimal_allocation"](chin.values, np.array(targets))
    for c, n, d, nn, dd in zip(targets, n_opt, d_opt, n6, d6):
        layers = (n / (12 * 32.0**2)) ** (1 / 3)
        exact = (6 * n + 12 * layers * 128 * 32.0 * layers) * d
        assert exact == pytest.approx(c, rel=1e-9)  # spends the target's exact FLOPs
        layers6 = (nn / (12 * 32.0**2)) ** (1 / 3)
        assert (6 * nn + 12 * layers6 * 128 * 32.0 * layers6) * dd > 1.05 * c  # the 6ND split overspends
