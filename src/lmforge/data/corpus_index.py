"""What the corpus holds, for the checks that compare task data with it: hashes of its documents
and sentences (leak checks of the built-in world's task splits) and of its word n-grams (the
contamination measure of evaluation splits). Written once by the prepare stage, read by others.

N-grams are over lowercased, whitespace-separated words. Each word is hashed once with
``blake2b`` (8 bytes; stable across processes, unlike ``hash()``), and an n-gram's hash is a
polynomial combination of its word hashes modulo 2**64. Documents and sentences are hashed whole
(blake2b, 8 bytes). A 64-bit collision would make one check answer "present" wrongly; at corpus
sizes here its probability is below 1e-9.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class NgramHasher:
    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self._words: dict[str, int] = {}

    def _word(self, word: str) -> int:
        h = self._words.get(word)
        if h is None:
            h = self._words[word] = _hash(word)
        return h

    def __call__(self, text: str) -> np.ndarray:
        """uint64 hashes of every word n-gram of ``text`` (empty if fewer than n words)."""
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


class CorpusIndexWriter:
    def __init__(self, directory: str | Path, n: int = 13):
        self.directory = Path(directory)
        self.hasher = NgramHasher(n)
        self.docs: list[int] = []
        self.sentences: list[int] = []
        self.ngrams: list[np.ndarray] = []

    def add(self, doc: str, sentences: Iterable[str] | None = None, ngrams: bool = True) -> None:
        """Record a document (and its sentences); its n-grams too unless `ngrams` is False (a
        validation document: leak checks cover it, the contamination measure does not)."""
        self.docs.append(_hash(doc))
        if sentences is not None:
            self.sentences.extend(_hash(s) for s in sentences)
        if ngrams:
            self.ngrams.append(self.hasher(doc))

    def close(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        docs = np.unique(np.array(self.docs, dtype=np.uint64))
        sents = np.unique(np.array(self.sentences, dtype=np.uint64))
        grams = np.unique(np.concatenate(self.ngrams)) if self.ngrams else np.empty(0, np.uint64)
        np.save(self.directory / "documents.npy", docs)
        np.save(self.directory / "sentences.npy", sents)
        np.save(self.directory / "ngrams.npy", grams)
        (self.directory / "meta.json").write_text(json.dumps(
            {"n": self.hasher.n, "documents": len(self.docs), "sentences": int(sents.size),
             "ngrams": int(grams.size)}, indent=2) + "\n")


def _member(sorted_hashes: np.ndarray, h: np.ndarray) -> np.ndarray:
    if not sorted_hashes.size or not h.size:
        return np.zeros(h.shape, dtype=bool)
    pos = np.searchsorted(sorted_hashes, h).clip(max=sorted_hashes.size - 1)
    return sorted_hashes[pos] == h


class CorpusIndex:
    def __init__(self, directory: str | Path):
        from lmforge.errors import DataError

        self.directory = Path(directory)
        if not (self.directory / "meta.json").is_file():
            raise DataError(f"{self.directory}: no corpus index (run the prepare stage first)")
        self.n = json.loads((self.directory / "meta.json").read_text())["n"]
        self._docs = np.load(self.directory / "documents.npy", mmap_mode="r")
        self._sents = np.load(self.directory / "sentences.npy", mmap_mode="r")
        self._ngrams = np.load(self.directory / "ngrams.npy", mmap_mode="r")

    def has_document(self, text: str) -> bool:
        return bool(_member(self._docs, np.array([_hash(text)], dtype=np.uint64))[0])

    def has_sentence(self, text: str) -> bool:
        return bool(_member(self._sents, np.array([_hash(text)], dtype=np.uint64))[0])

    def overlap(self, docs: Iterable[str]) -> dict:
        """How much of ``docs`` appears in the corpus as word n-grams: {n, docs, docs_with_overlap,
        fraction_docs, ngrams_checked, ngrams_found, fraction_ngrams}."""
        hasher = NgramHasher(self.n)
        n_docs = overlapping = checked = found = 0
        for text in docs:
            n_docs += 1
            h = hasher(text)
            hits = int(_member(self._ngrams, h).sum())
            checked += h.size
            found += hits
            overlapping += hits > 0
        return {"n": self.n, "docs": n_docs, "docs_with_overlap": overlapping,
                "fraction_docs": overlapping / n_docs if n_docs else 0.0, "ngrams_checked": checked,
                "ngrams_found": found, "fraction_ngrams": found / checked if checked else 0.0}
