import json
import re
from dataclasses import asdict, replace
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from scalepredict.cli import cli  # noqa: E402
from scalepredict.errors import InputError  # noqa: E402
from scalepredict.flops import Shape  # noqa: E402
from scalepredict.config import load_config  # noqa: E402
from scalepredict.plan import compute_optimal_run, lr_at, plan  # noqa: E402
from scalepredict.train.data import synthetic_corpus, token_corpus  # noqa: E402
from scalepredict.train.model import GPT  # noqa: E402
from scalepredict.errors import Stopped  # noqa: E402
from scalepredict.train.stopping import stop_at_step_boundary  # noqa: E402
from scalepredict.train.trainer import train_run  # noqa: E402

from .conftest import TINY  # noqa: E402



# the tiny ladder without its largest budget (half its compute): for tests of launching and resuming, not of fits
FOUR_BUDGETS = TINY.replace("budgets = [2e9, 4e9, 8e9, 1.6e10, 3.2e10]", "budgets = [2e9, 4e9, 8e9, 1.6e10]")


def _status_json(out):
    r = CliRunner().invoke(cli, ["status", str(out), "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    return json.loads(r.output)


def test_flops_match_a_hand_count():
    s = Shape(n_layer=2, d_model=64, n_head=4, vocab_size=256, seq_len=128)
    # per layer: qkv 3*64*64 + proj 64*64 + mlp 2*4*64*64 = 12*4096 = 49152; two layers 98304
    assert s.block_matmul_params == 98_304
    assert s.norm_params == 5 * 64
    assert s.head_params == 64 * 256
    assert s.params == 98_304 + 320 + 16_384
    assert s.params_total == s.params + 256 * 64 + 128 * 64
    # forward per token: 2*98304 (blocks) + 2*64*256 (head) + 4*2*128*64 (attention) = 196608 + 32768 + 65536
    assert s.forward_flops_per_token == 294_912
    assert s.train_flops_per_token == 3 * 294_912
    assert s.flops_6nd(1000) == 6 * s.params * 1000


def test_model_parameter_count_matches_accounting():
    s = Shape(3, 48, 3, 256, 64)
    m = GPT(s)
    assert sum(p.numel() for p in m.parameters()) == s.params_total
    assert sum(p.numel() for n, p in m.named_parameters() if not n.startswith(("tok.", "pos."))) == s.params


def test_plan_isoflop_sets_and_exact_compute(tmp_path):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    specs = plan(load_config(str(cfg_path)))
    budgets = sorted({s.budget for s in specs})
    assert budgets == [2e9, 4e9, 8e9, 1.6e10, 3.2e10]
    for s in specs:
        assert s.compute <= s.budget
        assert s.compute == s.shape.train_flops_per_token * s.tokens
        assert s.tokens == s.steps * s.batch_size * s.shape.seq_len
        assert 1 <= s.warmup_steps <= max(1, round(0.1 * s.steps))
    # one extra seed at the smallest budget
    assert sum(1 for s in specs if s.budget == 2e9) == len({s.shape for s in specs if s.budget == 2e9}) + 1
    # cosine from peak to 10% of peak over the run's own steps
    s = specs[-1]
    t = load_config(str(cfg_path)).train
    assert lr_at(s.warmup_steps, s, t) == pytest.approx(s.lr)
    assert lr_at(s.steps, s, t) == pytest.approx(0.1 * s.lr)


@pytest.mark.parametrize("patch, needle", [
    ("[sweep]\nbogus = 1\n", "unknown key(s) bogus"),
    ("budgets = [10.0]\n", "too small"),
    ("[sweep]\nrepeat_at = [0, 5]\n", "repeat_at a list of budget positions in -5..4"),
    ("[sweep]\nrepeat_at = 2\n", "repeat_at a list of budget positions"),
    ("[sweep]\nrepeat_smallest = 2\n", "repeat_smallest is now repeats (with repeat_at = [0]"),
    # numbers out of range or not finite: one line naming the section and key, before anything is planned or written
    ("budgets = [nan, 4e9]\n", "budgets and targets must be lists of positive finite numbers"),
    ("budgets = [inf]\n", "budgets and targets must be lists of positive finite numbers"),
    ("[sweep]\nsize_step = inf\n", "[sweep].size_step: must be a finite number, got inf"),
    ("[sweep]\ncount = 0\n", "[sweep].count: must be >= 1, got 0"),
    ("[train]\ngrad_clip = 0\n", "[train].grad_clip: must be > 0, got 0"),
    ("[train]\nfinal_lr_frac = 2\n", "[train].final_lr_frac: must be between 0 and 1, got 2"),
    ("[train]\nbeta2 = 1.0\n", "[train].beta2: must be in [0, 1), got 1.0"),
    ("[train]\ncheckpoint_seconds = nan\n", "[train].checkpoint_seconds: must be a finite number, got nan"),
    ("[train]\nthreads = 1.5\n", "[train].threads: expected a whole number, got 1.5"),
    ("[model]\nmlp_ratio = 0\n", "[model].mlp_ratio: must be >= 1, got 0"),
    ("[data]\nvocab_size = 1\n", "[data].vocab_size: must be >= 2, got 1"),
    # compile took any string: "of" passed, and "on" behaved like "auto"
    ("[train]\ncompile = \"of\"\n", "[train].compile: must be auto or on or off, got 'of'"),
    # the cluster section: checked before anything is submitted
    ("[launcher]\nkind = \"slurmm\"\n", "[launcher].kind: must be local or submitit or slurm, got 'slurmm'"),
    ("[launcher]\ntime_min = 0\n", "[launcher].time_min: must be >= 1, got 0"),
    ("[launcher]\narray = \"yes\"\n", "[launcher].array: expected true or false, got 'yes'"),
    ("[launcher]\nsbatch = {time = \"1:00:00\"}\n", "[launcher].sbatch: set 'time' through [launcher]'s own keys"),
    ("[launcher]\nsbatch = {\"no such\" = 1}\n", "[launcher].sbatch: 'no such' is not an sbatch option name"),
    ("[launcher]\nsbatch = {exclusive = false}\n", "[launcher].sbatch.exclusive: expected a string, a number or true"),
    ("[launcher]\nsetup = \"module load cuda\"\n", "[launcher].setup: expected a list of shell lines"),
    ("[launcher]\npartition = 3\n", "[launcher].partition: expected a string, got 3"),
])
def test_bad_configs(tmp_path, patch, needle):
    header = patch.split("\n", 1)[0] + "\n"
    if patch.startswith("[") and header not in TINY:  # a section TINY lacks
        text = TINY + patch
    else:
        text = TINY.replace(header, patch) if patch.startswith("[") else TINY.replace(
        "budgets = [2e9, 4e9, 8e9, 1.6e10, 3.2e10]\n", patch)
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(InputError, match="bad.toml") as e:
        plan(load_config(str(p)))
    assert needle in str(e.value)


def test_compile_on_means_on_on_every_device():
    from scalepredict.config import TrainConfig
    from scalepredict.train.trainer import compiles

    assert compiles(TrainConfig(compile="on"), "cpu") and compiles(TrainConfig(compile="on"), "cuda")
    assert not compiles(TrainConfig(compile="auto"), "cpu") and compiles(TrainConfig(compile="auto"), "cuda")
    assert not compiles(TrainConfig(compile="off"), "cuda")


@pytest.mark.parametrize("command", ["sweep", "probe"])
def test_out_naming_a_file_is_one_line_exit_2(tmp_path, command):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    (tmp_path / "afile").write_text("mine")
    r = CliRunner().invoke(cli, [command, "--config", str(cfg_path), "--out", str(tmp_path / "afile")])
    assert r.exit_code == 2 and r.stderr.strip() == f"scalepredict: error: {tmp_path / 'afile'}: is a file; --out " \
        f"names the folder of the {command}"
    assert (tmp_path / "afile").read_text() == "mine"


def test_corrupt_token_file(tmp_path):
    p = tmp_path / "data.bin"
    p.write_bytes(b"\x01\x02\x03")  # odd number of bytes: not uint16 tokens
    with pytest.raises(InputError, match="not a whole number of uint16 tokens"):
        token_corpus(p, 50257)


def test_interrupted_run_resumes_from_its_checkpoint_to_the_same_loss(tmp_path):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    cfg = load_config(str(cfg_path))
    cfg.train.checkpoint_seconds = 0.0  # checkpoint after every step
    spec = plan(cfg)[-1]
    corpus = synthetic_corpus(200_000)
    straight = train_run(spec, corpus, cfg.train, tmp_path / "a", "cpu", 2048)

    class Stop(Exception):
        pass

    def stop_at(step, loss):
        if step >= spec.steps // 2:
            raise Stop

    with pytest.raises(Stop):
        train_run(spec, corpus, cfg.train, tmp_path / "b", "cpu", 2048, progress=stop_at)
    assert (tmp_path / "b" / "state.pt").exists()
    resumed = train_run(spec, corpus, cfg.train, tmp_path / "b", "cpu", 2048)
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-5)
    assert not (tmp_path / "b" / "state.pt").exists()
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) + 1  # the final val line repeats the last step


def test_a_stop_signal_ends_a_run_on_a_step_boundary_with_an_exact_checkpoint(tmp_path):
    import os
    import signal

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    cfg = load_config(str(cfg_path))  # checkpoint_seconds stays 60: the stop itself must write the checkpoint
    spec = plan(cfg)[-1]
    corpus = synthetic_corpus(200_000)
    straight = train_run(spec, corpus, cfg.train, tmp_path / "a", "cpu", 2048)
    at = 5 * (spec.steps // 10)  # a multiple of log_interval (5): progress is called there

    def signal_at(step, loss):
        if step == at:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Stopped) as e, stop_at_step_boundary():
        train_run(spec, corpus, cfg.train, tmp_path / "b", "cpu", 2048, progress=signal_at)
    assert e.value.signum == signal.SIGTERM and f"step {at} of {spec.steps}" in str(e.value)
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN  # the context put the old handler back
    state = torch.load(tmp_path / "b" / "state.pt", weights_only=False)
    assert state["step"] == at
    resumed = train_run(spec, corpus, cfg.train, tmp_path / "b", "cpu", 2048)
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-5)
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) + 1


def _children(pid):
    """Process ids whose parent is `pid` (Linux /proc)."""
    import glob

    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.split("/")[2]))
    return kids


def _alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG")
def test_parallel_sweep_stopped_by_sigterm_or_killed_leaves_no_worker_and_resumes_every_run_once(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    cfg_path = tmp_path / "tiny.toml"
    # three budgets: nine runs and their bracketing, too few frontier points for the compute law, so the end step
    # fits and predicts with the N-D laws alone (a compute target then crashed `predict` with a ZeroDivisionError)
    cfg_path.write_text(FOUR_BUDGETS.replace(", 1.6e10]", "]"))
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "scalepredict", "sweep", "--config", str(cfg_path), "--out", str(out), "--jobs", "2"]

    def start_and_signal(sig):
        """Start the sweep, wait until its workers are training, send `sig` to the sweep process alone."""
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = {p for p in out.glob("runs/*/log.jsonl")}
        deadline = time.time() + 120
        while time.time() < deadline and not (set(out.glob("runs/*/log.jsonl")) - seen):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        workers = [k for k in _children(proc.pid) if "spawn_main" in open(f"/proc/{k}/cmdline").read()]
        assert len(workers) == 2
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline and any(_alive(k) for k in workers):
            time.sleep(0.05)
        assert not any(_alive(k) for k in workers), "a worker outlived the sweep process"
        return proc.returncode, err

    rc, err = start_and_signal(signal.SIGTERM)
    assert rc == 143 and "interrupted (SIGTERM)" in err and "rerun the same command" in err and "Traceback" not in err
    assert list(out.glob("runs/*/state.pt")), "the runs in progress saved no checkpoint"
    # status: the runs with a checkpoint are stopped at the step they logged, the rest planned or finished
    st = _status_json(out)
    by_state = {s: [r for r in st["runs"] if r["state"] == s] for s in st["counts"]}
    stopped = {r["run"] for r in by_state["stopped"]}
    assert stopped == {p.parent.name for p in out.glob("runs/*/state.pt")}
    runs_jsonl = out / "runs.jsonl"
    assert {r["run"] for r in by_state["finished"]} == ({json.loads(l)["run"] for l in runs_jsonl.read_text(
        ).splitlines() if l.strip()} if runs_jsonl.exists() else set())
    assert len(st["runs"]) == sum(st["counts"].values()) and by_state["planned"]
    # partial runs (a worker that had just opened its log when the signal came, on a loaded machine, saves at step 0)
    assert all(0 <= r["steps_done"] < r["steps"] for r in by_state["stopped"])
    assert st["compute_spent"] == pytest.approx(sum(r["compute"] for r in by_state["finished"]) + sum(
        r["compute"] * r["steps_done"] / r["steps"] for r in by_state["stopped"]))
    assert st["sweep_process"] is None  # nobody holds the folder
    rc, err = start_and_signal(signal.SIGKILL)  # no cleanup in the sweep process: the workers stop themselves
    assert rc == -signal.SIGKILL
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "the compute law cannot be fitted to the frontier" in r.stdout
    assert len(json.loads((out / "predictions.json").read_text())["predictions"]) == 1
    ids = [json.loads(l)["run"] for l in (out / "runs.jsonl").read_text().splitlines()]
    meta = json.loads((out / "sweep.json").read_text())
    planned = [sp.id for sp in plan(load_config(str(cfg_path)))] + [b["run"] for b in meta.get("bracket", [])]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(planned)
    assert not list(out.glob("runs/*/state.pt"))


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_a_second_sweep_on_a_folder_in_use_is_refused_and_writes_nothing(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY.replace("budgets = [2e9, 4e9, 8e9, 1.6e10, 3.2e10]", "budgets = [3.2e10]")
                        .replace("min_steps = 20\n", "min_steps = 20\nbracket = 0\n"))
    out = tmp_path / "sweep"
    cmd = ["sweep", "--config", str(cfg_path), "--out", str(out), "--jobs", "1"]
    first = subprocess.Popen([sys.executable, "-m", "scalepredict", *cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("runs/*/log.jsonl")):
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix != ".jsonl"}
    r = CliRunner().invoke(cli, cmd)  # two sweeps in one folder would append every record twice
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "another scalepredict process is working in this folder" in r.stderr and f"pid {first.pid}" in r.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix != ".jsonl"} == before
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 143
    r = CliRunner().invoke(cli, cmd)  # the lock went with its holder (one budget: the compute law cannot be fitted,
    # and the end step falls back to the law average of every run, or says why it cannot)
    assert "another scalepredict process" not in r.stderr and "compute law cannot be fitted" in r.output + r.stderr
    ids = [json.loads(l)["run"] for l in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(sp.id for sp in plan(load_config(str(cfg_path))))


def test_a_run_folder_in_use_is_refused_by_a_second_trainer(tmp_path):
    import os

    from scalepredict.files import folder_lock

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    cfg = load_config(str(cfg_path))
    spec = plan(cfg)[0]
    run_dir = tmp_path / "runs" / spec.id
    run_dir.mkdir(parents=True)
    with folder_lock(run_dir):  # as a SLURM job still training this run would hold it
        with pytest.raises(InputError, match=rf"another scalepredict process is working .* \(pid {os.getpid()} on "):
            train_run(spec, synthetic_corpus(200_000), cfg.train, run_dir, "cpu", 2048)
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written
    rec = train_run(spec, synthetic_corpus(200_000), cfg.train, run_dir, "cpu", 2048)
    assert rec["status"] == "ok"


@pytest.fixture(scope="module")
def four_budget_sweep(tmp_path_factory):
    """A four-budget sweep trained in turn in this process (bracketing included), stopped by a Ctrl-C as its fourth
    run starts and finished by a second `sweep`: test_sweep_end_to_end_resume_and_foreign_directory checks that
    story, and the tests that need a finished sweep copy it instead of training one again."""
    from scalepredict.train import trainer

    tmp = tmp_path_factory.mktemp("four")
    cfg_path = tmp / "tiny.toml"
    cfg_path.write_text(FOUR_BUDGETS)
    out = tmp / "sweep"
    calls = []
    original = trainer.train_run

    def flaky(spec, *a, **k):
        calls.append(spec.id)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(spec, *a, **k)

    cmd = ["sweep", "--config", str(cfg_path), "--out", str(out), "--jobs", "1", "--device", "cpu"]
    with pytest.MonkeyPatch.context() as mp:  # in this process: the sequential path (--jobs 1)
        mp.setattr(trainer, "train_run", flaky)
        stopped = CliRunner().invoke(cli, cmd)
    first = [json.loads(l)["run"] for l in (out / "runs.jsonl").read_text().splitlines()]
    resumed = CliRunner().invoke(cli, cmd)
    assert resumed.exit_code == 0, resumed.output
    return SimpleNamespace(cfg=cfg_path, out=out, calls=calls, stopped=stopped, first=first, resumed=resumed)


def test_sweep_end_to_end_resume_and_foreign_directory(tmp_path, four_budget_sweep):
    sw = four_budget_sweep
    out = sw.out
    assert sw.stopped.exit_code == 130
    assert sw.first == sw.calls[:3]
    runs = [json.loads(l) for l in (out / "runs.jsonl").read_text().splitlines()]
    ids = [x["run"] for x in runs]
    meta = json.loads((out / "sweep.json").read_text())
    planned = [sp.id for sp in plan(load_config(str(sw.cfg)))]
    added = [b["run"] for b in meta.get("bracket", [])]  # sets whose best run was at an edge got a size beyond it
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(planned + added)
    assert ids[:3] == sw.first
    for name in ("sweep.json", "fit.json", "predictions.json", "prediction.png", "report.md"):
        assert (out / name).exists(), name
    assert "resuming" in sw.resumed.output
    preds = json.loads((out / "predictions.json").read_text())["predictions"]
    assert preds[0]["compute"] == 3.2e11 and preds[0]["lower"] < preds[0]["loss"] < preds[0]["upper"]
    assert len(meta["data"]["fingerprint"]) == 64 and meta["versions"]["torch"] == torch.__version__
    # a different config on the same folder is refused, and nothing is lost
    other = tmp_path / "other.toml"
    other.write_text(FOUR_BUDGETS.replace("lr = 1e-2", "lr = 2e-2"))
    def results():  # every file of the sweep but its lock, which names its last holder
        return {p: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}

    before = results()
    r = CliRunner().invoke(cli, ["sweep", "--config", str(other), "--out", str(out)])
    assert r.exit_code == 2 and "different config" in r.stderr
    assert [json.loads(l)["run"] for l in (out / "runs.jsonl").read_text().splitlines()] == ids
    assert results() == before


def test_bracketing_adds_the_next_size_beyond_an_edge_minimum(tmp_path):
    from scalepredict.plan import bracket_next

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    cfg = load_config(str(cfg_path))
    specs = plan(cfg)
    planned = {sp.id for sp in specs}
    # b0: the smallest size (L1d8, the rule's smallest shape) is best: nothing smaller to add.
    # b1: the middle size is best: bracketed. b2: the largest (L2d24) is best: add the next size up.
    # b3: the largest is best but one run has not finished: wait. b4: the largest diverged, the middle is best.
    loss = {"b0-L1d8-s0": 2.0, "b0-L1d8-s1": 2.1, "b0-L1d16-s0": 2.2, "b0-L2d24-s0": 2.3,
            "b1-L1d8-s0": 2.0, "b1-L1d16-s0": 1.9, "b1-L2d16-s0": 2.1,
            "b2-L1d8-s0": 2.0, "b2-L1d16-s0": 1.9, "b2-L2d24-s0": 1.8,
            "b3-L1d16-s0": 1.9, "b3-L2d16-s0": 1.8,
            "b4-L1d16-s0": 1.9, "b4-L2d24-s0": 1.7, "b4-L2d32-s0": float("nan")}
    done = {k: {"run": k, "loss": v, "status": "diverged" if k == "b4-L2d32-s0" else "ok"} for k, v in loss.items()}
    (new,) = bracket_next(cfg, specs, planned, done)
    # next size up from L2d24 (20,088 params): the shape rule at 2x gives 3 layers, d_model 32: 3*12*32^2 = 36,864
    # matmul + 7*32 norm + 32*256 head = 45,280 params; 3 * (2*36,864 + 2*32*256 + 4*3*32*32) = 307,200 FLOPs per
    # token, 8 x 32 tokens a step: 8e9 FLOPs buy 101 steps
    assert new.id == "b2-L3d32-s0" and new.shape.params == 45_280 and new.shape.train_flops_per_token == 307_200
    assert new.steps == 101 and new.tokens == 101 * 8 * 32 and new.budget == 8e9
    # its result decides the next pass: still best at the top adds one more, up to [sweep] bracket = 2 per budget
    done[new.id] = {"run": new.id, "loss": 1.7, "status": "ok"}
    (again,) = bracket_next(cfg, specs + [new], planned, done)
    assert again.budget == 8e9 and again.shape.params > new.shape.params
    done[again.id] = {"run": again.id, "loss": 1.6, "status": "ok"}
    assert bracket_next(cfg, specs + [new, again], planned, done) == []
    # bracket = 0 turns it off
    assert bracket_next(replace(cfg, sweep=replace(cfg.sweep, bracket=0)), specs, planned, done) == []


def test_finished_runs_whose_records_never_reached_the_table_are_recovered_not_retrained(tmp_path, monkeypatch,
                                                                                         four_budget_sweep):
    import shutil

    cfg_path, out = four_budget_sweep.cfg, tmp_path / "sweep"
    shutil.copytree(four_budget_sweep.out, out)
    lines = (out / "runs.jsonl").read_text().splitlines(keepends=True)
    (out / "runs.jsonl").write_text("".join(lines[:-2]))  # the sweep died after two runs finished, before appending
    added = {b["run"] for b in json.loads((out / "sweep.json").read_text())["bracket"]}
    assert any(json.loads(l)["run"] in added for l in lines[-2:])  # a bracketing run is recovered too
    from scalepredict.train import trainer

    def must_not_train(spec, *a, **k):
        raise AssertionError(f"{spec.id} trained again")

    monkeypatch.setattr(trainer, "train_run", must_not_train)
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--out", str(out), "--jobs", "1"])
    assert r.exit_code == 0, r.output
    # recovered before the planned runs, or before a bracketing pass (the two are read as each is planned)
    assert sum(int(n) for n in re.findall(r"recovered (\d+) finished run", r.output)) == 2, r.output
    assert sorted((out / "runs.jsonl").read_text().splitlines()) == sorted(l.rstrip("\n") for l in lines)


def test_submitit_launcher_trains_every_run_once_in_local_jobs(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(FOUR_BUDGETS.replace("sizes_per_budget = 3", "sizes_per_budget = 1"))
    out = tmp_path / "sweep"
    monkeypatch.setattr("scalepredict.train.launch.has_slurm", lambda: False)  # as on a machine without SLURM
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--out", str(out), "--launcher", "submitit",
                                 "--device", "cpu"])  # submitit runs each job as a local process
    assert r.exit_code == 0, r.output
    assert "submitted" in r.output and (out / "slurm").is_dir()
    recs = [json.loads(l) for l in (out / "runs.jsonl").read_text().splitlines()]
    specs = {s.id: s for s in plan(load_config(str(cfg_path)))}
    assert sorted(r["run"] for r in recs) == sorted(specs)
    for rec in recs:  # each finished job gets the same line as a local run: size, tokens, loss, seconds
        sp = specs[rec["run"]]
        assert (f"{sp.id}: {sp.shape.params:,} params, {sp.tokens:,} tokens, loss {rec['loss']:.4f}, "
                f"{rec['wall_seconds']:.1f}s") in r.output
    assert (out / "fit.json").exists()


@pytest.mark.parametrize("data, needle", [
    ('source = "text"\npath = "no/such/dir"\n', "data path does not exist"),
    ('source = "tokens"\npath = "BIN"\nvocab_size = 50257\n', "not a whole number of uint16 tokens"),
    ('source = "tokens"\npath = "BIN"\n', "needs data.vocab_size"),
])
def test_sweep_bad_data_is_one_line_exit_2_and_writes_nothing(tmp_path, data, needle):
    (tmp_path / "odd.bin").write_bytes(b"\x01\x02\x03")
    cfg_path = tmp_path / "bad.toml"
    cfg_path.write_text(TINY.replace('source = "synthetic"\nsize = 200000\n',
                                     data.replace("BIN", str(tmp_path / "odd.bin"))))
    out = tmp_path / "sweep"
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--out", str(out)])
    assert r.exit_code == 2 and needle in r.stderr and "Traceback" not in r.output, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_min_layers_keeps_every_shape_at_least_that_deep():
    from scalepredict.config import ModelConfig
    from scalepredict.plan import shape_for

    shallow = shape_for(8000, 256, ModelConfig(seq_len=64, aspect=16, head_dim=16))
    deep = shape_for(8000, 256, ModelConfig(seq_len=64, aspect=16, head_dim=16, min_layers=2))
    assert shallow.n_layer == 1 and (deep.n_layer, deep.d_model) == (2, 16)


def test_monotone_shape_rule_never_shrinks_depth_or_width_as_the_target_grows():
    from scalepredict.config import ModelConfig
    from scalepredict.plan import shape_for

    m = ModelConfig(seq_len=64, aspect=32, head_dim=16, shape_rule="monotone")
    shapes = [shape_for(t, 256, m) for t in np.geomspace(5e3, 3e7, 300)]
    for a, b in zip(shapes, shapes[1:]):
        assert b.n_layer > a.n_layer or (b.n_layer == a.n_layer and b.d_model >= a.d_model)
    # by hand: (48,840 / (12 * 32^2))^(1/3) = 1.58 -> 2 layers; at d_model 40 the non-embedding count is
    # 12*2*40^2 (blocks) + 5*40 (norm gains) + 40*256 (head) = 38,400 + 200 + 10,240 = 48,840
    s = shape_for(48_840, 256, m)
    assert (s.n_layer, s.d_model, s.params) == (2, 40, 48_840)
    assert shape_for(1e6, 256, m).n_layer == round((1e6 / (12 * 32**2)) ** (1 / 3))
    # the closest rule, for comparison, goes back from 2 layers to 1 as the target grows here
    closest = [shape_for(t, 256, ModelConfig(seq_len=64, aspect=32, head_dim=16)) for t in (33_000, 52_000)]
    assert [c.n_layer for c in closest] == [2, 1]


def test_repeats_go_on_the_compute_optimal_guess_of_each_repeat_at_budget(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text(TINY.replace("repeats = 1\n", "repeats = 2\nrepeat_at = [0, 2, -3]\n"))  # -3 is 2 again: once
    cfg = load_config(str(p))
    specs = plan(cfg)
    q = tmp_path / "single.toml"
    q.write_text(TINY.replace("repeats = 1\n", "repeats = 0\n"))
    single = plan(load_config(str(q)))
    extra = [s for s in specs if s.seed != 0]
    assert len(specs) == len(single) + 4 and [s.seed for s in extra] == [1, 2, 1, 2]
    for b in (2e9, 8e9):
        guess = compute_optimal_run(cfg, [s for s in single if s.budget == b])
        reps = [s for s in extra if s.budget == b]
        assert [s.shape for s in reps] == [guess.shape] * 2 and [s.steps for s in reps] == [guess.steps] * 2
        assert [s.id for s in reps] == [guess.id[:-1] + "1", guess.id[:-1] + "2"]
        at = [s.id for s in specs].index(guess.id)
        assert [s.id for s in specs[at + 1:at + 3]] == [s.id for s in reps]  # right after the run they repeat


def test_a_renamed_setting_keeps_the_digest_so_older_sweeps_resume(tmp_path):
    # sweeps made when `repeats` was `repeat_smallest` hashed it under that name
    import hashlib
    import json

    p = tmp_path / "c.toml"
    p.write_text(TINY)
    cfg = load_config(str(p))
    d = cfg.as_dict()
    d.pop("launcher")  # where the runs train is not part of the digest
    other = tmp_path / "d.toml"
    other.write_text(TINY + '[launcher]\nkind = "slurm"\npartition = "gpu"\ntime_min = 30\n')
    assert load_config(str(other)).digest() == cfg.digest()  # a sweep resumes on another partition
    for name in ("data", "model", "sweep", "train"):
        default = asdict(type(getattr(cfg, name))())
        d[name] = {k: v for k, v in d[name].items() if default.get(k, object()) != v}
    d["sweep"]["repeat_smallest"] = d["sweep"].pop("repeats")
    assert cfg.digest() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def test_config_digest_ignores_settings_left_at_their_default(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(TINY)
    plain = load_config(str(p))
    p.write_text(TINY.replace("[model]\n", "[model]\nmin_layers = 1\n"))
    assert load_config(str(p)).digest() == plain.digest()
    p.write_text(TINY.replace("[model]\n", "[model]\nmin_layers = 2\n"))
    assert load_config(str(p)).digest() != plain.digest()


def test_parallel_cpu_sweep_trains_every_run_once_to_the_same_losses(tmp_path, four_budget_sweep):
    seq_out = four_budget_sweep.out
    cfg_path = tmp_path / "tiny.toml"
    # no bracketing: losses differ by ~0.5% between the two, which may flip a near tie at a set's edge
    cfg_path.write_text(FOUR_BUDGETS.replace("min_steps = 20\n", "min_steps = 20\nbracket = 0\n"))
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--out", str(tmp_path / "par"), "--device", "cpu",
                                 "--jobs", "2"])
    assert r.exit_code == 0, r.output
    progress = [line for line in r.output.splitlines() if line.startswith("[")]  # no terminal: a line per run
    assert progress and all(" ETA " in line for line in progress)
    seq = {x["run"]: x for x in map(json.loads, (seq_out / "runs.jsonl").read_text().splitlines())}
    par = [json.loads(x) for x in (tmp_path / "par" / "runs.jsonl").read_text().splitlines()]
    assert sorted(x["run"] for x in par) == sorted(sp.id for sp in plan(load_config(str(cfg_path))))  # once each
    for x in par:
        assert (x["params"], x["tokens"], x["steps_done"]) == (seq[x["run"]]["params"], seq[x["run"]]["tokens"],
                                                             seq[x["run"]]["steps_done"])
        # one thread instead of two changes the order of float sums, and a trajectory drifts from there (~0.5%)
        assert x["loss"] == pytest.approx(seq[x["run"]]["loss"], rel=2e-2)
    assert (tmp_path / "par" / "fit.json").exists()


def test_progress_of_a_run_in_another_process_is_read_from_its_log(tmp_path):
    from scalepredict.train.progress import steps_logged

    assert steps_logged(tmp_path) == 0  # no log yet
    lines = [json.dumps({"step": k, "tokens": k * 256, "train_loss": 2.5, "lr": 1e-3}) for k in range(10, 510, 10)]
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + '\n{"step": 51')  # the last line half written
    assert steps_logged(tmp_path) == 500


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sweeps_without_a_terminal_say_how_far_the_runs_in_progress_are(tmp_path, monkeypatch, jobs):
    from scalepredict.train import local

    monkeypatch.setattr(local, "PROGRESS_EVERY", 0.0)  # every chance, instead of every 5 minutes
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY.replace("budgets = [2e9, 4e9, 8e9, 1.6e10, 3.2e10]", "budgets = [4e9, 8e9]")
                        .replace("min_steps = 20\n", "min_steps = 20\nbracket = 0\n"))
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--out", str(tmp_path / "s"), "--jobs", jobs])
    ids = {sp.id for sp in plan(load_config(str(cfg_path)))}  # two budgets train fast but are too few to fit
    assert {json.loads(x)["run"] for x in (tmp_path / "s" / "runs.jsonl").read_text().splitlines()} == ids, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("  in progress: ")]
    assert lines and all(" elapsed, ETA " in line for line in lines)
    named = [re.findall(r"b\d+-L\d+d\d+-s\d+", line) for line in lines]
    assert all(n and set(n) <= ids for n in named)  # each names planned runs, with how far they are
    assert all(re.search(r"\d+%", line) for line in lines)


def test_jobs_auto_is_one_run_per_core_on_cpu_only(monkeypatch, tmp_path):
    from scalepredict.train.devices import auto_jobs

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    cfg = load_config(str(cfg_path))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert auto_jobs(cfg, "cpu") == 2
    assert auto_jobs(cfg, "cuda") == 1
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert auto_jobs(cfg, "cpu") == 8
    cfg_path.write_text(TINY.replace("[train]\n", "[train]\nthreads = 2\n"))
    assert auto_jobs(load_config(str(cfg_path)), "cpu") == 1


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_jobs_value_is_one_line_exit_2(tmp_path, value):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--out", str(tmp_path / "o"), "--jobs", value])
    assert r.exit_code == 2
    assert f"--jobs must be a positive integer or auto, got {value!r}" in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, min_budgets, min_span", [("cpu-demo", 5, 30), ("gpu-ladder", 6, 1000),
                                                         ("cpu-validate", 5, 100), ("cpu-validate-deep", 5, 100)])
def test_packaged_configs_plan_the_ladders_they_promise(name, min_budgets, min_span):
    cfg = load_config(name)
    specs = plan(cfg)
    budgets = sorted({s.budget for s in specs})
    assert len(budgets) >= min_budgets and budgets[-1] / budgets[0] >= min_span * (1 - 1e-9)
    upper_half = 1.2 * (budgets[0] * budgets[-1]) ** 0.5
    for b in budgets:  # a full IsoFLOP set in the upper half; the smallest budgets may have fewer sizes that fit
        assert len({s.shape for s in specs if s.budget == b}) >= (3 if b > upper_half else 2)
    assert all(abs(s.compute / s.budget - 1) < 0.05 for s in specs)  # steps fill each budget


def test_isoflop_set_below_the_smallest_model_is_topped_up_with_larger_sizes(tmp_path):
    # at 4e10 FLOPs cpu-demo's centre (8,165 params at 100 tokens/param) and the size below it both map to the
    # smallest shape (1 layer, d_model 16: 12*16^2 + 3*16 norm + 16*256 head = 7,216 params), so the set takes the
    # next sizes up instead of training two models
    p = tmp_path / "one.toml"
    p.write_text('name = "one"\n[data]\nval_tokens = 32768\n[model]\nseq_len = 64\naspect = 32\nhead_dim = 16\n'
                 '[sweep]\nbudgets = [4e10]\nsizes_per_budget = 3\ntokens_per_param = 100\nrepeats = 0\n'
                 '[train]\nbatch_size = 16\n')
    specs = plan(load_config(str(p)))
    assert [(s.shape.n_layer, s.shape.d_model, s.shape.params) for s in specs] == [
        (1, 16, 7_216), (1, 32, 12 * 32**2 + 3 * 32 + 32 * 256), (2, 32, 2 * 12 * 32**2 + 5 * 32 + 32 * 256)]
    # repeated seeds go on the compute-optimal guess (the likely frontier model), not on the set's middle size
    p.write_text(p.read_text().replace("repeats = 0", "repeats = 2"))
    assert [s.id for s in plan(load_config(str(p)))] == [
        "b0-L1d16-s0", "b0-L1d16-s1", "b0-L1d16-s2", "b0-L1d32-s0", "b0-L2d32-s0"]


def test_gpu_ladder_widths_are_whole_64_wide_heads_and_bad_width_multiple_fails(tmp_path):
    specs = plan(load_config("gpu-ladder"))
    assert all(s.shape.d_model % 64 == 0 and s.shape.n_head * 64 == s.shape.d_model for s in specs)
    p = tmp_path / "w.toml"
    p.write_text(TINY.replace("head_dim = 8\n", "head_dim = 8\nwidth_multiple = 12\n"))
    with pytest.raises(InputError, match=r"w.toml: \[model\].width_multiple: must be a positive multiple of 8, got 12"):
        load_config(str(p))


def test_runs_that_repeat_the_data_more_than_four_times_are_warned_about(tmp_path):
    from scalepredict.train.dryrun import repetition_warning

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    specs = plan(load_config(str(cfg_path)))
    worst = max(specs, key=lambda s: s.tokens)
    corpus = synthetic_corpus(200_000)
    assert repetition_warning(specs, corpus) is None  # TINY's longest run is well under 4 passes
    small = replace(corpus, train=corpus.train[: worst.tokens // 5])  # now 5 passes for the longest run
    n = sum(1 for s in specs if s.tokens > 4 * len(small.train))
    assert repetition_warning(specs, small).startswith(
        f"warning: {n} of {len(specs)} runs repeat the training data more than 4 times ({worst.id}: 5.0 epochs")


def test_dry_run_prints_every_planned_run_and_writes_nothing(tmp_path):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    out = tmp_path / "o"
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--out", str(out), "--dry-run", "--device", "cpu",
                                 "--jobs", "2"])
    assert r.exit_code == 0, r.output
    specs = plan(load_config(str(cfg_path)))
    for s in specs:
        assert s.id in r.output and f"{s.tokens:,}" in r.output
    total = [line for line in r.output.splitlines() if line.startswith("total ")]
    assert total and f"{sum(s.compute for s in specs):.3g} FLOPs" in total[0] and "with 2 runs at once" in total[0]
    assert not out.exists()


def test_cuda_workers_each_get_a_gpu_of_their_own():
    """--jobs on CUDA: one worker per visible GPU, each seeing only its own (as cuda:0); checked here with the real
    spawn workers and queue, without a GPU."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    from scalepredict.train.devices import gpu_queue, pin_gpu, visible_gpus

    assert visible_gpus("0,1,2,3") == ["0", "1", "2", "3"]
    assert visible_gpus("2,3") == ["2", "3"]  # a job given GPUs 2 and 3 by its scheduler
    assert visible_gpus("GPU-8f2a,GPU-11c0") == ["GPU-8f2a", "GPU-11c0"]
    assert visible_gpus("") == [] and visible_gpus("-1") == []
    assert visible_gpus("0,1,-1,3") == ["0", "1"]  # CUDA ignores every entry after an invalid one
    assert visible_gpus(None, count=2) == ["0", "1"] or os.environ.get("CUDA_VISIBLE_DEVICES") is not None

    q = gpu_queue(["3", "5"])
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"), initializer=pin_gpu, initargs=(q,)) as ex:
        seen = set()
        for _ in range(20):  # many tasks: each lands on one of the two workers, which keep their GPU
            seen |= set(ex.map(_visible_devices_and_pid, range(4)))
    gpus = {g for g, _ in seen}
    pids = {p for _, p in seen}
    assert gpus <= {"3", "5"} and len(pids) == 2
    assert len({(g, p) for g, p in seen}) == len(pids)  # a worker never changes GPU


def _visible_devices_and_pid(_):
    import os
    import time

    time.sleep(0.01)
    return os.environ["CUDA_VISIBLE_DEVICES"], os.getpid()


def test_lock_holder_names_the_process_working_in_a_folder(tmp_path):
    import os

    from scalepredict.files import folder_lock, lock_holder

    assert lock_holder(tmp_path) is None
    with folder_lock(tmp_path):
        assert f"pid {os.getpid()} on " in lock_holder(tmp_path)  # what `status` shows of a sweep at work
    assert lock_holder(tmp_path) is None  # released with its holder


def test_the_lean_optimizer_steps_exactly_as_torchs_adamw_with_clipping():
    """train/optim.AdamW calls torch's fused AdamW kernel without its Python wrapper (issue 29's first lever): the
    parameters after 30 clipped steps at a moving LR are bit for bit those of torch.optim.AdamW(fused=True) after
    clip_grad_norm_(foreach=True), so every recipe number stays where it was."""
    from scalepredict.train.optim import AdamW

    torch.set_num_threads(1)
    shape = Shape(2, 32, 2, 256, 64)
    data = torch.from_numpy(np.random.default_rng(0).integers(0, 256, 1 << 16).astype(np.int64))
    torch.manual_seed(0)
    a = GPT(shape)
    torch.manual_seed(0)
    b = GPT(shape)
    decay = [p for p in a.parameters() if p.dim() >= 2]
    flat = [p for p in a.parameters() if p.dim() < 2]
    ref = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": flat, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.99), eps=1e-8, fused=True)
    lean = AdamW(b, 3e-3, (0.9, 0.99), 0.1)
    for i in range(30):
        idx = torch.randint(0, len(data) - 65, (8,), generator=torch.Generator().manual_seed(i))
        w = data[idx[:, None] + torch.arange(65)]
        lr = 3e-3 * (1 - i / 40)
        ref.zero_grad(set_to_none=True)
        a(w[:, :-1], w[:, 1:]).backward()
        torch.nn.utils.clip_grad_norm_(a.parameters(), 0.5, foreach=True)
        for g in ref.param_groups:
            g["lr"] = lr
        ref.step()
        lean.zero_grad()
        b(w[:, :-1], w[:, 1:]).backward()
        lean.lr = lr
        lean.step(0.5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    state = lean.state_dict()
    again = AdamW(b, 1e-3, (0.9, 0.99), 0.1)
    again.load_state_dict(state)
    assert again.lr == lr and all(torch.equal(x, y) for x, y in zip(again.exp_avg, lean.exp_avg))
