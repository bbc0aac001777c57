"""The user's own trainer at every rung: a sweep whose runs a small torch script trains ([train] command), launched
in turn, in a process pool and on the test SLURM cluster, fitted exactly as the same runs read from their logs; a
failing command, a command that writes no loss and a template with an unknown placeholder are one line each."""

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from scalepredict.cli import cli  # noqa: E402
from scalepredict.config import load_config  # noqa: E402
from scalepredict.plan import plan  # noqa: E402

TRAINER = Path(__file__).resolve().parent / "fixtures" / "tiny_trainer.py"
COMMAND = (f"{sys.executable} {TRAINER} --n_layer {{n_layer}} --d_model {{d_model}} --n_head {{n_head}} "
           f"--seq_len {{seq_len}} --batch_size {{batch_size}} --steps {{steps}} --vocab_size {{vocab_size}} "
           f"--seed {{seed}} --warmup {{warmup_steps}} --lr {{lr}} --train {{train_bin}} --val {{val_bin}} "
           f"--out {{run_dir}} {{resume}}")


def config(tmp_path, command=COMMAND, extra="") -> Path:
    p = tmp_path / "own.toml"
    p.write_text(f"""name = "own"
[data]
source = "synthetic"
size = 200000
val_tokens = 2048
[model]
seq_len = 32
aspect = 16
head_dim = 8
[sweep]
budgets = [2e9, 4e9, 8e9]
sizes_per_budget = 2
repeats = 0
bracket = 0
min_steps = 20
targets = [1e11]
[train]
batch_size = 32
lr = 1e-2
lr_ref_params = 1e4
command = {json.dumps(command)}
resume_flag = "--resume"
{extra}
""")
    return p


def sweep(*args):
    return CliRunner().invoke(cli, ["sweep", *map(str, args)])


def _records(out):
    return {r["run"]: r for r in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def in_turn(tmp_path_factory):
    """The sweep trained in turn in this process: the reference the other launchers are compared with."""
    tmp = tmp_path_factory.mktemp("own")
    cfg = config(tmp)
    r = sweep("--config", cfg, "--out", tmp / "turn", "--jobs", "1", "--device", "cpu")
    assert r.exit_code == 0, r.output
    return cfg, tmp / "turn"


def test_a_sweep_of_your_own_trainer_fits_as_its_logs_do(in_turn, tmp_path):
    cfg, out = in_turn
    recs = _records(out)
    specs = {s.id: s for s in plan(load_config(str(cfg)))}
    assert set(recs) == set(specs)  # every planned run exactly once
    for rid, rec in recs.items():
        assert rec["trainer"] == "command" and rec["steps_done"] == specs[rid].steps
        assert rec["params_plan"] == specs[rid].shape.params  # the plan's count kept beside the trainer's own
        assert rec["compute"] == pytest.approx(6 * rec["params"] * rec["tokens"])  # 6ND of the reported params
    # the same runs read from their logs by `scalepredict fit`: the same law, to the optimizer's tolerance
    logs = sorted((out / "runs").glob("*/train.log"))
    tps = 32 * 32  # batch_size x seq_len
    a = CliRunner().invoke(cli, ["fit", str(out / "runs.jsonl"), "--law", "chinchilla_tied",
                                 "--bootstrap", "0", "-o", str(tmp_path / "a.json")])
    b = CliRunner().invoke(cli, ["fit", *map(str, logs), "--law", "chinchilla_tied", "--bootstrap", "0",
                                 "--tokens-per-step", str(tps), "-o", str(tmp_path / "b.json")])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    fa, fb = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "ab")
    assert sorted((p["params"], p["tokens"], p["loss"]) for p in fa["points"]) == \
        sorted((p["params"], p["tokens"], p["loss"]) for p in fb["points"])  # the very same runs
    for k in fa["params"]:  # the same optimum; the runs come in another order, and the law's flattest direction
        # moves by ~1e-6 with the order of a float sum (the solver stops at 1e-13 of the objective)
        assert fb["params"][k]["value"] == pytest.approx(fa["params"][k]["value"], rel=1e-5), k
    pred = [CliRunner().invoke(cli, ["predict", str(tmp_path / f"{x}.json"), "--params", "1e6", "--tokens", "1e9",
                                     "--json"]) for x in "ab"]
    la, lb = (json.loads(r.stdout)["predictions"][0]["loss"] for r in pred)
    assert lb == pytest.approx(la, rel=1e-7)


def test_a_process_pool_trains_the_same_runs_to_the_same_losses(in_turn, tmp_path):
    cfg, out = in_turn
    r = sweep("--config", cfg, "--out", tmp_path / "pool", "--jobs", "2", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert {k: v["loss"] for k, v in _records(tmp_path / "pool").items()} == \
        {k: v["loss"] for k, v in _records(out).items()}  # a seeded trainer, one thread each


def test_a_failing_command_and_one_that_logs_no_loss_are_one_line_and_retried(tmp_path):
    out = tmp_path / "s"
    r = sweep("--config", config(tmp_path, COMMAND + " --fail"), "--out", out, "--jobs", "1", "--device", "cpu")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "exited with status 3" in r.stderr and "CUDA out of memory" in r.stderr
    assert not (out / "runs.jsonl").exists() or not (out / "runs.jsonl").read_text().strip()
    r = sweep("--config", config(tmp_path, COMMAND + " --silent"), "--out", tmp_path / "t", "--jobs", "1",
              "--device", "cpu")
    assert r.exit_code == 2 and "has no a validation loss" in r.stderr, r.stderr


def test_an_unknown_placeholder_is_refused_before_anything_runs(tmp_path):
    cfg = config(tmp_path, COMMAND + " --depth {n_layers}")
    r = sweep("--config", cfg, "--out", tmp_path / "s")
    assert r.exit_code == 2 and "unknown placeholder(s) {n_layers}" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()
    r = sweep("--config", config(tmp_path, "python train.py --x {"), "--out", tmp_path / "s")
    assert r.exit_code == 2 and "not a valid template" in r.stderr


def test_an_interrupted_run_is_started_again_with_its_resume_flag(tmp_path):
    from scalepredict.files import SweepFolder
    from scalepredict.train.external import STARTED, run_command
    from scalepredict.train.data import synthetic_corpus, token_files

    cfg = load_config(str(config(tmp_path)))
    spec = max(plan(cfg), key=lambda s: s.steps)
    folder = SweepFolder(tmp_path / "s")
    paths = token_files(synthetic_corpus(200000), folder.path / "data")
    run = folder.run(spec.id)
    run.path.mkdir(parents=True)
    (run.path / STARTED).write_text("{}\n")  # a start that a stop signal ended
    rec = run_command(spec, cfg, run, "cpu", paths)
    argv = json.loads((run.path / STARTED).read_text())["argv"]
    assert argv[-1] == "--resume" and rec["status"] == "ok" and rec["steps_done"] == spec.steps


@pytest.mark.skipif(not shutil.which("sbatch"), reason="no SLURM here (tests/slurm/start.sh starts one)")
def test_your_own_trainer_on_the_test_slurm_cluster(in_turn, tmp_path):
    cfg, out = in_turn
    slurm_cfg = tmp_path / "slurm.toml"
    slurm_cfg.write_text(Path(cfg).read_text() + "[launcher]\nkind = \"slurm\"\ncpus_per_run = 1\ntime_min = 10\n"
                                                 "poll_seconds = 1\n")
    r = sweep("--config", slurm_cfg, "--out", tmp_path / "slurm", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert {k: v["loss"] for k, v in _records(tmp_path / "slurm").items()} == \
        {k: v["loss"] for k, v in _records(out).items()}  # every run, trained once per job, as in turn
