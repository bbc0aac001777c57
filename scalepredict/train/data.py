"""Training data: a token stream for training and a disjoint one for validation, with a fingerprint of the exact
bytes so a sweep records what it trained on.

Sources:
- `stdlib` (the default): the Python standard library's own source (*.py) of the running interpreter, byte-level
  tokens (vocab 256). Present on every machine that runs the tool, no download. Split by file: a file goes to
  validation when the SHA-256 of its relative path, as an integer, is 0 mod 20 (about 5%), so no validation file
  is ever trained on and the split does not depend on file order or sizes.
- `text`: a UTF-8 text file or a folder of text files, byte-level; a folder is split by file as above, a single
  file keeps its last 5% for validation.
- `tokens`: pre-tokenized ids, nanoGPT layout: a folder with train.bin and val.bin (uint16 by default, or
  uint32), or one .bin/.npy file whose last 5% is validation; `vocab_size` is required.
- `synthetic`: a small deterministic corpus (a seeded Markov chain over a word list) for tests.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..errors import InputError
from .prepare import prepare

VAL_MODULUS = 20  # 1 file in 20 goes to validation
TEXT_SUFFIXES = {".txt", ".md", ".py", ".rst", ".json", ".jsonl", ".csv", ".html", ".c", ".h", ".js", ".tex"}


@dataclass
class Corpus:
    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    fingerprint: str
    description: str
    tokens_per_byte: float | None = 1.0  # of the validation text: the loss in bits per byte (None: unknown)
    files: dict | None = None  # the token files behind train and val ({"train", "val", "dir"}), where there are

    def as_dict(self) -> dict:
        return {"description": self.description, "vocab_size": self.vocab_size, "fingerprint": self.fingerprint,
                "train_tokens": int(len(self.train)), "val_tokens": int(len(self.val)),
                "tokens_per_byte": self.tokens_per_byte}


def _is_val(relpath: str) -> bool:
    return int.from_bytes(hashlib.sha256(relpath.encode()).digest()[:8], "big") % VAL_MODULUS == 0


def _split_files(root: Path, files: list[Path], description: str) -> Corpus:
    h = hashlib.sha256()
    train, val = [], []
    for p in files:
        rel = p.relative_to(root).as_posix()
        data = p.read_bytes()
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
        (val if _is_val(rel) else train).append(data)
    if not val or not train:
        raise InputError(f"{root}: too few files to split into train and validation ({len(files)} files)")
    return Corpus(np.frombuffer(b"".join(train), dtype=np.uint8), np.frombuffer(b"".join(val), dtype=np.uint8), 256,
                  h.hexdigest(), description)


def stdlib_corpus() -> Corpus:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in sorted(root.rglob("*.py")) if not p.relative_to(root).as_posix().startswith("site-packages/")]
    if not files:
        raise InputError(f"{root}: no Python standard-library sources found for the default corpus")
    return _split_files(root, files, f"Python {sysconfig.get_python_version()} standard library sources ({root}), "
                                     f"bytes")


def text_corpus(path) -> Corpus:
    path = Path(path)
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES]
        if not files:
            raise InputError(f"{path}: no text files ({', '.join(sorted(TEXT_SUFFIXES))}) in the folder")
        return _split_files(path, files, f"text files under {path}, bytes")
    if not path.is_file():
        raise InputError(f"{path}: data path does not exist")
    data = path.read_bytes()
    if len(data) < 10_000:
        raise InputError(f"{path}: only {len(data)} bytes, too little text to train on")
    cut = int(len(data) * 0.95)
    return Corpus(np.frombuffer(data[:cut], np.uint8), np.frombuffer(data[cut:], np.uint8), 256,
                  hashlib.sha256(data).hexdigest(), f"{path}, bytes, last 5% held out")


def _read_tokens(path: Path, dtype: str) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            arr = np.load(path, mmap_mode="r")
            if arr.ndim != 1 or arr.dtype.kind not in "ui":
                raise InputError(f"{path}: expected a 1-D integer token array, got {arr.dtype} {arr.shape}")
            return arr
        size = path.stat().st_size
        width = np.dtype(dtype).itemsize
        if size == 0 or size % width:
            raise InputError(f"{path}: {size} bytes is not a whole number of {dtype} tokens (corrupt or wrong dtype)")
        return np.memmap(path, dtype=dtype, mode="r")
    except (ValueError, OSError) as e:
        raise InputError(f"{path}: cannot read tokens ({e})") from None


def token_corpus(path, vocab_size: int | None, dtype: str = "uint16") -> Corpus:
    path = Path(path)
    if not vocab_size:
        raise InputError(f"{path}: pre-tokenized data needs data.vocab_size in the config")
    if dtype not in ("uint16", "uint32"):
        raise InputError(f"data.dtype must be uint16 or uint32, got {dtype!r}")
    if path.is_dir():
        tr, va = path / "train.bin", path / "val.bin"
        if not (tr.is_file() and va.is_file()):
            raise InputError(f"{path}: expected train.bin and val.bin (nanoGPT layout)")
        train, val = _read_tokens(tr, dtype), _read_tokens(va, dtype)
        files = (tr, va)
    elif path.is_file():
        arr = _read_tokens(path, dtype)
        cut = int(len(arr) * 0.95)
        train, val, files = arr[:cut], arr[cut:], (path,)
    else:
        raise InputError(f"{path}: data path does not exist")
    for name, arr in (("train", train), ("val", val)):
        hi = int(np.max(arr[: 1 << 22])) if len(arr) else 0
        if hi >= vocab_size:
            raise InputError(f"{path}: {name} token id {hi} >= vocab_size {vocab_size} (corrupt or wrong dtype)")
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    paired = {"train": str(files[0]), "val": str(files[1]), "dir": str(path)} if len(files) == 2 else None
    return Corpus(train, val, int(vocab_size), h.hexdigest(), f"{path}, {dtype} tokens", None, paired)


def synthetic_corpus(n_bytes: int = 400_000, seed: int = 0) -> Corpus:
    """A seeded first-order Markov chain over a small vocabulary of words: learnable, deterministic, tiny."""
    rng = np.random.default_rng(seed)
    words = [w.encode() for w in ("the model loss scales with compute and data while tokens flow through "
                                  "layers of attention def return self import for in if else").split()]
    nxt = rng.dirichlet(np.full(len(words), 0.3), size=len(words))
    out, w = bytearray(), 0
    while len(out) < n_bytes:
        out += words[w] + (b"\n" if rng.random() < 0.1 else b" ")
        w = rng.choice(len(words), p=nxt[w])
    data = bytes(out[:n_bytes])
    cut = int(n_bytes * 0.9)
    return Corpus(np.frombuffer(data[:cut], np.uint8), np.frombuffer(data[cut:], np.uint8), 256,
                  hashlib.sha256(data).hexdigest(), f"synthetic Markov text, seed {seed}, {n_bytes} bytes")


def hf_corpus(data, echo=print) -> Corpus:
    """A Hugging Face dataset, tokenized once (prepare.py) and read back as memory-mapped token files."""
    prepared = prepare(data, echo=echo, progress=False)
    m = prepared.manifest
    dtype = m["dtype"]
    train, val = (np.memmap(p, dtype=dtype, mode="r") for p in (prepared.train, prepared.val))
    return Corpus(train, val, int(m["tokenizer"]["vocab_size"]), m["key"],
                  f"{data.dataset} ({m['documents']['train']:,} + {m['documents']['val']:,} documents) tokenized by "
                  f"{data.tokenizer} ({prepared.folder})", float(m["tokens_per_byte"]["val"]),
                  {"train": str(prepared.train), "val": str(prepared.val), "dir": str(prepared.folder)})


def load_corpus(spec, echo=print) -> Corpus:
    """The corpus a [data] section names (a DataConfig, or its fields as a dict)."""
    if not isinstance(spec, dict):
        spec = dict(spec.__dict__)
    kind = spec.get("source", "stdlib")
    if kind == "hf":
        return hf_corpus(DataConfig(**spec), echo)
    if kind == "stdlib":
        return stdlib_corpus()
    if kind == "synthetic":
        return synthetic_corpus(int(spec.get("size", 400_000)), int(spec.get("seed", 0)))
    if "path" not in spec:
        raise InputError(f"data.source = {kind!r} needs data.path")
    if kind == "text":
        return text_corpus(spec["path"])
    if kind == "tokens":
        return token_corpus(spec["path"], spec.get("vocab_size"), spec.get("dtype", "uint16"))
    raise InputError(f"data.source must be stdlib, text, tokens, synthetic or hf, got {kind!r}")


def token_files(corpus: Corpus, folder: Path) -> dict:
    """The corpus as token files an external trainer can read ({"train", "val", "dir"}): its own where it has them
    (a prepared or nanoGPT corpus), else written once into `folder` (uint16 or uint32, nanoGPT's layout)."""
    if corpus.files:
        return corpus.files
    folder.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if corpus.vocab_size <= 1 << 16 else np.uint32
    for name, arr in (("train", corpus.train), ("val", corpus.val)):
        path = folder / f"{name}.bin"
        if not path.exists() or path.stat().st_size != len(arr) * np.dtype(dtype).itemsize:
            tmp = folder / f".{name}.bin.tmp"
            np.asarray(arr, dtype=dtype).tofile(tmp)
            os.replace(tmp, path)
    return {"train": str(folder / "train.bin"), "val": str(folder / "val.bin"), "dir": str(folder)}


def get_batch(data: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator):
    """Random windows of seq_len + 1 tokens: inputs and next-token targets (int64 numpy arrays)."""
    if len(data) <= seq_len + 1:
        raise InputError(f"training data has {len(data)} tokens, fewer than one sequence of {seq_len + 1}")
    starts = rng.integers(0, len(data) - seq_len - 1, size=batch_size)
    idx = starts[:, None] + np.arange(seq_len + 1)
    chunk = np.asarray(data[idx], dtype=np.int64)
    return np.ascontiguousarray(chunk[:, :-1]), np.ascontiguousarray(chunk[:, 1:])


def val_windows(data: np.ndarray, n_tokens: int, seq_len: int) -> np.ndarray:
    """A fixed set of validation windows (ceil(n_tokens / seq_len), evenly spaced over the validation stream):
    every run of a sweep is scored on exactly the same tokens."""
    n = max(1, -(-n_tokens // seq_len))
    if len(data) <= seq_len + 1:
        raise InputError(f"validation data has {len(data)} tokens, fewer than one sequence of {seq_len + 1}")
    starts = np.linspace(0, len(data) - seq_len - 1, n).astype(np.int64)
    return np.asarray(data[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int64)
