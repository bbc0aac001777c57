"""Task accuracy the way the ladder papers fit it: step 2 on every checkpoint (smoothed, bootstrapped by run), which
tasks can be predicted, and the direct form weighed against the two steps."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from scalepredict.capability.checkpoints import checkpoint_noise, read_checkpoints, smoothed, step2_points
from scalepredict.capability.links import fit_link, link_value
from scalepredict.capability.tasks import fit_tasks
from scalepredict.cli import cli
from scalepredict.errors import InputError
from scalepredict.runs import RunTable


def truth(L):
    return 0.25 + 0.6 / (1 + np.exp(4.0 * (L - 3.0)))


def ladder(seed, n_runs=8, off_sd=0.015, pt_sd=0.004, acc=truth):
    """Checkpoints of a ladder: each run's task loss falls to its final value (3.6 down to 2.9), its accuracy
    follows `acc` with an offset of its own (off_sd) and an AR(1) checkpoint noise (pt_sd, correlation 0.7)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r, final in enumerate(np.linspace(3.6, 2.9, n_runs)):
        steps = np.arange(1, 41)
        L = final + 1.5 * (steps / 40.0) ** -0.5 - 1.5
        e = np.zeros(len(steps))
        for i in range(1, len(steps)):
            e[i] = 0.7 * e[i - 1] + rng.normal(0, pt_sd)
        y = acc(L) + rng.normal(0, off_sd) + e
        rows += [{"run": f"r{r}", "step": int(s) * 100, "bpb": float(l), "acc": float(a)} for s, l, a in zip(steps, L, y)]
    return rows


def _write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_checkpoints_are_read_smoothed_and_paired_exactly(tmp_path):
    p = _write(tmp_path / "ck.csv", [{"run": "a", "step": s, "bpb": 10 - s, "acc": s / 10} for s in range(10)] +
               [{"run": "b", "step": 0, "bpb": 5, "acc": ""}])
    ck = read_checkpoints(p, ["bpb", "acc"])
    assert list(ck.history("a", "bpb")[0]) == list(range(10)) and ck.history("b", "acc") is None
    # the first 10% of the steps left out (steps 0 and 0.9 -> step > 0.9), then a trailing mean over 5 checkpoints
    s, v = smoothed(np.arange(10), np.arange(10.0), window=5, skip=0.1)
    assert list(s) == [5, 6, 7, 8, 9] and v == pytest.approx([3.0, 4.0, 5.0, 6.0, 7.0], abs=1e-12)
    x, y, g = step2_points(ck, "bpb", "acc", ["a", "b", "missing"], window=5, skip=0.1)
    assert x == pytest.approx([7.0, 6.0, 5.0, 4.0, 3.0], abs=1e-12) and y == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7]) and g == ["a"] * 5
    # the scatter of neighbouring checkpoints: a straight line has none
    assert checkpoint_noise(ck, "acc", ["a"]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="line 3, column step"):
        read_checkpoints(_write(tmp_path / "bad.csv", [{"run": "a", "step": 1, "bpb": 1}, {"run": "a", "step": 1.5,
                                                                                        "bpb": 1}]), ["bpb"])
    with pytest.raises(InputError, match="no column 'step'"):
        read_checkpoints(_write(tmp_path / "nostep.csv", [{"run": "a", "bpb": 1}]), ["bpb"])


def test_step2_on_checkpoints_recovers_a_known_sigmoid():
    """Eight runs' checkpoints of acc = 0.25 + 0.6 / (1 + exp(4 (L - 3))) with a 0.2% checkpoint noise: the sigmoid
    fitted on them (chance fixed at 0.25) recovers the ceiling within 0.02, the slope within 10% and the midpoint
    within 0.02 nats, though the final values alone span only the curve's upper half."""
    rows = ladder(0, off_sd=0.0, pt_sd=0.002)
    x = np.array([r["bpb"] for r in rows])
    y = np.array([r["acc"] for r in rows])
    link = fit_link("sigmoid", x, y, 0.25, 0, groups=[r["run"] for r in rows])
    a, k, L0, b = link.values
    assert a == pytest.approx(0.6, abs=0.02) and k == pytest.approx(4.0, rel=0.1) and L0 == pytest.approx(3.0, abs=0.02)
    assert b == 0.25


def test_bootstrap_by_run_covers_where_checkpoints_are_strongly_correlated():
    """Each run's checkpoints share an offset of its own (1.5 points) and a correlated noise: 320 points, but eight
    runs' worth of information. Over 16 ladders, the 90% interval of the curve at a loss beyond the runs (2.6) from
    resampling whole runs covers the true curve at least 11 times (16 x 0.9 = 14.4 expected; 80% measured); resampling
    the points as if independent covers it far less often (7 of 20 measured), which this test also holds."""
    by_run = by_point = 0
    for seed in range(16):
        rows = ladder(seed)
        x = np.array([r["bpb"] for r in rows])
        y = np.array([r["acc"] for r in rows])
        for groups in ([r["run"] for r in rows], None):
            link = fit_link("sigmoid", x, y, 0.25, 60, seed, groups=groups)
            v = link_value("sigmoid", [2.6], link.boot)[:, 0]
            lo, hi = np.quantile(v, [0.05, 0.95])
            hit = lo <= truth(2.6) <= hi
            by_run += hit if groups else 0
            by_point += hit if not groups else 0
    assert by_run >= 11 and by_point <= by_run - 4, (by_run, by_point)


def _table(rows):
    return RunTable([{**r, "_where": "t"} for r in rows], ["t"])


def test_a_task_of_pure_noise_is_flagged_and_a_real_one_is_not(tmp_path):
    """Eight runs whose task loss falls with compute; one metric follows the loss through a sigmoid, one is noise
    around 0.5 (1 point): the noise is flagged as not predictable, in the fit and on every prediction."""
    rng = np.random.default_rng(3)
    C = np.geomspace(1e17, 3e19, 8)
    loss = 2.0 + 40.0 * C ** -0.08
    runs = [{"run": f"r{i}", "compute": float(c), "loss": float(l)} for i, (c, l) in enumerate(zip(C, loss))]
    good = truth(loss - loss.mean() + 3.0) + rng.normal(0, 0.003, 8)
    noise = 0.5 + rng.normal(0, 0.01, 8)
    tf = fit_tasks(_table(runs), {"acc_good": good, "acc_noise": noise}, "loss", law="compute", n_boot=20)
    flags = {m.name: m.predictability["predictable"] for m in tf.metrics}
    assert flags == {"acc_good": True, "acc_noise": False}
    preds = {p["metric"]: p for p in tf.predict(compute=[3e20])}
    assert preds["acc_noise"]["predictable"] is False and "not predictable" in preds["acc_noise"]["warning"]
    assert preds["acc_good"]["predictable"] is True


def test_fit_tasks_on_checkpoints_from_the_command_line(tmp_path):
    """fit-tasks --checkpoints: step 2 on every checkpoint of the fitted runs, reported as such; the direct form is
    weighed by the holdout where the runs share one tokens-per-parameter ratio."""
    rows = ladder(1)
    finals = {}
    for r in rows:
        finals[r["run"]] = r
    params = np.geomspace(1e7, 2e8, len(finals))
    table = [{"run": k, "params": float(n), "tokens": float(20 * n), "bpb": v["bpb"], "acc": v["acc"]}
             for (k, v), n in zip(finals.items(), params)]
    runs = _write(tmp_path / "runs.csv", table)
    ck = _write(tmp_path / "ck.csv", rows)
    out = tmp_path / "tasks.json"
    res = CliRunner().invoke(cli, ["fit-tasks", str(runs), "--task-loss", "bpb", "-m", "acc", "--law", "compute",
                                   "--checkpoints", str(ck), "--bootstrap", "20", "-t", "1e19", "-o", str(out),
                                   "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)["metrics"][0]
    assert m["fitted_on"] == "checkpoints" and m["runs"] == 8 and m["points"] == 8 * (36 - 4)
    assert m["direct_scores"] is not None and "two_step" in m["direct_scores"]
    p = json.loads(res.output)["predictions"][0]
    assert p["lower"] <= p["value"] <= p["upper"] and 0 <= p["direct_weight"] <= 1
    res = CliRunner().invoke(cli, ["fit-tasks", str(runs), "--task-loss", "bpb", "-m", "acc", "--checkpoints",
                                   str(tmp_path / "runs.csv"), "--step-col", "nostep"])
    assert res.exit_code == 2 and "no column 'nostep'" in res.output
