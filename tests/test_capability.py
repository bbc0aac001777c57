"""Capabilities: GPT-4's pass-rate law and the two-step task law recover known parameters, read run tables and W&B
histories, predict with intervals that cover, and refuse bad input with one line."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from scalepredict.cli import cli
from scalepredict.ingest import load_table
from scalepredict.capability.passrate import fit_pass_rate, read_pass_table
from scalepredict.capability.links import LINKS, fit_link
from scalepredict.capability.task_inputs import metric_values
from scalepredict.capability.tasks import fit_tasks, metric_kind

from .conftest import shared_file

# ---- the pass-rate law ------------------------------------------------------------------------------------------


def pass_rows(k=0.12, n_models=6, n_problems=30, samples=None, seed=0, lo=1e18, hi=1e21, hard=0):
    """Per model and problem: -log p_j(C) = alpha_j C^(-k) (so the mean over problems is alpha C^(-k) exactly, with
    alpha the mean of the alpha_j); `samples`: draw binomial passes instead of giving the rate; `hard`: problems
    the smallest model never solves."""
    rng = np.random.default_rng(seed)
    computes = np.geomspace(lo, hi, n_models)
    alphas = rng.uniform(0.2, 3.0, n_problems) * lo ** k  # -log p from ~0.2 to 3 at the smallest model
    rows = []
    for i, c in enumerate(computes):
        for j, a in enumerate(alphas):
            p = math.exp(-a * c ** (-k))
            row = {"model": f"m{i}", "compute": c, "problem": f"p{j}"}
            if j < hard and i == 0:
                p = 0.0
            if samples:
                row.update(samples=samples, passes=int(rng.binomial(samples, p)))
            else:
                row["pass_rate"] = p
            rows.append(row)
    return rows, alphas


def write_csv(path, rows):
    cols = list(rows[0])
    path.write_text(",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n" for r in rows))
    return path


def test_pass_rate_law_recovers_alpha_and_k_exactly_from_exact_rates(tmp_path):
    rows, alphas = pass_rows()
    f = fit_pass_rate(read_pass_table(write_csv(tmp_path / "p.csv", rows)), n_boot=200)
    assert f.k == pytest.approx(0.12, rel=1e-9)
    assert f.alpha == pytest.approx(alphas.mean(), rel=1e-9)
    assert len(f.problems) == 30 and not f.dropped
    # each problem's own scale, and the pass rates it implies 100x beyond the largest model
    got = dict(zip(f.problems, f.problem_alpha))
    assert [got[f"p{j}"] for j in range(30)] == pytest.approx(alphas, rel=1e-9)
    (p,) = f.predict([1e23])
    truth = np.exp(-alphas * 1e23 ** -0.12)
    assert [p["problems"][f"p{j}"] for j in range(30)] == pytest.approx(truth, rel=1e-9)
    assert p["metric"] == pytest.approx(alphas.mean() * 1e23 ** -0.12, rel=1e-9)
    assert p["mean_pass_rate"] == pytest.approx(truth.mean(), rel=1e-9)


def test_pass_rate_law_from_sampled_passes_keeps_solved_problems_and_covers_the_truth(tmp_path):
    rows, alphas = pass_rows(samples=100, n_problems=60, hard=5, seed=3)
    f = fit_pass_rate(read_pass_table(write_csv(tmp_path / "p.csv", rows)), max_compute=1.1e20)  # 5 models of 6
    # the 5 problems the smallest model never solved, and any a sample left at 0, are left out and reported
    assert set(f"p{j}" for j in range(5)) <= set(f.dropped) and len(f.problems) + len(f.dropped) == 60
    assert f.k == pytest.approx(0.12, abs=0.02)
    (p,) = f.predict([1e21])  # the held-out largest model, 10x beyond
    kept = [int(name[1:]) for name in f.problems]
    true_metric = np.mean(alphas[kept] * 1e21 ** -0.12)
    assert p["lower"] <= true_metric <= p["upper"]
    assert p["metric"] == pytest.approx(true_metric, rel=0.1)


@pytest.mark.parametrize("patch, needle", [
    (lambda r: r[3].update(pass_rate=1.5), "line 5, column 'pass_rate': pass rate 1.5 is not in [0, 1]"),
    (lambda r: r[2].update(pass_rate=-0.1), "line 4, column 'pass_rate': pass rate -0.1 is not in [0, 1]"),
])
def test_pass_rates_outside_0_1_are_one_line_naming_the_cell(tmp_path, patch, needle):
    rows, _ = pass_rows(n_problems=4)
    patch(rows)
    r = CliRunner().invoke(cli, ["fit-passrate", str(write_csv(tmp_path / "p.csv", rows))])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.strip() == f"scalepredict: error: {tmp_path / 'p.csv'}, {needle}"


def test_pass_rate_bad_tables(tmp_path):
    rows, _ = pass_rows(samples=10, n_problems=3)
    rows[4]["passes"] = 11
    r = CliRunner().invoke(cli, ["fit-passrate", str(write_csv(tmp_path / "a.csv", rows))])
    assert r.exit_code == 2 and "line 6, column 'passes': 11 passes out of 10 samples" in r.stderr
    rows, _ = pass_rows(n_models=2)
    r = CliRunner().invoke(cli, ["fit-passrate", str(write_csv(tmp_path / "b.csv", rows))])
    assert r.exit_code == 2 and "the pass-rate law needs at least 3" in r.stderr
    rows, _ = pass_rows(n_problems=3, hard=3)
    r = CliRunner().invoke(cli, ["fit-passrate", str(write_csv(tmp_path / "c.csv", rows))])
    assert r.exit_code == 2 and "no problem is solved at least once by every fitted model" in r.stderr
    assert all(len(x.stderr.strip().splitlines()) == 1 for x in [r])


def test_pass_rate_cli_fit_predict_plot_report(tmp_path):
    rows, alphas = pass_rows(samples=200, seed=1)
    table = write_csv(tmp_path / "p.csv", rows)
    out = tmp_path / "passrate.json"
    r = CliRunner().invoke(cli, ["fit-passrate", str(table), "-t", "1e22", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "6 models, 30 problems kept of 30" in r.output and f"wrote {out}" in r.output
    r = CliRunner().invoke(cli, ["predict", str(out), "-c", "1e22", "--json"])
    assert r.exit_code == 0, r.output
    (p,) = json.loads(r.output)["predictions"]
    assert p["lower"] < p["metric"] < p["upper"] and 0 < p["mean_pass_rate"] < 1
    assert p["metric"] == pytest.approx(alphas.mean() * 1e22 ** -0.12, rel=0.05)
    r = CliRunner().invoke(cli, ["predict", str(out), "--params", "1e9,2e9", "--tokens", "2e10"])
    assert r.exit_code == 2 and "--params and --tokens: give as many of each (2 vs 1)" in r.stderr
    r = CliRunner().invoke(cli, ["plot", str(out), "-t", "1e22", "-o", str(tmp_path / "p.png")])
    assert r.exit_code == 0 and (tmp_path / "p.png").stat().st_size > 10_000
    r = CliRunner().invoke(cli, ["report", str(out), "-o", str(tmp_path / "r.md"), "-t", "1e22"])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "r.md").read_text()
    assert "## Capabilities" in text and "GPT-4's pass-rate law" in text and "r-passrate.png" in text


# ---- the two-step task law --------------------------------------------------------------------------------------

E, A, B, ALPHA, BETA = 1.8, 400.0, 2000.0, 0.34, 0.36
SIG = dict(k=6.0, L0=2.9, chance=0.25)  # acc = 0.25 + 0.75 / (1 + exp(6 (L - 2.9)))


def task_loss(n, d):
    return E + A / n ** ALPHA + B / d ** BETA


def accuracy(loss):
    return SIG["chance"] + (1 - SIG["chance"]) / (1 + np.exp(SIG["k"] * (loss - SIG["L0"])))


def ladder(noise=0.004, seed=0, sizes=(20e6, 40e6, 80e6, 160e6, 320e6), mults=(5, 10, 20, 40, 80)):
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for m in mults:
            d = m * n
            L = task_loss(n, d)
            acc = float(np.clip(accuracy(L) + rng.normal(0, noise), 0, 1))
            rows.append({"run": f"n{n:.0e}-x{m}", "params": n, "tokens": d, "bpb": round(L, 6),
                         "acc_task": round(acc, 6), "err_task": round(1 - acc, 6),
                         "acc_flat": round(0.25 + rng.normal(0, 0.003), 6)})
    return rows


def test_links_recover_known_parameters():
    rng = np.random.default_rng(0)
    x = np.linspace(2.4, 4.0, 40)
    truth = np.array([0.6, 5.0, 3.0, 0.3])  # a, k, L0, b
    y = LINKS["sigmoid"](x, truth[None, :])[0] + rng.normal(0, 0.002, 40)
    link = fit_link("sigmoid", x, y, n_boot=20)
    assert link.values == pytest.approx(truth, rel=0.05)
    y = 0.2 + 2.0 * np.exp(-0.8 * x)  # Gadre et al.'s form, in accuracy: 1 - (eps - k exp(-gamma L))
    link = fit_link("exponential", x, y, n_boot=0)
    assert link.values == pytest.approx([0.2, 2.0, 0.8], rel=1e-3)
    assert metric_kind("err_arc_easy") == "error" and metric_kind("mean_err(46 tasks)") == "error"
    assert metric_kind("eval/downstream/hellaswag_acc") == "accuracy"


def test_two_step_law_predicts_a_larger_model_within_two_points_and_covers_it(tmp_path):
    rows = ladder()
    p = tmp_path / "ladder.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = load_table([p], columns={"loss": "bpb"})
    tf = fit_tasks(t, metric_values(t, ["acc_task"]), "bpb", law="chinchilla", forms=("sigmoid1",), chance=0.25,
                   n_boot=60)
    (m,) = tf.metrics
    assert m.link.values[:2] == pytest.approx([SIG["k"], SIG["L0"]], rel=0.1)  # k, L0 (b held at chance)
    # a 1.3B model on 26B tokens: 4x the largest fitted size, 16x the compute
    (pred,) = tf.predict(params=np.array([1.3e9]), tokens=np.array([26e9]))
    true_loss = task_loss(1.3e9, 26e9)
    true_acc = accuracy(true_loss)
    assert pred["task_loss"] == pytest.approx(true_loss, rel=0.01)
    assert abs(pred["value"] - true_acc) < 0.02
    assert pred["lower"] <= true_acc <= pred["upper"]
    assert pred["direct"]["lower"] <= pred["direct"]["value"] <= pred["direct"]["upper"]


def test_fit_tasks_cli_reads_errors_and_patterns_and_refuses_a_task_at_chance(tmp_path):
    rows = ladder(seed=1)
    p = tmp_path / "ladder.csv"
    cols = list(rows[0])
    p.write_text(",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n" for r in rows))
    out = tmp_path / "tasks.json"
    r = CliRunner().invoke(cli, ["fit-tasks", str(p), "--task-loss", "bpb", "-m", "err_task", "-m", "acc_*",
                                 "--chance", "0.25", "--chance", "err_task=0.75", "--law", "chinchilla",
                                 "--bootstrap", "30", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "left out acc_flat: at or below chance (0.25) at every scale" in r.stderr  # matched by a pattern
    r = CliRunner().invoke(cli, ["predict", str(out), "--params", "1.3e9", "--tokens", "26e9", "--json"])
    assert r.exit_code == 0, r.output
    preds = {q["metric"]: q for q in json.loads(r.output)["predictions"]}
    true_acc = accuracy(task_loss(1.3e9, 26e9))
    assert preds["err_task"]["kind"] == "error" and abs(preds["err_task"]["value"] - (1 - true_acc)) < 0.02
    assert abs(preds["acc_task"]["value"] - true_acc) < 0.02
    r = CliRunner().invoke(cli, ["plot", str(out), "-t", "1e20", "--metric", "err_task", "-o", str(tmp_path / "t.png")])
    assert r.exit_code == 0 and (tmp_path / "t.png").stat().st_size > 10_000
    r = CliRunner().invoke(cli, ["report", str(out), "-o", str(tmp_path / "r.md"), "-t", "1e20"])
    assert r.exit_code == 0 and "| err_task |" in (tmp_path / "r.md").read_text()
    # named explicitly, a task at chance at every scale is one line, exit 2
    r = CliRunner().invoke(cli, ["fit-tasks", str(p), "--task-loss", "bpb", "-m", "acc_flat", "--chance", "0.25",
                                 "--law", "chinchilla"])
    assert r.exit_code == 2 and r.stderr.strip() == ("scalepredict: error: acc_flat: at or below chance (0.25) at "
                                                     "every scale; nothing to fit")


@pytest.mark.parametrize("edit, needle", [
    (lambda r: r[2].update(acc_task=57.3), "line 3, column acc_task: 57.3 is not a rate in [0, 1] (a percentage?"),
    (lambda r: r[0].update(acc_task=-0.2), "line 1, column acc_task: -0.2 is not a rate in [0, 1]"),
])
def test_task_rates_outside_0_1_name_the_cell(tmp_path, edit, needle):
    rows = ladder()
    edit(rows)
    p = tmp_path / "l.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = CliRunner().invoke(cli, ["fit-tasks", str(p), "--task-loss", "bpb", "-m", "acc_task", "--law", "chinchilla"])
    assert r.exit_code == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_too_few_runs_for_step_two(tmp_path):
    rows = ladder(sizes=(20e6, 80e6), mults=(10, 40))
    p = tmp_path / "l.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = CliRunner().invoke(cli, ["fit-tasks", str(p), "--task-loss", "bpb", "-m", "acc_task", "--law", "chinchilla"])
    assert r.exit_code == 2 and "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1, r.output


def test_fit_tasks_reads_wandb_histories_of_a_ladder(tmp_path):
    """Ladders log a task loss and accuracies per step: a folder of W&B history CSVs, one per run."""
    folder = tmp_path / "ladder"
    folder.mkdir()
    table = []
    for r in ladder(sizes=(20e6, 40e6, 80e6, 160e6), mults=(10, 20, 40)):
        steps = [0, 100, 200]
        hist = ["_step,_runtime,eval/c4/bpb,eval/downstream/task_acc,throughput/total_tokens"]
        for s in steps:
            frac = (s + 1) / (steps[-1] + 1)
            hist.append(f"{s},{s},{r['bpb'] / frac:.6f},{r['acc_task'] * frac:.6f},{int(r['tokens'] * frac)}")
        (folder / f"{r['run']}.csv").write_text("\n".join(hist) + "\n")
        table.append(r)
    meta = tmp_path / "meta.csv"
    meta.write_text("run,params\n" + "".join(f"{r['run']},{r['params']}\n" for r in table))
    out = tmp_path / "t.json"
    res = CliRunner().invoke(cli, ["fit-tasks", str(folder), "--task-loss", "eval/c4/bpb", "-m", "eval/downstream/*",
                                   "--run-meta", str(meta), "--law", "chinchilla", "--bootstrap", "10",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())["metrics"][0]
    got = dict(zip(m["runs"], m["accuracy"]))
    assert got == {r["run"]: pytest.approx(r["acc_task"], abs=1e-6) for r in table}  # the final logged values
    assert dict(zip(m["runs"], m["loss"])) == {r["run"]: pytest.approx(r["bpb"], abs=1e-6) for r in table}


def test_gadre_average_error_predicted_from_small_runs():
    """Gadre et al. 2024's downstream data: the average top-1 error of the 1.4B and 6.9B models from the runs of at
    most 2.1e19 FLOPs (12-400x beyond), in two steps with the defaults: within 4 points on average (3.7 measured),
    each inside its 90% interval."""
    path = shared_file("scaling/gadre2024_rpj_rw_downstream.csv")
    from scalepredict.capability.task_inputs import average_metric, expand_metrics

    t = load_table([path], columns={"loss": "loss_c4_val", "run": "run"})
    names = [n for n in expand_metrics(["err_*"], set(t.records[0]))[0] if "avg" not in n]
    assert len(names) == 46
    train, test = t.subset(t.compute <= 2.1e19), t.subset(t.params >= 1.4e9)
    name, avg = average_metric(metric_values(train, names), names)
    tf = fit_tasks(train, {name: avg}, "loss_c4_val", law="auto", forms=("auto",), n_boot=40)
    _, truth = average_metric(metric_values(test, names), names)
    preds = tf.predict(params=test.params, tokens=test.tokens)
    errs = [p["value"] - y for p, y in zip(preds, truth)]
    assert np.mean(np.abs(errs)) < 0.04
    assert all(p["lower"] <= y <= p["upper"] for p, y in zip(preds, truth))


def test_each_task_follows_its_own_bits_per_byte(tmp_path):
    """OLMo-style ladders log each task's own loss (bits per byte of the correct answer) beside its accuracy:
    `-m 'acc_*' --task-loss 'bpb_*'` pairs them, one step 1 per task."""
    rows = []
    for r in ladder(seed=2):
        n, d = r["params"], r["tokens"]
        hard = task_loss(n, d) + 0.3  # a second task: its loss 0.3 higher, the same link
        rows.append({"run": r["run"], "params": n, "tokens": d, "bpb_easy": r["bpb"], "acc_easy": r["acc_task"],
                     "bpb_hard": round(hard, 6), "acc_hard": round(float(accuracy(hard)), 6), "acc_orphan": 0.5})
    p = tmp_path / "ladder.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "t.json"
    r = CliRunner().invoke(cli, ["fit-tasks", str(p), "-m", "acc_*", "--task-loss", "bpb_*", "--chance", "0.25",
                                 "--law", "chinchilla", "--form", "sigmoid1", "--bootstrap", "20", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "left out acc_orphan: no task loss bpb_orphan beside it" in r.stderr
    saved = json.loads(out.read_text())
    assert sorted(saved["steps1"]) == ["bpb_easy", "bpb_hard"]
    assert {m["name"]: m["task_loss"] for m in saved["metrics"]} == {"acc_easy": "bpb_easy", "acc_hard": "bpb_hard"}
    r = CliRunner().invoke(cli, ["predict", str(out), "--params", "1.3e9", "--tokens", "26e9", "--json"])
    preds = {q["metric"]: q for q in json.loads(r.output)["predictions"]}
    for name, shift in (("acc_easy", 0.0), ("acc_hard", 0.3)):
        true_loss = task_loss(1.3e9, 26e9) + shift
        assert preds[name]["task_loss_name"] == name.replace("acc", "bpb")
        assert preds[name]["task_loss"] == pytest.approx(true_loss, rel=0.01)
        assert abs(preds[name]["value"] - accuracy(true_loss)) < 0.02
