import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalepredict.cli import cli
from scalepredict.ingest import TEXT_FORMATS, _text_curves, load_table, read_curves
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
        for c in _text_curves(Path("fuzz.log"), text, pats, fmt):
            c.clean()
            c.summary()
