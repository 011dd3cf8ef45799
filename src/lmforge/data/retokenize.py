"""A packed corpus re-packed with another tokenizer: a checkpoint brings its own tokenizer, while
the prepare stage packed the corpus with lmforge's. Each packed document (between two `<eos>`) is
decoded with the prepare tokenizer and packed again with the checkpoint's, once, into a cache keyed
by both (`<cache>/<hash>/`: the same flat files + meta.json). Decoding is exact for the default
byte-level BPE; WordPiece and char tokenizers lose some whitespace / unknown characters."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lmforge.data.packing import TokenFile, pack_texts, read_meta, token_dtype, write_meta
from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.fileio import atomic_dir

log = logging.getLogger("lmforge")


def documents(tokens: TokenFile, eos_id: int, chunk: int = 1 << 20) -> Iterator[np.ndarray]:
    """The documents of a packed token file (the ids between `<eos>`s), reading `chunk` at a time."""
    rest = np.empty(0, dtype=tokens.dtype)
    for start in range(0, len(tokens), chunk):
        block = np.concatenate([rest, np.asarray(tokens[start : start + chunk])])
        ends = np.flatnonzero(block == eos_id)
        prev = 0
        for e in ends:
            yield block[prev:e]
            prev = e + 1
        rest = block[prev:]
    if len(rest):
        yield rest


def retokenized(tokens_dir: Path, source_tok: Path, target_tok: Path, cache: Path) -> Path:
    """The packed corpus of `tokens_dir` (tokenizer `source_tok`) re-packed with `target_tok`;
    built once into `cache/<hash of both>/`, atomically."""
    meta = read_meta(tokens_dir)
    h = hashlib.sha256((tokens_dir / "meta.json").read_bytes())
    for split in ("train", "val"):
        h.update(str((tokens_dir / f"{split}.bin").stat().st_size).encode())
    h.update((Path(source_tok) / "tokenizer.json").read_bytes())
    h.update((Path(target_tok) / "tokenizer.json").read_bytes())
    out = cache / h.hexdigest()[:16]
    if (out / "meta.json").is_file():
        return out
    src, dst = load_tokenizer(source_tok), load_tokenizer(target_tok)
    ids = special_ids(dst)
    vocab = dst.get_vocab_size(with_added_tokens=True)
    log.info("re-tokenizing the corpus with %s into %s", target_tok, out)

    def texts(split: str) -> Iterator[str]:
        docs = documents(TokenFile(tokens_dir / f"{split}.bin", meta["dtype"]), meta["eos_id"])
        while batch := [d.tolist() for _, d in zip(range(1000), docs)]:
            yield from src.decode_batch(batch)

    with atomic_dir(out) as tmp:
        n_tokens = {
            split: pack_texts(texts(split), dst, tmp / f"{split}.bin", ids["eos"], progress=False)
            for split in ("train", "val")
        }
        write_meta(
            tmp,
            vocab_size=vocab,
            dtype=token_dtype(vocab),
            n_tokens=n_tokens,
            eos_id=ids["eos"],
            pad_id=ids["pad"],
            tokenizer=str(target_tok),
            source=str(tokens_dir),
        )
    return out
