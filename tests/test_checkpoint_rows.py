"""Every checkpoint into the scaling fit (annealed.py, checkpointrows.py): checkpoints annealed into the finals of
shorter runs, held out with their runs, and weighed by the law average against finals alone."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from scalepredict.annealed import annealed_losses
from scalepredict.cli import cli
from scalepredict.core import schedules
from scalepredict.core.backtest import backtest
from scalepredict.core.checkpointrows import finals, is_checkpoint, with_checkpoints
from scalepredict.core.ensemble import LawAverage, fit_average
from scalepredict.forecast import RunCurve
from scalepredict.runs import RunTable


def annealing_loss(lr, steps, L0=2.0, A=3.0, alpha=0.45, C=2e-4):
    s1, s2 = schedules.areas(lr, steps)
    return L0 + A * s1 ** -alpha - C * s2


def curve(run, lr, steps, loss):
    return RunCurve(run, "val_loss", steps, loss, np.arange(len(lr)), lr, "log.jsonl")


def _cosine_run(T):
    lr = schedules.build("cosine", T, warmup=round(100 * T / 4000), final=0.1)
    steps = np.arange(50, T + 1, 50)
    return curve(f"r{T}", lr, steps, annealing_loss(lr, steps))


def test_a_checkpoint_annealed_is_the_final_of_a_shorter_cosine_run():
    """Curves made by the annealing law: the checkpoints of a 4000-step cosine run, annealed, match the finals of
    cosine runs of 1000, 2000 and 3000 steps (their warmup scaled alike) within 1% from the run alone and within
    0.2% with a 2000-step run of the same model fitted with it (two lengths tell the law how the loss answers the
    decay), where the raw checkpoints sit 1-2.5% above them (the LR has not annealed)."""
    long = _cosine_run(4000)
    alone = dict(annealed_losses(long, float(long.loss[-1])))
    joint = dict(annealed_losses(long, float(long.loss[-1]), companions=[_cosine_run(2000)]))
    assert sorted(alone) == sorted(joint) == [1000, 2000, 3000]
    for s in alone:
        short = schedules.build("cosine", s, warmup=round(100 * s / 4000), final=0.1)
        truth = annealing_loss(short, [s])[0]
        raw = long.loss[long.steps == s][0]
        assert raw / truth - 1 > 0.01
        assert abs(alone[s] / truth - 1) < min(0.01, raw / truth - 1)
        assert joint[s] == pytest.approx(truth, rel=2e-3)


def _table(with_ck: bool) -> RunTable:
    """A ladder of five runs on a known Chinchilla surface, each with checkpoints at half its tokens."""
    rec = []
    for i, n in enumerate([1e6, 2e6, 4e6, 8e6, 16e6]):
        d = 20 * n
        loss = 1.7 + 400 / n**0.34 + 410 / d**0.28
        rec.append({"run": f"r{i}", "params": n, "tokens": d, "compute": 6 * n * d, "loss": loss})
        if with_ck:
            rec.append({"run": f"r{i}@half", "params": n, "tokens": d / 2, "compute": 3 * n * d,
                        "loss": 1.7 + 400 / n**0.34 + 410 / (d / 2) ** 0.28, "checkpoint": True,
                        "checkpoint_of": f"r{i}"})
    return RunTable(rec, ["ladder"])


def test_checkpoints_are_never_targets_and_leave_with_their_runs():
    table = _table(True)
    assert is_checkpoint(table).sum() == 5 and len(finals(table)) == 5
    mask = with_checkpoints(table, [True, True, False, False, False])
    assert [table.names[i] for i in np.flatnonzero(mask)] == ["r0", "r0@half", "r1", "r1@half"]
    plain, ck = backtest(_table(False), "auto", factors=[10]), backtest(table, "auto", factors=[10])
    # the same targets (the finals above C_max / 10), whether or not the table holds checkpoints
    assert [c["actual"] for c in ck["cases"]] == [c["actual"] for c in plain["cases"]]


def test_the_law_average_weighs_each_law_with_and_without_checkpoints():
    fit = fit_average(_table(True), n_bootstrap=0)
    names = [m.candidate.name for m in fit.average_of]
    assert "compute" in names and "compute + checkpoints" in names and "chinchilla (near-frontier runs) + " \
        "checkpoints" in names
    assert all(m.fit.n_points <= 5 for m in fit.average_of if not m.candidate.checkpoints and m.fit.law.name
               != "compute")
    back = LawAverage.from_dict(json.loads(json.dumps(fit.to_dict())), "fit.json")
    assert [m.candidate.checkpoints for m in back.average_of] == [m.candidate.checkpoints for m in fit.average_of]
    # the checkpoints lie on the same surface: the law on them recovers it beyond the runs
    p = fit.predict(params=[64e6], tokens=[1280e6], compute=[6 * 64e6 * 1280e6])[0]
    assert p["loss"] == pytest.approx(1.7 + 400 / 64e6**0.34 + 410 / 1280e6**0.28, rel=0.01)


def _write_logs(tmp_path, with_lr=True):
    """Four runs' logs in scalepredict's own format (runs/<run>/log.jsonl), their curves made by the annealing law
    under one cosine schedule, and a run-meta file with their params."""
    T = 2000
    lr = schedules.build("cosine", T, warmup=50, final=0.1)
    paths, sizes = [], [1e5, 2e5, 4e5, 8e5]
    for i, n in enumerate(sizes):
        lines = []
        for s in range(50, T + 1, 50):
            rec = {"step": s, "tokens": s * 1000 * (i + 1),
                   "val_loss": float(annealing_loss(lr, [s], A=3.0 * (1e5 / n) ** 0.2)[0])}
            if with_lr:
                rec["lr"] = float(lr[s - 1])
            lines.append(json.dumps(rec))
        p = tmp_path / f"run{i}" / "log.jsonl"
        p.parent.mkdir()
        p.write_text("\n".join(lines) + "\n")
        paths.append(p)
    meta = tmp_path / "meta.csv"
    meta.write_text("run,params\n" + "".join(f"run{i},{n:g}\n" for i, n in enumerate(sizes)))
    return paths, meta


def test_fit_with_checkpoints_from_logs_and_its_refusals(tmp_path):
    paths, meta = _write_logs(tmp_path)
    r = CliRunner().invoke(cli, ["fit", *map(str, paths), "--run-meta", str(meta), "--checkpoints", "--json",
                                 "--bootstrap", "0", "--out", str(tmp_path / "fit.json")])
    assert r.exit_code == 0, r.output
    n = {c["name"]: c["fit"]["n_points"] for c in json.loads(r.stdout)["candidates"]}
    # four runs, three checkpoints each: four finals cannot fit the chinchilla law (5 parameters); its twin fits 16
    assert "chinchilla (near-frontier runs)" not in n and n["chinchilla (near-frontier runs) + checkpoints"] == 16
    assert n["compute"] == 4
    r = CliRunner().invoke(cli, ["fit", *map(str, paths), "--run-meta", str(meta), "--checkpoints", "--intermediate"])
    assert r.exit_code == 2 and "give one" in r.output
    (tmp_path / "bare").mkdir()
    bare, meta = _write_logs(tmp_path / "bare", with_lr=False)  # no LR logged, no schedule known
    r = CliRunner().invoke(cli, ["fit", *map(str, bare), "--run-meta", str(meta), "--checkpoints"])
    assert r.exit_code == 2 and "no run has a curve with a known schedule" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_the_law_average_takes_checkpoints_by_default_where_runs_have_curves_under_a_known_schedule(tmp_path):
    """The default follows the measurement (docs/curves.md): --law auto weighs every law with and without the
    checkpoints where the runs have curves of the fitted metric under a known schedule; --no-checkpoints, a single
    law or runs without a schedule fit the finals alone, without a word."""
    paths, meta = _write_logs(tmp_path)
    base = ["fit", *map(str, paths), "--run-meta", str(meta), "--json", "--bootstrap", "0"]

    def fitted(*extra):
        r = CliRunner().invoke(cli, base + list(extra))
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    def names(*extra):  # the laws averaged (four finals alone support the compute law only: a single fit)
        d = fitted(*extra)
        return [c["name"] for c in d["candidates"]] if "candidates" in d else [d["law"]]

    assert "compute + checkpoints" in names()
    assert not any("checkpoints" in n for n in names("--no-checkpoints"))
    assert fitted("--law", "compute")["n_points"] == 4  # the four finals: a single law takes them on request only
    (tmp_path / "bare").mkdir()
    bare, meta = _write_logs(tmp_path / "bare", with_lr=False)
    r = CliRunner().invoke(cli, ["fit", *map(str, bare), "--run-meta", str(meta), "--json", "--bootstrap", "0"])
    assert r.exit_code == 0 and json.loads(r.stdout)["law"] == "compute" and "checkpoints" not in r.output


def test_a_schedule_logged_every_few_steps_is_read_between_them():
    """A log that records the LR every 20th step: the schedule between is linear in its neighbours (within 0.1% of
    the cosine that made it), not zero."""
    from scalepredict.forecast import schedule_for

    lr = schedules.build("cosine", 2000, warmup=50, final=0.1)
    logged = np.arange(20, 2001, 20)
    got = schedule_for(RunCurve("r", "val_loss", logged, np.ones(len(logged)), logged - 1, lr[logged - 1], "x"),
                       None, 2000)
    assert got.total == 2000 and got.source == "log"
    np.testing.assert_allclose(got.lr[60:], lr[60:], rtol=1e-3)
