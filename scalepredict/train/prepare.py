"""Real corpora for sweeps: a Hugging Face dataset (a hub name, or local parquet/jsonl/arrow files read by the same
`datasets` calls) tokenized once, with a `tokenizers` tokenizer.json, a `transformers` tokenizer or one of
tiktoken's encodings, into memory-mapped token files (nanoGPT's layout: train.bin and val.bin, uint16 where the
vocabulary fits, else uint32) with a manifest.json beside them.

- The validation split is made by documents: a document goes to validation where the SHA-256 of its text falls in
  the lowest `val_fraction` of the hash range, so no validation document is ever trained on, and the split does
  not depend on the order or number of documents. Documents are separated by the tokenizer's end-of-text token
  where it has one.
- Tokenizing is batched through the tokenizer's own parallel batch encoder (every core), shard by shard: a shard
  of documents is written whole (through a temporary file and a rename) with a marker, so an interrupted prepare
  resumes at the first shard it had not finished. A progress bar shows tokens/s, and the ETA where the dataset's
  size is known.
- The token folder is named by a digest of the inputs (the files' paths, sizes, times and first megabyte; or the
  hub dataset's name, config and split), the tokenizer (its own digest), the text column and the split settings: a
  second prepare with the same inputs and tokenizer finds its manifest and reuses the files.
- The manifest records the tokenizer and its digest, the vocabulary, the end-of-text token, and per split the
  documents, tokens and UTF-8 bytes (tokens per byte: the loss in bits per byte, comparable across tokenizers).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_write_json, folder_lock, read_json_object
from .tokenizer import load_tokenizer

MANIFEST = "manifest.json"
FORMAT = 1  # the token folder's layout; a change makes a new folder, never reuses an old one
SHARD_DOCS = 2048  # documents per shard (the unit of resuming)
LOCAL = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow"}
HASH_SPAN = 1 << 64


@dataclass
class Prepared:
    """A prepared corpus: its folder, manifest and token files."""

    folder: Path
    manifest: dict

    @property
    def train(self) -> Path:
        return self.folder / "train.bin"

    @property
    def val(self) -> Path:
        return self.folder / "val.bin"


def cache_root(data) -> Path:
    """Where token folders go: [data] cache, else $SCALEPREDICT_CACHE, else ~/.cache/scalepredict/tokens."""
    if data.cache:
        return Path(data.cache).expanduser()
    env = os.environ.get("SCALEPREDICT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scalepredict" / "tokens"


def local_files(spec: str) -> list[Path] | None:
    """The local files a dataset spec names (a file, a folder of them, or a glob), sorted; None for a hub name."""
    p = Path(spec).expanduser()
    if p.is_file():
        files = [p]
    elif p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in LOCAL)
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
    else:
        return None
    if not files:
        raise InputError(f"[data] dataset {spec}: no parquet, jsonl or arrow files there")
    kinds = {LOCAL.get(f.suffix.lower()) for f in files}
    if None in kinds or len(kinds) > 1:
        raise InputError(f"[data] dataset {spec}: expected files of one kind among .parquet, .jsonl/.json, .arrow "
                         f"(got {', '.join(sorted({f.suffix or f.name for f in files}))})")
    return files


def _file_digest(f: Path) -> list:
    st = f.stat()
    with open(f, "rb") as fh:
        head = hashlib.sha256(fh.read(1 << 20)).hexdigest()
    return [str(f.resolve()), st.st_size, st.st_mtime_ns, head]


def corpus_key(data, tok) -> tuple[str, dict]:
    """The digest that names a token folder, and what it was made from."""
    files = local_files(data.dataset)
    inputs = {"files": [_file_digest(f) for f in files]} if files else \
        {"hub": data.dataset, "config": data.dataset_config, "split": data.split}
    what = {"format": FORMAT, "inputs": inputs, "text_column": data.text_column, "tokenizer": tok.digest,
            "val_fraction": data.val_fraction, "max_tokens": data.max_tokens}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest(), what


def documents(data):
    """(an iterator over the documents' texts, their number or None where the dataset streams)."""
    try:
        import datasets
    except ImportError:
        raise InputError("[data] source = \"hf\" needs the datasets package: pip install 'scalepredict[data]'") \
            from None
    files = local_files(data.dataset)
    try:
        if files:  # datasets' own Arrow cache of local files goes beside the token folders, not into ~/.cache
            ds = datasets.load_dataset(LOCAL[files[0].suffix.lower()], data_files=[str(f) for f in files],
                                       split="train", cache_dir=str(cache_root(data) / "datasets"))
        else:
            ds = datasets.load_dataset(data.dataset, data.dataset_config, split=data.split, streaming=True)
    except (FileNotFoundError, ValueError, OSError, ConnectionError) as e:
        raise InputError(f"[data] dataset {data.dataset}: cannot be loaded ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    except Exception as e:  # datasets' own errors: a corrupt file, a missing config, no network for a hub name
        raise InputError(f"[data] dataset {data.dataset}: cannot be loaded ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    columns = list(ds.column_names or []) if getattr(ds, "column_names", None) else None
    if columns is not None and data.text_column not in columns:
        raise InputError(f"[data] text_column {data.text_column!r}: not a column of {data.dataset} (columns: "
                         f"{', '.join(columns)})")

    def texts():
        for i, row in enumerate(ds):
            text = row.get(data.text_column)
            if not isinstance(text, str):
                raise InputError(f"[data] dataset {data.dataset}, document {i}: {data.text_column!r} is "
                                 f"{type(text).__name__}, not text")
            yield text

    return texts(), (len(ds) if files else None)


def is_validation(text: str, fraction: float) -> bool:
    """Whether a document belongs to validation: the SHA-256 of its text in the lowest `fraction` of the range."""
    h = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    return h < fraction * HASH_SPAN


def prepare(data, echo=print, progress: bool = True) -> Prepared:
    """The corpus of a `[data] source = "hf"` config as token files: reused where a manifest of the same inputs and
    tokenizer exists, else made (resuming an interrupted prepare shard by shard)."""
    tok = load_tokenizer(data.tokenizer)
    key, what = corpus_key(data, tok)
    folder = cache_root(data) / key[:16]
    manifest = _manifest_if_done(folder, key)
    if manifest is not None:
        echo(f"prepare: reusing {folder} ({manifest['tokens']['train']:,} train / {manifest['tokens']['val']:,} "
             f"validation tokens)")
        return Prepared(folder, manifest)
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder):
        manifest = _manifest_if_done(folder, key)  # another process finished it while this one waited
        if manifest is None:
            manifest = _tokenize(data, tok, key, what, folder, echo, progress)
    return Prepared(folder, manifest)


def _manifest_if_done(folder: Path, key: str) -> dict | None:
    if not (folder / MANIFEST).is_file():
        return None
    m = read_json_object(folder / MANIFEST, "a corpus manifest (manifest.json)")
    return m if m.get("key") == key and (folder / "train.bin").is_file() and (folder / "val.bin").is_file() else None


def _tokenize(data, tok, key, what, folder: Path, echo, progress) -> dict:
    from tqdm.auto import tqdm

    texts, total = documents(data)
    shards = folder / "shards"
    shards.mkdir(exist_ok=True)
    dtype = np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32
    done = {int(p.stem.split(".")[0]) for p in shards.glob("*.done")}
    if done:
        echo(f"prepare: resuming {folder} at shard {len(done)} ({len(done) * SHARD_DOCS:,} documents done)")
    bar = tqdm(total=total, unit="doc", desc="tokenizing", disable=not progress, dynamic_ncols=True)
    t0, tokens_now, batch, index, counts = time.time(), 0, [], 0, []
    for text in texts:
        batch.append(text)
        if len(batch) == SHARD_DOCS:
            tokens_now += _shard(index, batch, tok, data, shards, dtype, index in done, counts)
            index, batch = index + 1, []
            bar.update(SHARD_DOCS)
            bar.set_postfix(tokens_per_s=f"{tokens_now / max(time.time() - t0, 1e-9):,.0f}")
            if data.max_tokens and sum(c["tokens"]["train"] + c["tokens"]["val"] for c in counts) >= data.max_tokens:
                batch = []
                break
    if batch:
        tokens_now += _shard(index, batch, tok, data, shards, dtype, index in done, counts)
        bar.update(len(batch))
    bar.close()
    manifest = _concatenate(folder, shards, counts, dtype, tok, key, what, data)
    echo(f"prepare: {folder}: {manifest['documents']['train']:,} train / {manifest['documents']['val']:,} validation "
         f"documents, {manifest['tokens']['train']:,} / {manifest['tokens']['val']:,} tokens "
         f"({tokens_now / max(time.time() - t0, 1e-9):,.0f} tokens/s)")
    return manifest


def _shard(index, texts, tok, data, shards: Path, dtype, done: bool, counts: list) -> int:
    """Tokenize one shard (or read back its counts where an earlier prepare finished it); tokens made now."""
    marker = shards / f"{index:06d}.done"
    if done:
        counts.append(read_json_object(marker, "a shard marker"))
        return 0
    ids = tok.encode_batch(texts)
    out = {"train": [], "val": []}
    c = {"documents": {"train": 0, "val": 0}, "tokens": {"train": 0, "val": 0}, "bytes": {"train": 0, "val": 0}}
    for text, doc in zip(texts, ids):
        split = "val" if is_validation(text, data.val_fraction) else "train"
        if tok.eot is not None:
            doc = list(doc) + [tok.eot]
        out[split].append(np.asarray(doc, dtype=dtype))
        c["documents"][split] += 1
        c["tokens"][split] += len(doc)
        c["bytes"][split] += len(text.encode("utf-8", "surrogatepass"))
    for split, arrays in out.items():
        tmp = shards / f".{index:06d}.{split}.tmp"
        (np.concatenate(arrays) if arrays else np.empty(0, dtype)).tofile(tmp)
        os.replace(tmp, shards / f"{index:06d}.{split}.bin")
    atomic_write_json(marker, c)
    counts.append(c)
    return c["tokens"]["train"] + c["tokens"]["val"]


def _concatenate(folder: Path, shards: Path, counts, dtype, tok, key, what, data) -> dict:
    """train.bin and val.bin from the shards, then the manifest (written last: it marks the folder complete)."""
    totals = {k: {s: sum(c[k][s] for c in counts) for s in ("train", "val")} for k in ("documents", "tokens", "bytes")}
    if totals["documents"]["val"] == 0 or totals["documents"]["train"] == 0:
        raise InputError(f"[data] dataset {data.dataset}: {totals['documents']['train']} train and "
                         f"{totals['documents']['val']} validation documents with val_fraction {data.val_fraction:g}; "
                         f"both splits need documents (raise val_fraction, or give more documents)")
    for split in ("train", "val"):
        tmp = folder / f".{split}.bin.tmp"
        with open(tmp, "wb") as out:
            for i in range(len(counts)):
                with open(shards / f"{i:06d}.{split}.bin", "rb") as f:
                    while chunk := f.read(1 << 24):
                        out.write(chunk)
        os.replace(tmp, folder / f"{split}.bin")
    manifest = {"key": key, "format": FORMAT, "made_from": what, "dataset": data.dataset,
                "text_column": data.text_column, "tokenizer": {"spec": data.tokenizer, "digest": tok.digest,
                                                                "vocab_size": tok.vocab_size, "eot": tok.eot},
                "dtype": np.dtype(dtype).name, "val_fraction": data.val_fraction, **totals,
                "tokens_per_byte": {s: totals["tokens"][s] / max(totals["bytes"][s], 1) for s in ("train", "val")},
                "train": str(folder / "train.bin"), "val": str(folder / "val.bin")}
    atomic_write_json(folder / MANIFEST, manifest)
    for p in shards.iterdir():
        p.unlink()
    shards.rmdir()
    return manifest
