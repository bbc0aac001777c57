import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalepredict.cli import cli
from scalepredict.ingest import TEXT_FORMATS, load_table, read_curves
from scalepredict.ingest.stdout import text_curves
from tests.conftest import shared_file


def curve(path, metric, fmt="auto"):
    kind, curves = read_curves(path, fmt)
    (c,) = [c for c in curves if c.metric == metric]
    return kind, c


@pytest.mark.parametrize("rel, fmt, metric, first, last, n", [
    ("logs/llmc/llmc_gpt2_124M_10B_main.log", "llmc", "val_loss", (0, 11.0092), (19560, 3.2722), 80),
    ("logs/llmc/llmc_gpt2_350M_main.log", "llmc", "val_loss", (0, 10.9830), (60000, 2.9282), 241),
    ("logs/modded_nanogpt/modded_nanogpt_124M_2024-10-14_ModernArch.txt", "modded_nanogpt", "val_loss",
     (0, 16.0058), (5100, 3.2741), None),
    ("logs/lightning_csv/GPTTT_shakespeare_char/version_0/metrics.csv", "lightning", "train_loss",
     (49, 2.620293617248535), (499, 1.668698787689209), 10),
    ("logs/hf_trainer_state/serial-lain-ai_rinna-gpt2-medium_finetune/trainer_state.json", "hf_trainer", "loss",
     (500, 0.4742), (3000, 0.0081), 6),
    ("logs/hf_trainer_state/trainer_state_viz_sample/trainer_state.json", "hf_trainer", "eval_g0_loss",
     (0, 5.741583347320557), (12030, 2.7486727237701416), 31),
    ("logs/hf_trainer_state/trainer_state_viz_sample/trainer_state.json", "hf_trainer", "loss",
     (401, 1.1074), (12030, 0.0549), 30),
    ("logs/hf_trainer_state/serial-lain-ai_rinna-gpt2-medium_finetune/all_results.json", "hf_results", "eval_loss",
     (3100, 0.006221685092896223), (3100, 0.006221685092896223), 1),
    ("logs/tensorboard/hf_trainer_serial-lain-ai/runs/Jun29_06-31-19_6a29ce405cda", "tensorboard", "train/loss",
     (500, 0.4742000102996826), (3000, 0.008100000210106373), 6),
])
def test_real_logs_exact_values(rel, fmt, metric, first, last, n):
    pytest.importorskip("tensorboard") if fmt == "tensorboard" else None
    kind, c = curve(shared_file(rel), metric)
    assert kind == fmt
    assert (c.steps[0], c.values[0]) == first
    assert (c.steps[-1], c.values[-1]) == last
    if n is not None:
        assert len(c.steps) == n


def test_wandb_chart_export():
    path = shared_file("logs/wandb_csv/wandb_export_2024-02-23T14_58_09.703-05_00.csv")
    kind, curves = read_curves(path)
    assert kind == "wandb"
    runs = {c.run for c in curves}
    assert "OLMo-7B-run-038" in runs and all(c.metric == "eval/ice-validation/CrossEntropyLoss" for c in curves)
    c = next(c for c in curves if c.run == "OLMo-7B-run-038")
    assert c.steps[0] == 551000 and c.steps[-1] == 556000
    assert c.values[-1] == pytest.approx(2.393, abs=5e-4)


def test_wandb_chart_export_pile_validation():
    path = shared_file("logs/wandb_csv/wandb_export_2024-02-23T15_01_44.107-05_00.csv")
    kind, curves = read_curves(path)
    assert kind == "wandb" and len(curves) == 36
    by = {c.run: c for c in curves}
    assert all(c.metric == "eval/pile-validation/CrossEntropyLoss" for c in curves)
    c = by["OLMo-7B-run-037"]
    assert len(c.steps) == 19 and (c.steps[0], c.values[0]) == (532000, 1.9106271266937256)
    assert (c.steps[-1], c.values[-1]) == (550000, 1.9088950157165527)
    assert (by["OLMo-7B-run-038"].steps[-1], by["OLMo-7B-run-038"].values[-1]) == (556000, 1.9076638221740723)


def test_hf_all_results_takes_step_and_compute_from_the_state_beside_it():
    path = shared_file("logs/hf_trainer_state/serial-lain-ai_rinna-gpt2-medium_finetune/all_results.json")
    (rec,) = load_table([path]).records
    assert (rec["step"], rec["loss"], rec["compute"]) == (3100, 0.006221685092896223, 5757944306073600.0)


def test_tensorboard_eval_loss_in_a_later_file():
    pytest.importorskip("tensorboard")
    path = shared_file("logs/tensorboard/hf_trainer_serial-lain-ai/runs/Jun29_06-31-19_6a29ce405cda")
    _, c = curve(path, "eval/loss")
    assert c.steps == [3100] and c.values == [pytest.approx(0.006221685092896223)]


def test_nanogpt_and_megatron_fixtures(tmp_path):
    p = tmp_path / "train.log"
    p.write_text("iter 0: loss 4.2\nstep 0: train loss 4.2000, val loss 4.2100\nstep 250: train loss 2.1, "
                 "val loss 2.2\nstep 250: train loss 2.0, val loss 2.15\n")
    kind, c = curve(p, "val_loss")
    assert kind == "nanogpt" and c.steps == [0, 250] and c.values == [4.21, 2.15]  # a repeated step keeps the later
    m = tmp_path / "megatron.log"
    m.write_text(
        " iteration      100/  500000 | consumed samples:        51200 | consumed tokens:    104857600 | "
        "elapsed time per iteration (ms): 812.3 | learning rate: 1.5E-05 | lm loss: 7.123456E+00 | loss scale: 1.0 |\n"
        " iteration      200/  500000 | consumed samples:       102400 | consumed tokens:    209715200 | "
        "elapsed time per iteration (ms): 810.1 | learning rate: 3.0E-05 | lm loss: 6.543210E+00 | loss scale: 1.0 |\n"
        " validation loss at iteration 200 | lm loss value: 6.600000E+00 | lm loss PPL: 7.35E+02 |\n")
    kind, c = curve(m, "train_loss")
    assert kind == "megatron" and c.steps == [100, 200] and c.values == [7.123456, 6.54321]
    assert c.tokens == [104857600, 209715200]
    _, v = curve(m, "val_loss")
    assert v.steps == [200] and v.values == [6.6]


def test_pattern_and_fit_from_logs(tmp_path):
    paths = []
    for name, n, loss in (("a", 1e6, 3.5), ("b", 4e6, 3.0), ("c", 1.6e7, 2.7), ("d", 6.4e7, 2.5), ("e", 2.56e8, 2.38)):
        p = tmp_path / f"{name}.txt"
        p.write_text(f"it=10 L={loss + 1}\nit=20 L={loss}\n")
        paths.append(p)
    table = load_table(paths, pattern=r"it=(?P<step>\d+) L=(?P<value>\S+)", params=1e6, tokens_per_step=1e6)
    assert list(table.loss) == [3.5, 3.0, 2.7, 2.5, 2.38]
    assert table.compute[0] == 6 * 1e6 * 20 * 1e6


@pytest.mark.parametrize("content, args, needle", [
    (b"", [], "empty file"),
    (b"\x00\x01\x02binary", [], "binary file"),
    (b"hello world\nnothing here\n", [], "unknown log format"),
    (b"s:0 tel:3.0\n", ["--metric", "nope"], "no metric 'nope'"),
    (b"x 1 2\n", ["--pattern", r"x (?P<step>\d+)"], "missing value"),
    (b'{"log_history": [', [], "not valid JSON"),
])
def test_bad_logs(tmp_path, content, args, needle):
    p = tmp_path / "bad.log"
    p.write_bytes(content)
    r = CliRunner().invoke(cli, ["ingest", str(p), "-o", str(tmp_path / "out.jsonl"), *args])
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "out.jsonl").exists()


def test_ingest_json_contract(tmp_path):
    p = tmp_path / "l.log"
    p.write_text("s:0 tel:4.0\ns:0 trl:4.1 lr:0.1 norm:1\ns:10 tel:3.0\n")
    r = CliRunner().invoke(cli, ["ingest", str(p), "--json"])
    assert r.exit_code == 0
    curves = json.loads(r.stdout)["curves"]
    v = next(c for c in curves if c["metric"] == "val_loss")
    assert {k: v[k] for k in ("run", "metric", "n_points", "first_step", "last_step", "last_value")} == {
        "run": "l", "metric": "val_loss", "n_points": 2, "first_step": 0, "last_step": 10, "last_value": 3.0}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_text_readers_never_crash(text):
    from pathlib import Path

    for fmt, pats in TEXT_FORMATS.items():
        for c in text_curves(Path("fuzz.log"), text, pats, fmt):
            c.clean()
            c.summary()


def _write_tensor_scalars(logdir, tag_values, wall0=1.0e9):
    """Event file with TF2-style tensor summaries (what T5X's metric writers produce), plus a string tensor."""
    import numpy as np
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    w = EventFileWriter(str(logdir))
    md = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    for tag, step, v in tag_values:
        proto = tensor_util.make_tensor_proto(np.float32(v) if isinstance(v, float) else np.array(v, dtype=object))
        val = summary_pb2.Summary.Value(tag=tag, tensor=proto, metadata=md)
        w.add_event(event_pb2.Event(wall_time=wall0 + step, step=step, summary=summary_pb2.Summary(value=[val])))
    w.close()


def test_tensorboard_tensor_summaries_t5x_layout(tmp_path):
    pytest.importorskip("tensorboard")
    import time

    model_dir = tmp_path / "t5x_run"
    _write_tensor_scalars(model_dir / "train", [("loss", 100, 3.5), ("loss", 200, 3.25), ("loss", 300, 3.0),
                                                ("config", 0, "some text")])
    time.sleep(1.1)  # a restart: a second, later file repeats step 300 with another value
    _write_tensor_scalars(model_dir / "train", [("loss", 300, 2.875), ("loss", 400, 2.75)], wall0=2.0e9)
    _write_tensor_scalars(model_dir / "validation", [("loss", 200, 3.375), ("loss", 400, 2.8125)])
    kind, curves = read_curves(model_dir)
    assert kind == "tensorboard"
    by = {c.metric: c for c in curves}
    assert set(by) == {"train/loss", "validation/loss"}  # subfolders are separate TensorBoard runs; text ignored
    assert by["train/loss"].steps == [100, 200, 300, 400]
    assert by["train/loss"].values == [3.5, 3.25, 2.875, 2.75]  # the restart's value for step 300 wins
    assert by["validation/loss"].steps == [200, 400] and by["validation/loss"].values == [3.375, 2.8125]
    table = load_table([model_dir], metric="validation/loss", params=1e6, tokens_per_step=1000)
    assert table.records[0]["loss"] == 2.8125 and table.records[0]["tokens"] == 400_000


WANDB_RUNS = (
    'Name,State,Notes,User,Tags,Created,Runtime,Sweep,n_layer,d_model,batch_size,seq_len,lr,_step,train/loss,val/loss\n'
    'tiny-a,finished,-,me,,2024-05-01T10:00:00.000Z,120,,2,128,32,256,0.003,1000,3.91,3.95\n'
    'tiny-b,finished,-,me,,2024-05-01T11:00:00.000Z,480,,4,256,32,256,0.002,2000,3.41,3.44\n'
    'tiny-c,crashed,-,me,,2024-05-01T12:00:00.000Z,60,,8,512,32,256,0.001,300,4.8,5.1\n'
    'tiny-d,finished,-,me,,2024-05-01T13:00:00.000Z,900,,6,384,32,256,0.0015,4000,3.12,\n'
)


def test_wandb_runs_table_export(tmp_path):
    p = tmp_path / "wandb_export_runs.csv"
    p.write_text(WANDB_RUNS)
    kind, curves = read_curves(p)
    assert kind == "wandb_runs"
    vl = {c.run: c for c in curves if c.metric == "val/loss"}
    assert set(vl) == {"tiny-a", "tiny-b", "tiny-c"}  # tiny-d has no val/loss
    assert vl["tiny-b"].steps == [2000] and vl["tiny-b"].values == [3.44]
    table = load_table([p], metric="train/loss")
    recs = {r["run"]: r for r in table.records}
    assert set(recs) == {"tiny-a", "tiny-b", "tiny-d"}  # the crashed run is left out, and said so
    assert [e["run"] for e in table.excluded] == ["tiny-c"]
    assert recs["tiny-b"]["params"] == 12 * 4 * 256**2
    assert recs["tiny-b"]["tokens"] == 2000 * 32 * 256
    assert recs["tiny-b"]["compute"] == 6.0 * 12 * 4 * 256**2 * 2000 * 32 * 256
    assert recs["tiny-d"]["loss"] == 3.12


def test_run_meta_file_gives_params_and_tokens_per_run(tmp_path):
    logs = []
    for name, loss in (("gpt-small", 3.4), ("gpt-medium", 3.1), ("gpt-large", 2.9)):
        p = tmp_path / f"{name}.log"
        p.write_text(f"s:0 tel:11.0\ns:500 tel:{loss + 0.5}\ns:1000 tel:{loss}\n")
        logs.append(p)
    meta = tmp_path / "meta.csv"
    meta.write_text("run,params,tokens_per_step\ngpt-large,3.5e8,524288\ngpt-*,1.24e8,524288\n")
    table = load_table(logs, run_meta=meta)
    recs = {r["run"]: r for r in table.records}
    assert recs["gpt-large"]["params"] == 3.5e8  # an exact name wins over a glob listed after it
    assert recs["gpt-small"]["params"] == 1.24e8 and recs["gpt-medium"]["params"] == 1.24e8
    assert recs["gpt-small"]["tokens"] == 1000 * 524288
    assert recs["gpt-large"]["compute"] == 6.0 * 3.5e8 * 1000 * 524288
    # it wins over --params, which a run without a row still uses
    meta.write_text("run,params,tokens\ngpt-small,2e8,1e9\n")
    table = load_table(logs, run_meta=meta, params=1e8, tokens_per_step=1e6)
    recs = {r["run"]: r for r in table.records}
    assert (recs["gpt-small"]["params"], recs["gpt-small"]["tokens"]) == (2e8, 1e9)
    assert (recs["gpt-large"]["params"], recs["gpt-large"]["tokens"]) == (1e8, 1e9)
    r = CliRunner().invoke(cli, ["ingest", *map(str, logs), "--run-meta", str(meta), "--params", "1e8",
                                 "--tokens-per-step", "1e6", "-o", str(tmp_path / "runs.jsonl")])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [x["params"] for x in rows] == [2e8, 1e8, 1e8]


@pytest.mark.parametrize("content, needle", [
    ("run,params,tokenz\na,1e6,5\n", "line 2: unknown column(s) tokenz"),
    ("run,params\na,big\n", "line 2, column 'params': 'big' is not a positive number"),
    ("run,params\n,1e6\n", "line 2, column 'run': no run name"),
])
def test_bad_run_meta(tmp_path, content, needle):
    log = tmp_path / "a.log"
    log.write_text("s:0 tel:4.0\ns:10 tel:3.0\n")
    meta = tmp_path / "meta.csv"
    meta.write_text(content)
    r = CliRunner().invoke(cli, ["fit", str(log), "--run-meta", str(meta)])
    assert r.exit_code == 2 and needle in r.stderr and "Traceback" not in r.output, r.output


def test_log_without_sizes_says_how_to_give_them(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("s:0 tel:4.0\ns:10 tel:3.0\n")
    r = CliRunner().invoke(cli, ["fit", str(log)])
    assert r.exit_code == 2 and "run 'a' has no compute" in r.stderr and "--run-meta" in r.stderr


def test_lightning_hparams_give_params_and_tokens():
    path = shared_file("logs/lightning_csv/GPTTT_shakespeare_char/version_0/metrics.csv")
    (rec,) = load_table([path]).records
    # hparams.yaml: n_layer 6, n_embd 384 -> 12 * 6 * 384^2; batch 64 x block 256 x 2 devices (ddp) per step
    assert rec["metric"] == "val_loss" and rec["step"] == 399 and rec["loss"] == 1.9023048877716064
    assert rec["params"] == 12 * 6 * 384**2 and rec["tokens"] == 399 * 64 * 256 * 2


def test_hf_trainer_total_flos_is_the_compute():
    path = shared_file("logs/hf_trainer_state/serial-lain-ai_rinna-gpt2-medium_finetune/trainer_state.json")
    (rec,) = load_table([path], metric="loss").records
    assert rec["compute"] == 5757944306073600.0 and rec["loss"] == 0.0081


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.sampled_from([
    "Name,State,Created\n", "Step,a - loss,a - loss__MIN\n1,x,\n", "step,epoch,val_loss\n1,,nan\n",
    '{"log_history": [{"step": "a"}]}', "Name,State,Runtime,_step\nx,finished,1,notanumber\n"])).map(
        lambda s: s if len(s) < 40 else s[:40] + "\n" + s[40:]))
def test_every_text_reader_fails_cleanly_or_reads(text):
    import tempfile
    from pathlib import Path

    from scalepredict.errors import InputError

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fuzz.txt"
        p.write_text(text)
        try:
            _, curves = read_curves(p)
        except InputError:
            return
        for c in curves:
            c.summary()


def test_plot_and_backtest_take_logs_directly(tmp_path):
    logs = []
    for i, n in enumerate((1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7)):
        p = tmp_path / f"run{i}.log"
        final = 1.8 + 400 / n**0.34 + 2000 / (20 * n) ** 0.36
        p.write_text(f"s:0 tel:11.0\ns:100 tel:{final + 0.3}\ns:200 tel:{final}\n")
        logs.append(p)
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps({"run": f"run{i}", "params": n, "tokens": 20 * n}) + "\n"
                            for i, n in enumerate((1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7))))
    out = tmp_path / "p.png"
    r = CliRunner().invoke(cli, ["plot", *map(str, logs[:4]), "--run-meta", str(meta), "--held-out", str(logs[5]),
                                 "--bootstrap", "50", "-t", "1e17", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 1000
    r = CliRunner().invoke(cli, ["backtest", *map(str, logs), "--run-meta", str(meta), "--factors", "10",
                                 "--bootstrap", "50", "--json"])
    assert r.exit_code == 0, r.output
    cases = json.loads(r.stdout)["cases"]
    assert [c["compute"] for c in cases] == [6 * 1.6e7 * 3.2e8, 6 * 3.2e7 * 6.4e8]


def test_stdout_logs_say_their_params_and_batch(tmp_path):
    nano = tmp_path / "nanogpt.log"
    nano.write_text("tokens per iteration will be: 16,384\nfound vocab_size = 65 (inside data/meta.pkl)\n"
                    "number of parameters: 10.65M\nstep 0: train loss 4.2874, val loss 4.2823\n"
                    "iter 0: loss 4.2654, time 1.0ms, mfu -100.00%\nstep 250: train loss 1.9622, val loss 2.0638\n")
    (rec,) = load_table([nano]).records
    assert rec["params"] == 10.65e6 and rec["tokens"] == 250 * 16384 and rec["loss"] == 2.0638
    llmc = tmp_path / "llmc.log"
    llmc.write_text("+-----------------------+----------------------------------------------------+\n"
                    "| num_parameters        | 124475904                                          |\n"
                    "total desired batch size: 524288\ns:0 tel:11.0092\ns:250 tel:6.1\n")
    (rec,) = load_table([llmc]).records
    assert (rec["params"], rec["tokens"], rec["loss"]) == (124475904, 250 * 524288, 6.1)
    bn = tmp_path / "log.txt"
    bn.write_text("0 val 10.9513\n0 hella 0.2455\n0 train 10.955\n1 train 10.28\n250 val 6.25\n250 train 6.3\n")
    kind, c = curve(bn, "val_loss")
    assert kind == "build_nanogpt" and c.steps == [0, 250] and c.values == [10.9513, 6.25]


def test_lightning_hparams_are_read_as_yaml(tmp_path):
    """hparams.yaml was parsed by hand: a quoted number and a value with a trailing comment were lost."""
    (tmp_path / "hparams.yaml").write_text('n_params: "1234567"  # counted by the model\nmodel:\n  n_layer: 4 # four\n'
                                           "  d_model: '256'\ndata:\n  batch_size: 8\n  block_size: 64\n")
    (tmp_path / "metrics.csv").write_text("epoch,step,train_loss,val_loss\n0,9,3.0,\n0,9,,2.9\n0,19,2.5,\n0,19,,2.4\n")
    table = load_table([tmp_path / "metrics.csv"])
    rec = table.records[0]
    assert rec["params"] == 1234567 and rec["params_from"] == "the log's parameter count"
    assert rec["tokens"] == 19 * 8 * 64 and rec["loss"] == 2.4
