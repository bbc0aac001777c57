"""Real corpora: local parquet and jsonl files tokenized by a tokenizer trained here (no download) into token files
with a manifest; exact counts, a split by documents, reuse, resume, and a sweep on the result."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from click.testing import CliRunner  # noqa: E402

from scalepredict.cli import cli  # noqa: E402
from scalepredict.config import load_config  # noqa: E402

WORDS = ("scaling laws predict the loss of large runs from small ones with honest uncertainty while the floor of "
         "the law decides how far a prediction can reach and tokens flow through layers of attention").split()


def documents(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(20, 120))) + f" doc{i}." for i in range(n)]


def train_tokenizer(texts, path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]", "<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(path))
    return path


@pytest.fixture
def corpus(tmp_path):
    docs = documents(600)
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(pa.table({"text": docs[:350], "id": list(range(350))}), folder / "part-0.parquet")
    tok = train_tokenizer(docs, tmp_path / "tokenizer.json")
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[350:]))
    return {"docs": docs, "parquet": folder, "jsonl": jsonl, "tokenizer": tok}


def config(tmp_path, dataset, tokenizer, extra="") -> Path:
    p = tmp_path / "real.toml"
    p.write_text(f"""name = "real"
[data]
source = "hf"
dataset = "{dataset}"
tokenizer = "{tokenizer}"
val_fraction = 0.1
val_tokens = 2048
cache = "{tmp_path / 'cache'}"
{extra}
[model]
seq_len = 32
aspect = 16
head_dim = 8
[sweep]
budgets = [2e9, 4e9, 8e9, 1.6e10]
sizes_per_budget = 3
repeats = 0
min_steps = 20
targets = [1e11]
[train]
batch_size = 8
lr = 1e-2
lr_ref_params = 1e4
log_interval = 5
""")
    return p


def independent_counts(docs, tokenizer_path, fraction):
    """Each split's documents and token count, computed one document at a time with the tokenizer's own encode
    and the split rule as documented (SHA-256 of the text below fraction * 2^64), apart from prepare's code."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    eot = tok.token_to_id("<|endoftext|>")
    out = {"train": [0, 0], "val": [0, 0]}
    for d in docs:
        h = int.from_bytes(hashlib.sha256(d.encode()).digest()[:8], "big")
        split = "val" if h < fraction * 2**64 else "train"
        out[split][0] += 1
        out[split][1] += len(tok.encode(d, add_special_tokens=False).ids) + 1  # the end-of-text token
    return out, tok, eot


def test_prepare_counts_every_token_and_splits_by_document(tmp_path, corpus):
    cfg = config(tmp_path, corpus["parquet"], corpus["tokenizer"])
    r = CliRunner().invoke(cli, ["prepare", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    expect, tok, eot = independent_counts(corpus["docs"][:350], corpus["tokenizer"], 0.1)
    assert out["documents"] == {"train": expect["train"][0], "val": expect["val"][0]}
    assert out["tokens"] == {"train": expect["train"][1], "val": expect["val"][1]}
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["tokenizer"]["digest"] == hashlib.sha256(corpus["tokenizer"].read_bytes()).hexdigest()
    assert manifest["dtype"] == "uint16" and manifest["tokenizer"]["vocab_size"] == tok.get_vocab_size()
    # no validation document in training: decode the token files back into documents
    docs = {}
    for split in ("train", "val"):
        ids = np.fromfile(out[split], dtype=np.uint16)
        assert len(ids) == out["tokens"][split]
        parts = np.split(ids, np.flatnonzero(ids == eot) + 1)[:-1]
        docs[split] = {tok.decode(p[:-1].tolist()).strip() for p in parts}
    assert len(docs["val"]) == out["documents"]["val"] and not docs["val"] & docs["train"]


def test_a_second_prepare_reuses_and_an_interrupted_one_resumes(tmp_path, corpus, monkeypatch):
    from scalepredict.train import prepare

    cfg = config(tmp_path, corpus["jsonl"], corpus["tokenizer"])
    monkeypatch.setattr(prepare, "SHARD_DOCS", 64)  # 250 documents: four shards
    real, calls = prepare._shard, []

    def interrupted(index, *a, **k):
        calls.append(index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(index, *a, **k)

    monkeypatch.setattr(prepare, "_shard", interrupted)
    r = CliRunner().invoke(cli, ["prepare", "--config", str(cfg)])
    assert r.exit_code == 130 and "rerun the same command to resume" in r.stderr
    monkeypatch.setattr(prepare, "_shard", real)
    r = CliRunner().invoke(cli, ["prepare", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    expect, _, _ = independent_counts(corpus["docs"][350:], corpus["tokenizer"], 0.1)
    assert first["tokens"] == {"train": expect["train"][1], "val": expect["val"][1]}
    mtime = Path(first["train"]).stat().st_mtime_ns
    r = CliRunner().invoke(cli, ["prepare", "--config", str(cfg)])
    assert r.exit_code == 0 and "reusing" in r.output and Path(first["train"]).stat().st_mtime_ns == mtime
    other = config(tmp_path, corpus["jsonl"], corpus["tokenizer"], extra="text_column = \"title\"")
    r = CliRunner().invoke(cli, ["prepare", "--config", str(other)])
    assert r.exit_code == 2 and "text_column 'title': not a column" in r.stderr


def test_a_sweep_trains_on_the_prepared_corpus_and_reports_bits_per_byte(tmp_path, corpus):
    pytest.importorskip("torch")
    cfg = config(tmp_path, corpus["parquet"], corpus["tokenizer"])
    c = load_config(str(cfg))
    assert c.data.source == "hf"
    r = CliRunner().invoke(cli, ["sweep", "--config", str(cfg), "--out", str(tmp_path / "s"), "--jobs", "1"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in (tmp_path / "s" / "runs.jsonl").read_text().splitlines()]
    manifest = json.loads(next((tmp_path / "cache").glob("*/manifest.json")).read_text())
    vocab = manifest["tokenizer"]["vocab_size"]
    assert all(x["vocab_size"] == -(-vocab // 64) * 64 for x in recs)  # padded to a multiple of 64
    for x in recs:  # bits per byte: nats per token / ln 2 * tokens per byte of the validation text
        assert x["loss_bpb"] == pytest.approx(x["loss"] / np.log(2) * manifest["tokens_per_byte"]["val"], rel=1e-9)


def test_bad_corpus_configs_are_one_line(tmp_path, corpus):
    for extra, msg in (('dataset = "{}"'.format(tmp_path / "nowhere" / "*.parquet"), "no parquet, jsonl or arrow"),
                       ('tokenizer = "{}"'.format(tmp_path / "nope.json"), "tokenizer")):
        p = tmp_path / "bad.toml"
        text = config(tmp_path, corpus["parquet"], corpus["tokenizer"]).read_text()
        key = extra.split(" = ")[0]
        text = "\n".join(extra if line.startswith(key + " =") else line for line in text.splitlines())
        p.write_text(text)
        r = CliRunner().invoke(cli, ["prepare", "--config", str(p)])
        assert r.exit_code == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
