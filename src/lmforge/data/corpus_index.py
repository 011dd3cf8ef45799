"""A corpus index on disk: which documents, sentences and word n-grams a corpus holds.

The prepare stage writes it once while the corpus streams past (`CorpusIndexWriter`); any later
stage opens it read-only (`CorpusIndex`) to ask whether a text is a corpus document or sentence,
or how much of an evaluation set shares word n-grams with the corpus (test-set contamination).

What is hashed (every hash is 64 bits, little-endian ``blake2b`` digests: stable across
processes and machines, unlike ``hash()``):

- a document: ``blake2b(text)`` of its exact text;
- a sentence: the same, of each sentence the caller gives with the document (the synthetic world
  knows its sentences; for other corpora the caller gives none and no sentence is recorded, so
  `CorpusIndex.has_sentence` refuses to answer rather than say "no");
- word n-grams: the words are the lowercased, whitespace-separated tokens of a document; each
  word is hashed once, and an n-gram's hash is a polynomial combination of its word hashes
  modulo 2**64. N-grams never span two documents.

Memory stays bounded whatever the corpus size: hashes are buffered in chunks of a fixed size
(``chunk_size``); a full chunk is sorted, made unique and saved (``np.save``) as one file, so a
large corpus gives many sorted chunk files, each read memory-mapped and binary-searched at query
time (chunks are not merged: a query costs one binary search per chunk). ``meta.json`` names the
chunk files; it is written last, by `CorpusIndexWriter.close`, so an index without it is
incomplete and refused.

Collisions: two different texts share a 64-bit hash with probability 2**-64, so a query hash
matches one of N stored hashes by accident with probability about N / 2**64 — about 1e-10 for
the 2e9 n-grams of a 10 GB corpus. Answers can be wrong by that much (always towards "found").
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lmforge.errors import DataError
from lmforge.fileio import write_text

META_FILE = "meta.json"
VERSION = 1
KINDS = ("documents", "sentences", "ngrams")
CHUNK_SIZE = 1 << 21  # hashes per chunk file: 16 MB buffered per kind at most
_QUERY_BATCH = 1 << 20  # n-gram hashes looked up together by `CorpusIndex.overlap`
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio)
_WORD_CACHE = 1 << 18  # word hashes remembered before the cache is cleared (bounded memory)


def text_hash(text: str) -> int:
    """The 64-bit hash of a document's or a sentence's exact text."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class NgramHasher:
    """``hasher(text)``: the uint64 hashes of every word ``n``-gram of ``text``, in order."""

    def __init__(self, n: int):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        self.n = n
        self._words: dict[str, int] = {}

    def _word(self, word: str) -> int:
        h = self._words.get(word)
        if h is None:
            if len(self._words) >= _WORD_CACHE:
                self._words.clear()
            h = self._words[word] = text_hash(word)
        return h

    def __call__(self, text: str) -> np.ndarray:
        words = text.lower().split()
        count = len(words) - self.n + 1
        if count <= 0:
            return np.empty(0, dtype=np.uint64)
        w = np.fromiter((self._word(x) for x in words), dtype=np.uint64, count=len(words))
        h = np.zeros(count, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(self.n):
                h = h * _MULTIPLIER + w[k : k + count]
        return h


class _ChunkedSet:
    """Hashes of one kind, buffered up to ``chunk_size`` and saved as sorted unique chunks."""

    def __init__(self, directory: Path, kind: str, chunk_size: int):
        self.directory, self.kind = directory, kind
        self.buffer = np.empty(chunk_size, dtype=np.uint64)  # pages are touched only as filled
        self.filled = 0
        self.added = 0
        self.stored = 0
        self.files: list[str] = []

    def add(self, hashes: np.ndarray) -> None:
        self.added += hashes.size
        while hashes.size:
            take = min(hashes.size, self.buffer.size - self.filled)
            self.buffer[self.filled : self.filled + take] = hashes[:take]
            self.filled += take
            hashes = hashes[take:]
            if self.filled == self.buffer.size:
                self.flush()

    def flush(self) -> None:
        if not self.filled:
            return
        chunk = self.buffer[: self.filled]
        chunk.sort()
        keep = np.empty(chunk.size, dtype=bool)
        keep[0] = True
        np.not_equal(chunk[1:], chunk[:-1], out=keep[1:])
        name = f"{self.kind}-{len(self.files):05d}.npy"
        np.save(self.directory / name, chunk[keep])
        self.stored += int(np.count_nonzero(keep))
        self.files.append(name)
        self.filled = 0


class CorpusIndexWriter:
    """Write the index of a corpus into ``directory``, one `add` per document, then `close`.

    Use as a context manager: it closes on success; on an exception it leaves no ``meta.json``
    (the index reads as incomplete). Memory: at most ``chunk_size`` hashes per kind (8 bytes
    each) plus the word-hash cache, whatever the corpus size.
    """

    def __init__(self, directory: str | os.PathLike, n: int = 13, chunk_size: int = CHUNK_SIZE):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.directory / META_FILE).exists():
            raise FileExistsError(f"{self.directory} already holds a corpus index")
        self.n = n
        self._hasher = NgramHasher(n)
        self._sets = {kind: _ChunkedSet(self.directory, kind, chunk_size) for kind in KINDS}
        self._docs_with_sentences = 0
        self._closed = False

    def add(self, doc: str, sentences: Iterable[str] | None = None, ngrams: bool = True) -> None:
        """Record ``doc`` (its text and, unless ``ngrams`` is False, its n-grams) and, when given,
        its ``sentences``. A validation document is recorded without n-grams: the leak checks cover
        the whole corpus, the contamination measure what pretraining learns from."""
        if self._closed:
            raise ValueError("the corpus index writer is closed")
        self._sets["documents"].add(np.array([text_hash(doc)], dtype=np.uint64))
        if ngrams:
            self._sets["ngrams"].add(self._hasher(doc))
        if sentences is not None:
            self._docs_with_sentences += 1
            self._sets["sentences"].add(np.fromiter((text_hash(s) for s in sentences), dtype=np.uint64))

    def close(self) -> dict:
        """Save the last chunks and ``meta.json``; returns the meta."""
        if self._closed:
            raise ValueError("the corpus index writer is already closed")
        for chunked in self._sets.values():
            chunked.flush()
            chunked.buffer = np.empty(0, dtype=np.uint64)
        self._closed = True
        meta = {
            "version": VERSION,
            "n": self.n,
            "hash": "blake2b-64",
            "documents": self._sets["documents"].added,
            "docs_with_sentences": self._docs_with_sentences,
            "added": {kind: s.added for kind, s in self._sets.items()},
            "stored": {kind: s.stored for kind, s in self._sets.items()},
            "chunks": {kind: s.files for kind, s in self._sets.items()},
        }
        write_text(self.directory / META_FILE, json.dumps(meta, indent=2) + "\n")
        return meta

    def __enter__(self) -> CorpusIndexWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._closed:
            self.close()


class CorpusIndex:
    """Read-only view of an index written by `CorpusIndexWriter` (chunks memory-mapped)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        path = self.directory / META_FILE
        if not path.is_file():
            raise DataError(f"corpus index not found or incomplete: no {path} (run the prepare stage)")
        try:
            self.meta = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        if self.meta.get("version") != VERSION:
            raise DataError(f"{path}: corpus index version {self.meta.get('version')!r}, expected {VERSION}")
        self.n = int(self.meta["n"])
        self._chunks = {kind: [self._load(name) for name in self.meta["chunks"][kind]] for kind in KINDS}
        self._hasher = NgramHasher(self.n)

    def _load(self, name: str) -> np.ndarray:
        path = self.directory / name
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read corpus index chunk {path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"CorpusIndex({str(self.directory)!r}, n={self.n}, documents={self.meta['documents']})"

    def _contains(self, kind: str, hashes: np.ndarray) -> np.ndarray:
        """A bool per hash: is it in the index's ``kind`` set."""
        keys, inverse = np.unique(hashes, return_inverse=True)  # sorted keys: cache-friendly search
        found = np.zeros(keys.size, dtype=bool)
        for chunk in self._chunks[kind]:
            if not keys.size:
                break
            pos = np.searchsorted(chunk, keys).clip(max=chunk.size - 1)
            found |= np.asarray(chunk[pos]) == keys
        return found[inverse.reshape(-1)]

    def has_document(self, text: str) -> bool:
        """Whether ``text`` is exactly one of the indexed documents (as stripped by the source)."""
        return bool(self._contains("documents", np.array([text_hash(text)], dtype=np.uint64))[0])

    def has_sentence(self, text: str) -> bool:
        """Whether ``text`` is exactly one of the sentences given with the documents.

        Raises DataError when the corpus was indexed without sentences (no answer is known)."""
        if not self.meta["docs_with_sentences"]:
            raise DataError(
                f"the corpus index {self.directory} records no sentences (its source gives no sentence boundaries)"
            )
        return bool(self._contains("sentences", np.array([text_hash(text)], dtype=np.uint64))[0])

    def overlap(self, docs: Iterable[str]) -> dict:
        """How much of ``docs`` appears in the corpus as word ``n``-grams.

        Returns ``{"n", "docs", "docs_with_overlap", "fraction_docs", "ngrams_checked",
        "ngrams_found", "fraction_ngrams"}``: a document overlaps when any of its n-grams occurs in
        the corpus; ``ngrams_checked``/``found`` count n-gram positions in ``docs``. Documents
        shorter than ``n`` words are counted in ``docs`` and never overlap.
        """
        counts = {"docs": 0, "docs_with_overlap": 0, "ngrams_checked": 0, "ngrams_found": 0}
        pending: list[np.ndarray] = []
        n_pending = 0

        def settle() -> None:
            if not pending:
                return
            found = self._contains("ngrams", np.concatenate(pending))
            start = 0
            for hashes in pending:
                hits = int(np.count_nonzero(found[start : start + hashes.size]))
                start += hashes.size
                counts["ngrams_found"] += hits
                counts["docs_with_overlap"] += hits > 0
            pending.clear()

        for text in docs:
            counts["docs"] += 1
            hashes = self._hasher(text)
            if not hashes.size:
                continue
            counts["ngrams_checked"] += hashes.size
            pending.append(hashes)
            n_pending += hashes.size
            if n_pending >= _QUERY_BATCH:
                settle()
                n_pending = 0
        settle()
        n_docs, checked = counts["docs"], counts["ngrams_checked"]
        return {
            "n": self.n,
            "docs": n_docs,
            "docs_with_overlap": counts["docs_with_overlap"],
            "fraction_docs": counts["docs_with_overlap"] / n_docs if n_docs else 0.0,
            "ngrams_checked": checked,
            "ngrams_found": counts["ngrams_found"],
            "fraction_ngrams": counts["ngrams_found"] / checked if checked else 0.0,
        }
