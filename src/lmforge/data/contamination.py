"""Test-set contamination: how many evaluation documents share word n-grams with a corpus.

N-grams are over lowercased, whitespace-separated words. Each word is hashed once with
``blake2b`` (8 bytes; stable across processes, unlike ``hash()``), and an n-gram's hash is a
polynomial combination of its word hashes modulo 2**64, computed with numpy. The corpus side is
kept as a sorted ``uint64`` array (8 bytes per distinct n-gram).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio)
_MERGE_EVERY = 1 << 20  # n-gram hashes buffered before merging into the sorted set


class _NgramHasher:
    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self._words: dict[str, int] = {}

    def _word(self, word: str) -> int:
        h = self._words.get(word)
        if h is None:
            h = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
            self._words[word] = h
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


def ngram_overlap(corpus: Iterable[str], docs: Iterable[str], n: int = 13) -> dict:
    """Measure how much of ``docs`` appears in ``corpus`` as word ``n``-grams.

    Returns ``{"n", "docs", "docs_with_overlap", "fraction_docs", "ngrams_checked",
    "ngrams_found", "fraction_ngrams"}``: a document overlaps when any of its n-grams occurs in
    the corpus; ``ngrams_checked``/``found`` count n-gram positions in ``docs``. Documents
    shorter than ``n`` words are counted in ``docs`` and never overlap.
    """
    hasher = _NgramHasher(n)

    seen = np.empty(0, dtype=np.uint64)
    buffer: list[np.ndarray] = []
    buffered = 0
    for text in corpus:
        h = hasher(text)
        buffer.append(h)
        buffered += h.size
        if buffered >= _MERGE_EVERY:
            seen = np.union1d(seen, np.concatenate(buffer))
            buffer, buffered = [], 0
    if buffer:
        seen = np.union1d(seen, np.concatenate(buffer))

    n_docs = overlapping = checked = found = 0
    for text in docs:
        n_docs += 1
        h = hasher(text)
        if h.size == 0:
            continue
        checked += h.size
        if seen.size:
            pos = np.searchsorted(seen, h).clip(max=seen.size - 1)
            hits = int(np.count_nonzero(seen[pos] == h))
        else:
            hits = 0
        found += hits
        overlapping += hits > 0
    return {
        "n": n,
        "docs": n_docs,
        "docs_with_overlap": overlapping,
        "fraction_docs": overlapping / n_docs if n_docs else 0.0,
        "ngrams_checked": checked,
        "ngrams_found": found,
        "fraction_ngrams": found / checked if checked else 0.0,
    }
