"""Flat token files (nanoGPT style): write once, read through ``numpy.memmap``.

A split is one binary file of token ids (``uint16`` when the vocabulary fits, else ``uint32``),
documents concatenated with ``<eos>`` after each. A ``meta.json`` beside the files records the
vocabulary size, dtype, token counts and special ids. Neither writing nor reading holds the
whole stream in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from lmforge.errors import DataError
from lmforge.fileio import atomic_file, write_text

META_FILE = "meta.json"
REQUIRED_META = ("vocab_size", "dtype")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype for the ids of a vocabulary: uint16 up to 65535, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.uint32)


BATCH_CHARS = 1 << 20
"""A batch of `pack_texts` ends after this many characters (or ``batch_size`` documents)."""


def _batches(texts: Iterable[str], size: int, max_chars: int = BATCH_CHARS) -> Iterator[list[str]]:
    """Lists of at most ``size`` texts, ended early once they hold ``max_chars`` characters (the
    tokenizer's output takes ~100 bytes per token: 1M characters make ~30 MB)."""
    batch: list[str] = []
    chars = 0
    for text in texts:
        batch.append(text)
        chars += len(text)
        if len(batch) >= size or chars >= max_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def pack_texts(
    texts: Iterable[str],
    tok: Tokenizer,
    out_path: str | os.PathLike,
    eos_id: int,
    batch_size: int = 1000,
    progress: bool = True,
) -> int:
    """Tokenize ``texts`` batch by batch and write ids + ``eos_id`` after each document.

    ``texts`` is read once, as a stream; a batch holds ``batch_size`` documents or `BATCH_CHARS`
    characters, whichever comes first, so memory does not grow with the corpus.

    The file is written to a temporary name and renamed into place, so ``out_path`` is either
    absent/old or complete. Returns the number of tokens written.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab_size)
    if not 0 <= eos_id < vocab_size:
        raise DataError(f"eos_id={eos_id} is outside the tokenizer vocabulary (size {vocab_size})")
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)  # no offsets: faster

    total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
    bar = tqdm(total=total, unit="doc", desc=f"pack {out_path.name}", disable=not progress)
    n_tokens = 0
    try:
        with atomic_file(out_path) as f:
            for batch in _batches(texts, batch_size):
                encodings = encode(batch, add_special_tokens=False)
                lengths = [len(e.ids) + 1 for e in encodings]
                chunk = np.empty(sum(lengths), dtype=dtype)
                pos = 0
                for enc, length in zip(encodings, lengths):
                    chunk[pos : pos + length - 1] = enc.ids
                    chunk[pos + length - 1] = eos_id
                    pos += length
                chunk.tofile(f)
                n_tokens += chunk.size
                bar.update(len(batch))
    finally:
        bar.close()
    return n_tokens


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def write_meta(directory: str | os.PathLike, **fields: Any) -> Path:
    """Write ``<directory>/meta.json`` atomically from ``fields``.

    Expected fields: vocab_size, dtype ("uint16"/"uint32"; numpy dtypes are converted),
    n_tokens ({"train": ..., "val": ...}), eos_id, pad_id, tokenizer (kind). Returns the path.
    """
    missing = [k for k in REQUIRED_META if k not in fields]
    if missing:
        raise ValueError(f"write_meta needs fields {missing}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / META_FILE
    write_text(path, json.dumps(_jsonable(fields), indent=2, sort_keys=True) + "\n")
    return path


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    """Read ``<directory>/meta.json``; DataError naming the file if missing or incomplete."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise DataError(f"token metadata not found: {path} (run the prepare stage first)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise DataError(f"{path}: missing keys {missing}")
    try:
        np.dtype(meta["dtype"])
    except TypeError as exc:
        raise DataError(f"{path}: dtype={meta['dtype']!r} is not a numpy dtype") from exc
    return meta


class TokenFile:
    """Read-only view of a flat token file through ``numpy.memmap``.

    ``len(tf)`` is the number of tokens, ``tf[a:b]`` a numpy view, ``tf.sample_blocks(...)`` and
    ``tf.block(...)`` return int64 windows of ``block_size + 1`` tokens (inputs + shifted
    targets). Pass ``block_size`` to check up front that the file is long enough.
    """

    def __init__(self, path: str | os.PathLike, dtype: str | np.dtype, block_size: int | None = None):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        if not self.path.is_file():
            raise DataError(f"token file not found: {self.path}")
        n_bytes = self.path.stat().st_size
        if n_bytes % self.dtype.itemsize:
            raise DataError(
                f"token file {self.path} has {n_bytes} bytes, not a multiple of the "
                f"{self.dtype.name} item size {self.dtype.itemsize} (wrong dtype in meta.json?)"
            )
        self._len = n_bytes // self.dtype.itemsize
        # numpy cannot map an empty file; an empty array reads the same.
        self._data = np.memmap(self.path, dtype=self.dtype, mode="r") if self._len else np.empty(0, self.dtype)
        if block_size is not None:
            self._check(block_size)

    def __len__(self) -> int:
        return self._len

    # Pickle (e.g. to DataLoader worker processes) as the path, not as the mapped data.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_data"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._data = np.memmap(self.path, dtype=self.dtype, mode="r") if self._len else np.empty(0, self.dtype)

    def __getitem__(self, index):
        return self._data[index]

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r}, dtype={self.dtype.name}, tokens={self._len})"

    def _check(self, block_size: int) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        if self._len < block_size + 1:
            raise DataError(
                f"token file {self.path} has {self._len} tokens, fewer than block_size + 1 = "
                f"{block_size + 1}: use a smaller block size or more data"
            )

    def num_blocks(self, block_size: int) -> int:
        """How many non-overlapping windows `block` can return."""
        self._check(block_size)
        return (self._len - 1) // block_size

    def block(self, i: int, block_size: int) -> np.ndarray:
        """The i-th non-overlapping window: tokens ``[i*block_size, (i+1)*block_size + 1)``."""
        n = self.num_blocks(block_size)
        if not -n <= i < n:
            raise IndexError(f"block {i} out of range for {n} blocks of {block_size} in {self.path}")
        start = (i % n) * block_size
        return np.asarray(self._data[start : start + block_size + 1], dtype=np.int64)

    def sample_blocks(self, n: int, block_size: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random windows of ``block_size + 1`` tokens, shape ``[n, block_size + 1]``, int64."""
        self._check(block_size)
        starts = rng.integers(0, self._len - block_size, size=n)
        index = starts[:, None] + np.arange(block_size + 1)
        return self._data[index].astype(np.int64)
