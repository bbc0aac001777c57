import json
import math

import pytest

pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from scalepredict.cli import cli  # noqa: E402
from scalepredict.errors import InputError  # noqa: E402
from scalepredict.config import load_config  # noqa: E402
from scalepredict.plan import plan  # noqa: E402
from scalepredict.config import TrainConfig  # noqa: E402
from scalepredict.train.probe import best_factor, probe_specs, recommend  # noqa: E402

from tests.test_sweep import TINY  # noqa: E402


def test_best_factor_is_the_parabola_vertex_in_log_lr():
    # through (-a, 2.0), (0, 1.9), (a, 1.96) with a = ln 2: p0 = 0.16 / (2 a^2), p1 = -0.04 / (2 a), so the vertex is
    # at x = -p1 / (2 p0) = a / 8: factor 2^(1/8)
    f, how = best_factor([0.25, 0.5, 1, 2, 4], [2.3, 2.0, 1.9, 1.96, float("nan")])
    assert how == "vertex" and f == pytest.approx(2 ** (1 / 8), rel=1e-12)
    assert best_factor([1, 2, 4], [2.0, 1.9, 1.8]) == (4.0, "edge")
    assert best_factor([1, 2, 4], [2.0, 1.9, float("nan")]) == (2.0, "best")  # its upper neighbour diverged
    with pytest.raises(InputError, match="every probe run diverged"):
        best_factor([1, 2, 4], [float("nan")] * 3)


def test_an_lr_exponent_no_published_rule_comes_near_is_warned_about():
    t = TrainConfig(lr=1e-2, lr_ref_params=3e4)
    at = lambda n, lr: {"params": n, "best_lr": lr, "best_factor": 1.0, "how": "vertex"}  # noqa: E731
    # cpu-validate's probe: 1.47x the rule at 13,128 params, 0.509x at 40,080: a slope of -1.29 in log-log
    steep = recommend(t, [at(13_128, 0.0132 * 1.47), at(40_080, 0.00908 * 0.509)])
    e = math.log(0.00908 * 0.509 / (0.0132 * 1.47)) / math.log(40_080 / 13_128)
    assert steep["lr_exponent"] == pytest.approx(e, rel=1e-12) and e < -1
    assert len(steep["warnings"]) == 1 and f"lr_exponent {e:.3g} is outside -1..0" in steep["warnings"][0]
    assert "13,128..40,080 parameters probed" in steep["warnings"][0]
    # OLMo's -1/3 is not warned about
    assert recommend(t, [at(1e4, 1e-2), at(8e4, 1e-2 / 2)])["warnings"] == []


def test_probe_trains_the_compute_optimal_guess_at_each_factor_and_recommends_an_lr(tmp_path):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    cfg = load_config(str(cfg_path))
    specs = probe_specs(cfg, [0.5, 1, 2], (0, 1))
    # the smallest two budgets' compute-optimal guesses, LR scaled, nothing else: N = sqrt(C / (6 * 20)) is 4,082 at
    # 2e9 (closest in log: L1d8, 2,840 params) and 5,774 at 4e9 (L1d16, 7,216 params)
    planned = {sp.id: sp for sp in plan(cfg)}
    assert [sp.id for sp in specs] == [f"{b}-lr{f}" for b in ("b0-L1d8-s0", "b1-L1d16-s0") for f in (0.5, 1, 2)]
    for sp in specs:
        base = planned[sp.id.rsplit("-lr", 1)[0]]
        assert sp.lr == pytest.approx(base.lr * float(sp.id.rsplit("-lr", 1)[1]))
        assert (sp.shape, sp.tokens, sp.steps, sp.warmup_steps) == (base.shape, base.tokens, base.steps, base.warmup_steps)

    out = tmp_path / "probe"
    args = ["probe", "--config", str(cfg_path), "--out", str(out), "--at", "0,1", "--factors", "0.5,1,2", "--jobs", "1"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    runs = {x["run"]: x for x in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}
    assert sorted(runs) == sorted(sp.id for sp in specs)
    result = json.loads((out / "probe.json").read_text())["result"]
    # the best LR at each size, then the line through the two in log lr against log N, read at lr_ref_params 1e4
    best = [planned[b].lr * best_factor([0.5, 1, 2], [runs[f"{b}-lr{f:g}"].get("loss", math.nan) for f in (0.5, 1, 2)])[0]
            for b in ("b0-L1d8-s0", "b1-L1d16-s0")]
    e = math.log(best[1] / best[0]) / math.log(7216 / 2840)
    assert result["lr_exponent"] == pytest.approx(e, rel=1e-9)
    assert result["lr"] == pytest.approx(best[0] * (1e4 / 2840) ** e, rel=1e-9)
    assert f"[train] lr = {result['lr']:.3g}, lr_exponent = {e:.3g}" in r.output
    # a rerun trains nothing; other factors on the same folder are refused
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "(0 to train)" in r.output
    r = CliRunner().invoke(cli, args[:-4] + ["--factors", "1,2,4", "--jobs", "1"])
    assert r.exit_code == 2 and "another config, data or factors" in r.stderr


@pytest.mark.parametrize("option, value, needle", [
    ("--factors", "1,2", "at least 3 distinct"), ("--factors", "1,x,2", "comma-separated numbers"),
    ("--factors", "0,1,2", "at least 3 distinct positive"), ("--at", "0,9", "the plan has 5 budgets"),
    ("--at", "first", "budget positions"),
])
def test_bad_probe_options_are_one_line_exit_2(tmp_path, option, value, needle):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    r = CliRunner().invoke(cli, ["probe", "--config", str(cfg_path), "--out", str(tmp_path / "p"), option, value])
    assert r.exit_code == 2 and needle in r.stderr and not (tmp_path / "p").exists()
