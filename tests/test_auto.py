"""`--law auto` (law averaging by nested backtest) and a floor the data do not identify."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from scalepredict.cli import cli
from scalepredict.fit import fit_law
from scalepredict.fitfile import load_fit
from scalepredict.runs import RunTable
from tests.conftest import synthetic_compute_runs, write_jsonl

LAWS = {
    "chinchilla": lambda n, d: 1.7 + 300 / n**0.25 + 2000 / d**0.45,
    "chinchilla_tied": lambda n, d: 1.7 + 400 / n**0.34 + 900 / d**0.34,
    "compute": lambda n, d: 300 * (6 * n * d) ** -0.12 + 1.6,
}


def ladder(law, noise=0.002, seed=0):
    """A model ladder over-trained at six token counts per size, losses from `law` with log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in np.geomspace(1e7, 1e9, 6):
        for tpp in (5, 10, 20, 40, 80, 160):
            d = n * tpp
            rows.append({"run": f"{n:.2g}-{tpp}", "compute": 6 * n * d, "params": n, "tokens": d, "_where": "t",
                         "compute_convention": "6nd", "loss": LAWS[law](n, d) * np.exp(rng.normal(0, noise))})
    return rows


@pytest.mark.parametrize("true", sorted(LAWS))
@pytest.mark.parametrize("seed", [0, 1])
def test_auto_gives_the_true_law_the_most_weight(true, seed):
    ens = fit_law(RunTable(ladder(true, seed=seed), ["t"]), "auto", n_bootstrap=0)
    weights = {m.law: m.weight for m in ens.members}
    scores = {m.law: m.score for m in ens.members}
    assert set(weights) == set(LAWS) and sum(weights.values()) == pytest.approx(1.0)
    assert max(weights, key=weights.get) == true, (weights, scores)
    assert min(scores, key=scores.get) == true
    # the averaged prediction of a held-out, larger run is the true law's within 1.5%
    n, d = 4e9, 4e9 * 20
    p = ens.predict(compute=[6 * n * d], params=[n], tokens=[d])[0]
    assert p["loss"] == pytest.approx(LAWS[true](n, d), rel=0.015)


@pytest.mark.parametrize("seed", [4, 11])
def test_a_floor_at_its_bound_is_said_and_its_interval_covers(seed):
    """Six points over 16x: the best fit puts c at 0 (a pure power law, which under-predicts far out); the fit says
    the floor is not identified, and the interval spans every law its profile likelihood admits."""
    rows = synthetic_compute_runs(a=300, b=-0.12, c=1.6, n=6, lo=1e17, hi=1.6e18, noise=0.01, seed=seed)
    fit = fit_law(RunTable([{**r, "_where": "t"} for r in rows], ["t"]), "compute", n_bootstrap=300)
    assert fit.at_bound == ["c"]
    assert any("the floor c is not identified" in w for w in fit.warnings)
    lo, hi = fit.profile["range"]
    assert lo == 0 and hi > 1.6  # the true floor is admitted
    truth = 300 * 1.6e20**-0.12 + 1.6  # 100x beyond the largest run
    p = fit.predict(compute=1.6e20)[0]
    assert p["lower"] < truth < p["upper"]
    assert p["loss"] < truth  # the power law under-predicts: the interval, not the point, covers


def test_auto_is_the_default_explains_itself_and_round_trips(tmp_path):
    runs = write_jsonl(tmp_path / "runs.jsonl", [{k: v for k, v in r.items() if k != "_where"} for r in ladder("chinchilla")])
    out = tmp_path / "fit.json"
    r = CliRunner().invoke(cli, ["fit", str(runs), "-o", str(out), "--bootstrap", "100"])
    assert r.exit_code == 0, r.output
    assert "law: auto" in r.stdout and "nested score" in r.stdout and "weight" in r.stdout
    saved = json.loads(out.read_text())
    assert saved["law"] == "auto" and {c["law"] for c in saved["candidates"]} == set(LAWS)
    assert all("nested_score" in c and "weight" in c for c in saved["candidates"])
    again = load_fit(out)
    fresh = fit_law(RunTable(ladder("chinchilla"), ["t"]), "auto", n_bootstrap=100)
    target = dict(compute=[6 * 2e9 * 4e10], params=[2e9], tokens=[4e10])
    assert again.predict(**target)[0]["loss"] == pytest.approx(fresh.predict(**target)[0]["loss"], rel=1e-9)
    r = CliRunner().invoke(cli, ["predict", str(out), "--params", "2e9", "--tokens", "4e10", "--json"])
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)["predictions"][0]
    assert p["lower"] < p["loss"] < p["upper"] and set(p["members"]) == {m.name for m in again.members}
    r = CliRunner().invoke(cli, ["report", str(out), "-o", str(tmp_path / "report.md"), "--target", "1e21"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "report.md").read_text()
    for m in again.members:  # each law with its weight and nested score, and its own parameter table
        assert f"| {m.name} | {m.weight:.3g} |" in text and f"### {m.name}" in text


def test_auto_predicts_targets_with_and_without_params_and_tokens():
    ens = fit_law(RunTable(ladder("chinchilla"), ["t"]), "auto", n_bootstrap=50)
    n, d = 2e9, 4e10
    both = ens.predict(compute=[6 * n * d, 6 * n * d], params=[n, np.nan], tokens=[d, np.nan])
    assert both[0]["loss"] == pytest.approx(ens.predict(compute=[6 * n * d], params=[n], tokens=[d])[0]["loss"])
    assert both[1]["loss"] == pytest.approx(ens.predict(compute=[6 * n * d])[0]["loss"])  # the compute-optimal split
    assert all(p["lower"] < p["loss"] < p["upper"] for p in both)
