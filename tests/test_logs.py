"""The log formats users have: W&B run histories, Megatron (LM and DeepSpeed), torchtitan; a whole ladder in one
command (a folder of histories, --metric, --name-pattern). Fixtures are written here in each tool's own format."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from scalepredict.cli import cli
from scalepredict.ingest import load_table, pick_metric, read_curves
from scalepredict.runs import load_runs

VAL = "eval/c4_en-validation/CrossEntropyLoss"


def megatron_deepspeed_log(run_losses):
    """Megatron-DeepSpeed's stdout through a launcher that prefixes ranks, several runs one after another."""
    out = []
    for losses in run_losses:
        out.append("0: ------------------------ arguments ------------------------")
        for it, (train, val) in enumerate(losses, 1):
            step = it * 500
            out.append(f"0:  iteration     {step:>5}/   10000 | consumed samples:      {step * 256} | consumed tokens:"
                       f"   {step * 256 * 2048} | elapsed time per iteration (ms): 812.3 | learning rate: 2.9E-04 | "
                       f"global batch size:   256 | lm loss: {train:.6E} | loss scale: 4096.0 |")
            out.append("0: -" * 20)
            out.append(f"0:  valid loss at iteration {step} | lm loss value: {val:.6E} | lm loss PPL: "
                       f"{np.exp(val):.6E} | ")
    return "\n".join(out) + "\n"


def test_megatron_deepspeed_valid_loss_with_rank_prefixes_and_two_runs(tmp_path):
    p = tmp_path / "gpt-train.log"
    p.write_text(megatron_deepspeed_log([[(9.1, 9.0), (8.4, 8.283220)], [(8.9, 8.8), (7.7, 7.654321)]]))
    kind, curves = read_curves(p)
    assert kind == "megatron"
    val = {c.run: c for c in pick_metric(curves, kind, None, p)}  # the default metric is the validation loss
    assert set(val) == {"gpt-train", "gpt-train#2"}
    assert val["gpt-train"].metric == "val_loss" and val["gpt-train"].values == [9.0, 8.28322]
    assert val["gpt-train#2"].steps == [500, 1000] and val["gpt-train#2"].values[-1] == 7.654321
    assert val["gpt-train"].tokens == [500 * 256 * 2048, 1000 * 256 * 2048]


def test_a_log_with_a_generic_name_is_named_after_its_folder(tmp_path):
    """runs/b3-L2d64-s0/train.log is run b3-L2d64-s0 (every run of a sweep of your own trainer writes train.log)."""
    (tmp_path / "b3-L2d64-s0").mkdir()
    p = tmp_path / "b3-L2d64-s0" / "train.log"
    p.write_text("step 10: train loss 3.0, val loss 3.1\n")
    assert [c.run for c in read_curves(p)[1]] == ["b3-L2d64-s0"] * 2


def test_megatron_lm_validation_on_validation_set_with_rank_brackets(tmp_path):
    p = tmp_path / "lm.log"
    p.write_text("[rank0]:  iteration      100/    2000 | consumed samples:        12800 | lm loss: 6.512345E+00 |\n"
                 "[rank0]: ----------------------------------------------------------------------------------\n"
                 "[rank0]:  validation loss at iteration 100 on validation set | lm loss value: 6.401234E+00 | "
                 "lm loss PPL: 6.02E+02 |\n"
                 "[rank0]:  iteration      200/    2000 | consumed samples:        25600 | lm loss: 5.9E+00 |\n"
                 "[rank0]:  validation loss at iteration 200 on validation set | lm loss value: 5.876543E+00 |\n")
    kind, curves = read_curves(p)
    (val,) = pick_metric(curves, kind, None, p)
    assert kind == "megatron" and val.steps == [100, 200] and val.values == [6.401234, 5.876543]


def test_torchtitan_console_log_with_colours_and_prefixes(tmp_path):
    esc = "\x1b"
    lines = []
    for step, loss in ((1, 12.2456), (10, 9.8765), (20, 8.1234)):
        lines.append(f"[titan] 2025-03-01 10:00:{step:02d},123 - root - INFO - {esc}[31mstep: {step:2}  {esc}[32mloss: "
                     f"{loss:7.4f}  {esc}[33mgrad_norm:  1.2345  {esc}[36mmemory: 12.34GiB(15.60%)  {esc}[34mtps: "
                     f"12,345  {esc}[36mtflops: 123.45  {esc}[35mmfu: 12.34%{esc}[39m")
    lines.append(f"[titan] 2025-03-01 10:01:00,000 - root - INFO - {esc}[33mvalidate step: 20  {esc}[32mloss: 8.3456"
                 f"{esc}[39m")
    p = tmp_path / "titan.log"
    p.write_text("\n".join(lines) + "\n")
    kind, curves = read_curves(p)
    by = {c.metric: c for c in curves}
    assert kind == "torchtitan"
    assert by["train_loss"].steps == [1, 10, 20] and by["train_loss"].values == [12.2456, 9.8765, 8.1234]
    assert by["val_loss"].values == [8.3456]
    assert by["tokens_per_second"].values[-1] == 12345
    assert pick_metric(curves, kind, None, p)[0].metric == "val_loss"


def history_rows(params, steps=(0, 1000, 2000, 3000), seed=0):
    """A W&B history as run.history() returns it for one ladder run: _step, _runtime, _timestamp and slash-named
    metrics; tokens and GFLOPs counters."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in steps:
        tokens = s * 1024 * 2048
        val = 1.8 + 400 / params**0.34 + 2000 / max(tokens, 1) ** 0.36
        rows.append({"_step": s, "_runtime": s * 0.5, "_timestamp": 1.7e9 + s, "train/CrossEntropyLoss":
                     round(val + 0.05 + rng.normal(0, 0.01), 6), VAL: round(val, 6),
                     "throughput/total_tokens": tokens, "throughput/total_training_Gflops": 6 * params * tokens / 1e9,
                     "optim/LR": 3e-4})
    return rows


def write_csv(path, rows):
    cols = list(rows[0])
    path.write_text(",".join(cols) + "\n" + "".join(",".join("" if r.get(c) is None else str(r[c]) for c in cols)
                                                     + "\n" for r in rows))
    return path


def test_wandb_history_csv_is_detected_and_read_with_tokens_and_flops(tmp_path):
    p = write_csv(tmp_path / "olmo-ladder-150M.csv", history_rows(150e6))
    kind, curves = read_curves(p)
    assert kind == "wandb_history"
    (val,) = pick_metric(curves, kind, None, p)  # the one validation loss among the metrics
    assert val.metric == VAL and val.steps == [0, 1000, 2000, 3000]
    assert val.values[-1] == history_rows(150e6)[-1][VAL]
    assert val.tokens[-1] == 3000 * 1024 * 2048
    assert val.meta["compute"] == pytest.approx(6 * 150e6 * 3000 * 1024 * 2048)  # GFLOPs x 1e9


def test_wandb_history_jsonl_with_several_runs(tmp_path):
    p = tmp_path / "histories.jsonl"
    p.write_text("".join(json.dumps({"run": name, **r}) + "\n" for name, n in (("a-60M", 60e6), ("b-150M", 150e6))
                         for r in history_rows(n)))
    kind, curves = read_curves(p)
    val = {c.run: c for c in curves if c.metric == VAL}
    assert kind == "wandb_history" and set(val) == {"a-60M", "b-150M"}
    assert val["b-150M"].values[-1] == history_rows(150e6)[-1][VAL]


def test_a_folder_of_histories_fits_like_the_hand_made_run_table(tmp_path):
    """`scalepredict fit FOLDER --metric M --name-pattern ...` gives the fit of the equivalent run table."""
    folder = tmp_path / "ladder"
    folder.mkdir()
    sizes = {"20M": 20e6, "60M": 60e6, "150M": 150e6, "300M": 300e6, "700M": 700e6, "1B": 1e9}
    table = []
    for i, (name, n) in enumerate(sizes.items()):
        steps = tuple(int(x) for x in np.linspace(0, 20 * n / (1024 * 2048), 5))
        rows = history_rows(n, steps, seed=i)
        write_csv(folder / f"ladder-{name}.csv", rows)
        table.append({"run": f"ladder-{name}", "params": n, "tokens": rows[-1]["throughput/total_tokens"],
                      "loss": rows[-1][VAL]})
    hand = tmp_path / "runs.jsonl"
    hand.write_text("".join(json.dumps(r) + "\n" for r in table))
    runner = CliRunner()
    a = runner.invoke(cli, ["fit", str(folder), "--metric", VAL, "--name-pattern", r"-(?P<params>\d+[MB])$",
                            "--law", "chinchilla_tied", "--bootstrap", "50", "--json"])
    b = runner.invoke(cli, ["fit", str(hand), "--law", "chinchilla_tied", "--bootstrap", "50", "--json"])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    pa, pb = json.loads(a.stdout)["params"], json.loads(b.stdout)["params"]
    for k in pa:  # the same runs by two paths: the same optimum, to the optimizer's tolerance (ftol 1e-13 on the
        # objective leaves the flattest parameters free at about 1e-7 relative)
        assert pa[k]["value"] == pytest.approx(pb[k]["value"], rel=1e-6)
    t = load_table([folder], metric=VAL, name_pattern=r"-(?P<params>\d+[MB])$")
    assert sorted(t.params) == sorted(sizes.values())
    assert {r["params_from"] for r in t.records} == {"the run's name"}


def test_name_pattern_errors_are_one_line(tmp_path):
    p = write_csv(tmp_path / "run-x.csv", history_rows(1e8))
    r = CliRunner().invoke(cli, ["fit", str(p), "--metric", VAL, "--name-pattern", "(?P<size>x)"])
    assert r.exit_code == 2 and "needs a named group among params" in r.stderr
    r = CliRunner().invoke(cli, ["fit", str(p), "--metric", VAL, "--name-pattern", "(?P<params>x)"])
    assert r.exit_code == 2 and "'x' is not a count" in r.stderr


def test_wandb_history_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = history_rows(150e6)
    p = tmp_path / "run-150M.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    kind, curves = read_curves(p)
    (val,) = pick_metric(curves, kind, None, p)
    assert kind == "wandb_history" and val.values[-1] == rows[-1][VAL]


def test_a_run_table_is_never_taken_for_a_history(tmp_path):
    p = tmp_path / "runs.csv"
    p.write_text("run,params,tokens,loss\na,1e6,2e7,3.1\n")
    assert read_curves(p)[0] == "runs"
    assert len(load_runs(p)) == 1
    assert Path(p).exists()


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SEEDS = [
    b"_step,_runtime,train/loss\n0,1,3.5\n1,x,\n",
    b'{"_step": 0, "_runtime": 1, "eval/loss": 3.2}\n{"_step": "a"}\n',
    b"0:  valid loss at iteration 5 | lm loss value: 8.2E+00 |\n0:  valid loss at iteration 1 | lm loss value: nan\n",
    b"[rank0]:  iteration 10/ 100 | consumed tokens: 99 | lm loss: 1e+00 |\n",
    b"\x1b[31mstep:  1  \x1b[32mloss: 12.2  grad_norm: 1  tps: 1,2,3\n",
    b"PAR1\x00\x00garbage",
    b":W&B\xe1\xbe\x00\x30\xb6\xc4\x02\x4d\x00\x01\x08\x01\xc2\x0c\x0a\x0a\x08rmrywmqv",
    b":W&B\xe1\xbe\x00\x00\x00\x00\x00\x05\x00\x02abcde\x00\x00\x00\x00\x03\x00\x04fgh",
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400), st.sampled_from(SEEDS)).flatmap(
    lambda b: st.tuples(st.just(b), st.integers(0, len(b)), st.binary(max_size=20))),
       st.sampled_from(["log.txt", "history.csv", "history.jsonl", "run.parquet", "train.log", "run-x.wandb"]))
def test_arbitrary_bytes_give_one_error_line_or_curves(case, name):
    """Every reader, on arbitrary bytes (and on real-looking lines with bytes spliced in): curves, or an InputError;
    never another exception."""
    import tempfile

    from scalepredict.errors import InputError

    data, at, junk = case
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data[:at] + junk + data[at:])
        try:
            _, curves = read_curves(p)
        except InputError as e:
            assert "\n" not in str(e)
            return
        for c in curves:
            c.summary()


def test_mlflow_file_store_written_by_mlflow(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 writes a file store only when asked
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    exp = client.create_experiment("ladder")
    losses = {"tiny": [4.0, 3.5, 3.25], "small": [3.8, 3.2, 2.875], "broken": [4.1, 3.9, 3.7]}
    for name, vals in losses.items():
        run = client.create_run(exp, run_name=name)
        rid = run.info.run_id
        client.log_param(rid, "n_params", {"tiny": 1_000_000, "small": 4_000_000, "broken": 2_000_000}[name])
        client.log_param(rid, "batch_size", 16)
        client.log_param(rid, "seq_len", 256)
        for step, v in zip((100, 200, 300), vals):
            client.log_metric(rid, "val/loss", v, step=step)
            client.log_metric(rid, "train/loss", v + 0.1, step=step)
        client.set_terminated(rid, status="FAILED" if name == "broken" else "FINISHED")
    kind, curves = read_curves(store)
    assert kind == "mlflow"
    val = {c.run: c for c in pick_metric(curves, kind, None, store)}
    assert set(val) == {"tiny", "small", "broken"} and val["small"].metric == "val/loss"
    assert val["small"].steps == [100, 200, 300] and val["small"].values[0] == 3.8 and val["small"].values[-1] == 2.875
    table = load_table([store])
    recs = {r["run"]: r for r in table.records}
    assert set(recs) == {"tiny", "small"} and [e["run"] for e in table.excluded] == ["broken"]
    assert recs["small"]["params"] == 4_000_000 and recs["small"]["tokens"] == 300 * 16 * 256
    assert recs["small"]["loss"] == 2.875
    assert mlflow.__version__


def test_wandb_run_folders_written_offline_by_wandb(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    finals = {}
    for name, n, fail in (("ladder-20M", 20_000_000, False), ("ladder-60M", 60_000_000, False),
                          ("ladder-40M", 40_000_000, True)):
        run = wandb.init(project="ladder", name=name, dir=str(tmp_path), reinit="finish_previous",
                         config={"model": {"n_params": n}, "batch_size": 16, "seq_len": 512})
        for step in (100, 200, 300):
            loss = 4.0 - step / 1000 - n / 1e9
            run.log({"train/loss": loss + 0.05, "val/loss": loss}, step=step)
        finals[name] = loss
        run.finish(exit_code=1 if fail else 0)
    wandb.teardown()  # the service writes the logs in the background: wait until every record is on disk
    folder = tmp_path / "wandb"
    kind, curves = read_curves(folder)
    assert kind == "wandb_run"
    val = {c.run: c for c in pick_metric(curves, kind, None, folder)}
    assert set(val) == set(finals) and val["ladder-60M"].metric == "val/loss"
    assert val["ladder-60M"].steps == [100, 200, 300] and val["ladder-60M"].values[-1] == finals["ladder-60M"]
    one = next(folder.glob("offline-run-*"))
    assert read_curves(one)[0] == "wandb_run"  # one run's folder
    table = load_table([folder])
    recs = {r["run"]: r for r in table.records}
    assert set(recs) == {"ladder-20M", "ladder-60M"} and [e["run"] for e in table.excluded] == ["ladder-40M"]
    assert recs["ladder-60M"]["params"] == 60_000_000 and recs["ladder-60M"]["tokens"] == 300 * 16 * 512
