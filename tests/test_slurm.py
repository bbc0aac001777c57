"""Sweeps on a real SLURM scheduler: the single-node cluster tests/slurm/start.sh starts (CI runs it first).

Where no cluster answers, every test here skips with the reason; CI sets SCALEPREDICT_REQUIRE_SLURM=1 once the
cluster is up, and a missing cluster then fails them instead.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("submitit")

from click.testing import CliRunner  # noqa: E402

from scalepredict.cli import cli  # noqa: E402
from scalepredict.config import load_config  # noqa: E402
from scalepredict.plan import plan  # noqa: E402
from scalepredict.train.data import load_corpus  # noqa: E402
from scalepredict.train.trainer import train_run  # noqa: E402

from .conftest import TINY  # noqa: E402

# the tiny ladder as SLURM jobs: one size per budget, no repeats or bracketing, one thread per run (bit-reproducible
# losses), one CPU per job, the queue looked at every second
CONFIG = (TINY.replace('name = "tiny"', 'name = "slurm-tiny"')
          .replace("budgets = [2e9, 4e9, 8e9, 1.6e10, 3.2e10]", "budgets = BUDGETS")
          .replace("sizes_per_budget = 3", "sizes_per_budget = 1").replace("repeats = 1", "repeats = 0")
          .replace("min_steps = 20\n", "min_steps = 20\nbracket = 0\n")
          .replace("log_interval = 5\n", "log_interval = 5\nthreads = 1\n")
          + '[launcher]\nkind = "slurm"\ncpus_per_run = 1\ntime_min = 10\npoll_seconds = 1\nEXTRA\n')

SMALL = "[2e9, 4e9, 8e9, 1.6e10]"  # four runs of about a second each
LONG = "[2e9, 4e9, 6e10]"  # the last run trains ~5 s: long enough to stop it mid-way


def _status_json(out):
    r = CliRunner().invoke(cli, ["status", str(out), "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    return json.loads(r.output)


def _cluster_reason() -> str | None:
    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        return "no SLURM client commands (tests/slurm/start.sh installs and starts a one-node cluster)"
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if p.returncode or not re.search(r"^(idle|mixed|allocated)", p.stdout, re.M):
        return f"no SLURM node up (sinfo: {(p.stderr or p.stdout).strip()[:200] or 'nothing'}); run tests/slurm/start.sh"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = _cluster_reason()
    if reason:
        if os.environ.get("SCALEPREDICT_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM required (SCALEPREDICT_REQUIRE_SLURM=1): {reason}")
        pytest.skip(reason)


def _config(path: Path, budgets=SMALL, extra="") -> Path:
    path.write_text(CONFIG.replace("BUDGETS", budgets).replace("EXTRA", extra))
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def _sweep_cmd(cfg: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "scalepredict", "sweep", "--config", str(cfg), "--out", str(out), "--device", "cpu"]


def _wait_for(cond, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _logged(run_dir: Path) -> int:
    p = run_dir / "log.jsonl"
    return len(p.read_text().splitlines()) if p.exists() else 0


@pytest.fixture(scope="module")
def slurm_sweep(cluster, tmp_path_factory):
    """A whole sweep through SLURM: four runs, one job each."""
    tmp = tmp_path_factory.mktemp("slurm")
    cfg, out = _config(tmp / "tiny.toml"), tmp / "sweep"
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg), "--out", str(out), "--device", "cpu"])
    return cfg, out, r


def test_slurm_sweep_trains_every_run_exactly_once_and_fits_like_a_local_sweep(slurm_sweep, tmp_path):
    cfg, out, r = slurm_sweep
    assert r.exit_code == 0, r.output
    assert "submitted 4 job(s) to SLURM" in r.output
    ids = sorted(s.id for s in plan(load_config(str(cfg))))
    recs = _lines(out / "runs.jsonl")
    assert sorted(rec["run"] for rec in recs) == ids  # every planned run, once
    jobs = _lines(out / "slurm" / "jobs.jsonl")
    assert sorted(j["run"] for j in jobs) == ids and len({j["job"] for j in jobs}) == 4  # one job per run
    for j in jobs:  # each ran in its own SLURM job: submitit's log names the job id
        assert Path(j["log"]).exists()
    # the same sweep on this machine: the same losses, bit for bit (one thread each), and the same fit
    local = tmp_path / "local"
    r2 = CliRunner().invoke(cli, ["sweep", "--config", str(cfg), "--out", str(local), "--device", "cpu",
                                  "--launcher", "local", "--jobs", "2"])
    assert r2.exit_code == 0, r2.output
    assert {x["run"]: x["loss"] for x in recs} == {x["run"]: x["loss"] for x in _lines(local / "runs.jsonl")}
    fit_s, fit_l = (json.loads((d / "fit.json").read_text()) for d in (out, local))
    assert fit_s["params"] == fit_l["params"]
    # status: every run finished with its job, the whole plan's compute spent
    st = _status_json(out)
    assert st["counts"]["finished"] == 4 and st["slurm_jobs"] == 4
    assert all(row["job_state"] == "COMPLETED" for row in st["runs"])
    assert st["compute_spent"] == pytest.approx(st["compute_planned"])


def test_scheduler_failures_are_one_line_exit_2_and_a_rerun_finishes(slurm_sweep, tmp_path):
    cfg, done_out, r = slurm_sweep
    assert r.exit_code == 0, r.output
    # a folder where two of the four runs finished
    out = tmp_path / "sweep"
    out.mkdir()
    shutil.copy(done_out / "sweep.json", out / "sweep.json")
    kept = _lines(done_out / "runs.jsonl")[:2]
    (out / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in kept))
    before = (out / "runs.jsonl").read_bytes()

    # an unknown partition: sbatch refuses the jobs
    bad = _config(tmp_path / "bad.toml", extra='partition = "no-such-partition"')
    r = CliRunner().invoke(cli, ["sweep", "--config", str(bad), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert "sbatch refused the jobs" in r.stderr and "invalid partition" in r.stderr.lower()
    assert (out / "runs.jsonl").read_bytes() == before

    # the controller cannot be reached (a login node whose slurmctld is down): a config pointing at a dead port
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    text = re.sub(r"(?m)^SlurmctldPort=.*\n", "", conf.read_text())
    dead = tmp_path / "slurm.conf"
    dead.write_text(text + "SlurmctldPort=9\n")
    env = {**os.environ, "SLURM_CONF": str(dead)}
    p = subprocess.run(_sweep_cmd(cfg, out), capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "Unable to contact slurm controller" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert (out / "runs.jsonl").read_bytes() == before

    # with the scheduler back, the rerun trains the two runs left, and only those: as one job array this time (the
    # [launcher] section is not part of the config's digest, so the sweep resumes under another launcher setting)
    arr = _config(tmp_path / "array.toml", extra="array = true\nmax_parallel = 2")
    r = CliRunner().invoke(cli, ["sweep", "--config", str(arr), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "2 of 4 runs finished, 2 to go" in r.output and "submitted 2 job(s)" in r.output
    recs = _lines(out / "runs.jsonl")
    assert sorted(x["run"] for x in recs) == sorted(x["run"] for x in _lines(done_out / "runs.jsonl"))
    jobs = _lines(out / "slurm" / "jobs.jsonl")
    assert len(jobs) == 2 and len({j["job"].split("_")[0] for j in jobs}) == 1  # two tasks of one array
    assert all(re.fullmatch(r"\d+_\d", j["job"]) for j in jobs)


def test_cancelled_and_requeued_jobs_resume_from_their_checkpoints(cluster, tmp_path):
    cfg = _config(tmp_path / "long.toml", LONG)
    out = tmp_path / "sweep"
    spec = max(plan(load_config(str(cfg))), key=lambda s: s.compute)
    run_dir = out / "runs" / spec.id

    def job_of(run):
        rows = [j for j in _lines(out / "slurm" / "jobs.jsonl") if j["run"] == run] if (
            out / "slurm" / "jobs.jsonl").exists() else []
        return rows[-1]["job"] if rows else None

    # scancel mid-run: SIGTERM, a checkpoint at the next step, the sweep names the job and its log, exit 2
    proc = subprocess.Popen(_sweep_cmd(cfg, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _logged(run_dir) >= 20, 120, f"{spec.id} to log 100 steps")
    job = job_of(spec.id)
    subprocess.run(["scancel", job], check=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert f"{spec.id} (job {job}: cancelled" in err and f"{job}_0_log.err" in err
    stopped_at = json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])["step"]
    assert 0 < stopped_at < spec.steps and (run_dir / "state.pt").exists()
    st = _status_json(out)
    row = next(x for x in st["runs"] if x["run"] == spec.id)
    assert row["state"] == "stopped" and row["steps_done"] == stopped_at and row["job_state"] == "CANCELLED"

    # resubmitted by a rerun; requeued mid-way (`scontrol requeue`): the job starts again and resumes
    proc = subprocess.Popen(_sweep_cmd(cfg, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: job_of(spec.id) != job, 60, "the resubmitted job")
    job2 = job_of(spec.id)
    _wait_for(lambda: _logged(run_dir) >= stopped_at // 5 + 20, 120, "the resumed run to log 100 more steps")
    # SIGUSR2, as SLURM sends it signal_delay_s before the time limit: checkpoint, then the job requeues itself
    subprocess.run(["scancel", "--signal=USR2", job2], check=True)

    def state():
        return subprocess.run(["squeue", "-h", "-j", job2, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    _wait_for(lambda: state() == "PENDING", 60, "the job to requeue itself")
    at_usr2 = _logged(run_dir)
    _wait_for(lambda: _logged(run_dir) >= at_usr2 + 20, 120, "the requeued job to resume")
    # an external requeue (`scontrol requeue`, as after a pre-emption): SIGTERM, checkpoint, requeued, resumed
    subprocess.run(["scontrol", "requeue", job2], check=True)
    outp, err = proc.communicate(timeout=300)  # the test cluster starts a requeued job again after 11 s
    log = Path(_lines(out / "slurm" / "jobs.jsonl")[-1]["log"]).read_text()
    assert f"requeue {job2}: done" in log and log.count("checkpoint saved") == 2
    assert proc.returncode == 0, err
    rec = next(x for x in _lines(out / "runs.jsonl") if x["run"] == spec.id)
    assert rec["steps_done"] == spec.steps
    steps = [json.loads(l)["step"] for l in (run_dir / "log.jsonl").read_text().splitlines()]
    # each step logged once (every 5th and the last; then the validation line): resumed, never restarted
    assert steps[:-1] == sorted(set(range(5, spec.steps + 1, 5)) | {spec.steps})

    # the loss of an uninterrupted run of the same spec, trained here with the same thread count
    cfg_obj = load_config(str(cfg))
    torch.set_num_threads(1)
    ref = train_run(spec, load_corpus(cfg_obj.data.__dict__), cfg_obj.train, tmp_path / "ref", "cpu",
                    cfg_obj.data.val_tokens)
    assert rec["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert len(_lines(out / "runs.jsonl")) == 3


def test_two_sweep_processes_never_train_a_run_twice(cluster, tmp_path):
    cfg = _config(tmp_path / "long.toml", LONG)
    out = tmp_path / "sweep"
    first = subprocess.Popen(_sweep_cmd(cfg, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    registry = out / "slurm" / "jobs.jsonl"
    _wait_for(lambda: registry.exists() and len(_lines(registry)) == 3, 60, "three submitted jobs")
    # a second sweep on the folder while the first waits: refused, nothing submitted (in this process: a second
    # interpreter's start-up can outlast the first sweep's jobs on a loaded machine)
    assert first.poll() is None, first.communicate()
    p = CliRunner().invoke(cli, ["sweep", "--config", str(cfg), "--out", str(out), "--device", "cpu"])
    assert p.exit_code == 2 and "another scalepredict process" in p.stderr, p.output
    assert len(_lines(registry)) == 3
    # the first one dies (its jobs go on); the next sweep attaches to the jobs instead of submitting them again
    first.send_signal(signal.SIGKILL)
    first.wait()
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    jobs = _lines(registry)
    assert len(jobs) == 3 and len({j["run"] for j in jobs}) == 3  # no run submitted twice
    recs = _lines(out / "runs.jsonl")
    assert sorted(x["run"] for x in recs) == sorted(j["run"] for j in jobs)  # each record once
    for j in jobs:
        steps = [json.loads(l)["step"] for l in (out / "runs" / j["run"] / "log.jsonl").read_text().splitlines()]
        assert len(steps) == len(set(steps)) + 1  # every step once (the last twice: its train and val lines)


def test_launcher_section_becomes_the_sbatch_script(tmp_path, monkeypatch):
    """Every [launcher] key lands in the job script submitit writes (checked without a cluster)."""
    from scalepredict.train import slurm
    from scalepredict.train.context import SweepContext

    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    example = Path(__file__).resolve().parents[1] / "configs" / "slurm-ladder.toml"
    cfg = load_config(str(example))
    ex = slurm.executor(SweepContext(cfg, None, tmp_path, "cuda"))
    text = ex._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("--partition=gpu", "--time=240", "--cpus-per-task=8", "--gpus-per-node=1", "--mem=65536M",
                 "--account=my-project", "--qos=normal", "--constraint=h100", "--exclusive", "--requeue",
                 "--signal=USR2@300", "--job-name=scalepredict-slurm-ladder"):
        assert f"#SBATCH {line}\n" in text, line
    assert "module load cuda/12.4\nsource ~/venvs/scalepredict/bin/activate\n" in text
    assert ex.parameters["array_parallelism"] == 16


def test_a_failed_job_is_named_with_its_log_and_the_rest_are_kept(slurm_sweep, tmp_path):
    cfg, done_out, _ = slurm_sweep
    out = tmp_path / "sweep"
    victim = min(plan(load_config(str(cfg))), key=lambda s: s.compute).id
    (out / "runs").mkdir(parents=True)
    shutil.copy(done_out / "sweep.json", out / "sweep.json")  # a sweep that has not trained anything yet
    (out / "runs" / victim).write_text("not a folder")  # its job fails where it makes the run's folder
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 2 and "Traceback" not in r.stderr, r.output
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "1 of 4 SLURM job(s) failed" in line
    assert f"first {victim} (job " in line and "FileExistsError" in line and "_0_log.err" in line
    assert sorted(x["run"] for x in _lines(out / "runs.jsonl")) == sorted(
        s.id for s in plan(load_config(str(cfg))) if s.id != victim)  # the others are kept
    st = _status_json(out)
    assert [x["run"] for x in st["runs"] if x["state"] == "failed"] == [victim]
    (out / "runs" / victim).unlink()
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0 and "submitted 1 job(s)" in r.output, r.output
    assert len(_lines(out / "runs.jsonl")) == 4


def test_no_slurm_commands_and_no_sweep_are_one_line(tmp_path, monkeypatch):
    from scalepredict.train import slurm

    cfg = _config(tmp_path / "tiny.toml")
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)  # a machine without the SLURM client commands
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg), "--out", str(tmp_path / "s"), "--device", "cpu"])
    assert r.exit_code == 2 and r.stderr.strip() == (
        "scalepredict: error: sbatch: not found; --launcher slurm needs the SLURM client commands on this machine "
        "(or use --launcher local)")
    assert not (tmp_path / "s").exists()  # checked before anything is written
    r = CliRunner().invoke(cli, ["status", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and r.stderr.strip() == (f"scalepredict: error: {tmp_path / 'nowhere'}: no sweep here (no "
                                                     f"sweep.json); `scalepredict sweep --out {tmp_path / 'nowhere'}` "
                                                     f"starts one")


def test_runs_on_the_nodes_gpus_are_planned_from_a_login_node_without_one(tmp_path):
    from scalepredict.train.devices import cluster_device

    cfg = load_config(str(_config(tmp_path / "c.toml", extra="gpus_per_run = 1")))
    assert cluster_device("auto", cfg) == "cuda" and cluster_device("cpu", cfg) == "cpu"
    cfg0 = load_config(str(_config(tmp_path / "d.toml", extra="gpus_per_run = 0")))
    assert cluster_device("auto", cfg0) == "cpu" and cluster_device("cuda", cfg0) == "cuda"
    # --device cuda on this CPU-only machine: refused for a local sweep, planned for SLURM's nodes
    cfg_path = tmp_path / "c.toml"
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--launcher", "local", "--device", "cuda",
                                 "--dry-run"])
    if not torch.cuda.is_available():
        assert r.exit_code == 2 and "no CUDA device" in r.stderr
        r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg_path), "--device", "cuda", "--dry-run"])
        assert r.exit_code == 0, r.output
        assert "the runs train on cuda on the cluster's nodes; this machine has none" in r.output
        assert "total " in r.output
