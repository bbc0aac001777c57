"""The tokenizers a corpus can be prepared with, behind one face (`encode_batch`, `vocab_size`, `eot`, `digest`):
a Hugging Face `tokenizers` tokenizer.json, a `transformers` tokenizer (a folder or a hub name), or one of
tiktoken's encodings (`tiktoken:NAME`). Each encodes a batch of documents on every core (the tokenizers' own
parallel batch encoders) and has a digest of its vocabulary and merges, so a token folder is reused only with the
same tokenizer."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InputError

EOT_NAMES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "[SEP]", "<|im_end|>")


@dataclass
class Tok:
    name: str
    encode_batch: Callable[[list[str]], list[list[int]]]
    vocab_size: int
    eot: int | None  # the end-of-text token put between documents, where the tokenizer has one
    digest: str


def load_tokenizer(spec: str | None) -> Tok:
    if not spec:
        raise InputError("[data] source = \"hf\" needs [data] tokenizer: a tokenizer.json path, a transformers "
                         "tokenizer name or folder, or tiktoken:NAME")
    if spec.startswith("tiktoken:"):
        return _tiktoken(spec.split(":", 1)[1])
    p = Path(spec).expanduser()
    if p.is_file():
        return _tokenizer_json(p)
    return _transformers(spec)


def _tokenizer_json(path: Path) -> Tok:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise InputError("a tokenizer.json needs the tokenizers package: pip install 'scalepredict[data]'") from None
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust library raises its own exception type on a bad file
        raise InputError(f"{path}: not a tokenizers tokenizer.json ({str(e).splitlines()[0] if str(e) else e})") \
            from None
    eot = next((tok.token_to_id(t) for t in EOT_NAMES if tok.token_to_id(t) is not None), None)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    def encode_batch(texts):
        return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]

    return Tok(f"tokenizers:{path.name}", encode_batch, tok.get_vocab_size(with_added_tokens=True), eot, digest)


def _transformers(name: str) -> Tok:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise InputError(f"tokenizer {name!r}: not a file; a transformers tokenizer name needs the transformers "
                         f"package (pip install transformers), or give a tokenizer.json path or tiktoken:NAME") \
            from None
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise InputError(f"tokenizer {name!r}: cannot be loaded ({str(e).splitlines()[0]})") from None
    backend = getattr(tok, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tok.get_vocab().items()))
    digest = hashlib.sha256(text.encode()).hexdigest()

    def encode_batch(texts):
        return tok(texts, add_special_tokens=False)["input_ids"]

    return Tok(f"transformers:{name}", encode_batch, len(tok), tok.eos_token_id, digest)


def _tiktoken(name: str) -> Tok:
    try:
        import tiktoken
    except ImportError:
        raise InputError("tiktoken:NAME needs the tiktoken package: pip install 'scalepredict[data]'") from None
    try:
        enc = tiktoken.get_encoding(name)
    except (ValueError, KeyError) as e:
        raise InputError(f"tokenizer tiktoken:{name}: unknown encoding ({e})") from None
    except Exception as e:  # no network to fetch its BPE file, and no cached copy
        raise InputError(f"tokenizer tiktoken:{name}: cannot be loaded ({type(e).__name__}: {e})") from None
    h = hashlib.sha256(name.encode())
    for token, rank in sorted(enc._mergeable_ranks.items(), key=lambda kv: kv[1]):
        h.update(token + rank.to_bytes(4, "big"))
    threads = os.cpu_count() or 1

    def encode_batch(texts):
        return enc.encode_ordinary_batch(texts, num_threads=threads)

    return Tok(f"tiktoken:{name}", encode_batch, enc.n_vocab, enc.eot_token, h.hexdigest())
