"""How fast `scalepredict prepare` tokenizes, beside the tokenizer library's own batch encoder on the same text.

Generates documents of English-like text (--mb of it), trains a byte-level BPE tokenizer on a sample (the
`tokenizers` library, no download), writes them as parquet, and times (1) `tokenizers`' encode_batch over all the
documents in the same batches prepare uses, and (2) prepare itself (reading the files through `datasets`, encoding,
splitting by document, writing the shards and the token files). Prints tokens/s for both, and their ratio.

    python benchmarks/prepare_speed.py [--mb 40] [--vocab 8192]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def corpus(mb: float, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [("".join(rng.choice(list("etaoinshrdlucmfwypvbgkjqxz"), rng.integers(2, 9)))) for _ in range(20000)]
    zipf = 1.0 / np.arange(1, len(words) + 1) ** 1.1
    zipf /= zipf.sum()
    docs, size = [], 0
    while size < mb * 1e6:
        n = int(rng.integers(50, 800))
        text = " ".join(np.array(words)[rng.choice(len(words), n, p=zipf)]) + "."
        docs.append(text)
        size += len(text)
    return docs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=40.0)
    ap.add_argument("--vocab", type=int, default=8192)
    a = ap.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from scalepredict.config import DataConfig
    from scalepredict.train import prepare as prep

    docs = corpus(a.mb)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(docs[: max(1, len(docs) // 10)],
                            trainers.BpeTrainer(vocab_size=a.vocab, special_tokens=["<|endoftext|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok.save(str(tmp / "tokenizer.json"))
        pq.write_table(pa.table({"text": docs}), tmp / "docs.parquet")
        t0 = time.perf_counter()
        n_tok = 0
        for i in range(0, len(docs), prep.SHARD_DOCS):
            n_tok += sum(len(e.ids) for e in tok.encode_batch(docs[i:i + prep.SHARD_DOCS], add_special_tokens=False))
        lib = n_tok / (time.perf_counter() - t0)
        data = DataConfig(source="hf", dataset=str(tmp / "docs.parquet"), tokenizer=str(tmp / "tokenizer.json"),
                          cache=str(tmp / "cache"))
        t0 = time.perf_counter()
        prepared = prep.prepare(data, echo=lambda *x: None, progress=False)
        wall = time.perf_counter() - t0
    m = prepared.manifest
    total = m["tokens"]["train"] + m["tokens"]["val"]
    print(f"{len(docs):,} documents, {a.mb:g} MB of text, {total:,} tokens (vocabulary {a.vocab:,}), "
          f"{os.cpu_count()} cores")
    print(f"tokenizers encode_batch alone: {lib / 1e6:.2f} M tokens/s")
    print(f"scalepredict prepare, end to end: {total / wall / 1e6:.2f} M tokens/s ({wall:.1f} s; "
          f"{total / wall / lib:.0%} of the encoder alone)")


if __name__ == "__main__":
    main()
