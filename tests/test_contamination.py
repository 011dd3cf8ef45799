import hashlib

import pytest

import lmforge.data.contamination as contamination
from lmforge.data.contamination import ngram_overlap

CORPUS = ["The cat sat on the mat", "a b c d"]
DOCS = [
    "THE CAT sat quietly",  # (the cat sat) found, (cat sat quietly) not
    "dogs run fast today",  # 2 trigrams, none found
    "b c",                  # shorter than n: counted, never overlaps
    "x a\tb\nc d y",        # (a b c), (b c d) found; (x a b), (c d y) not
    "",
]


def test_exact_counts():
    result = ngram_overlap(CORPUS, DOCS, n=3)
    assert result == {
        "n": 3,
        "docs": 5,
        "docs_with_overlap": 2,
        "fraction_docs": 0.4,
        "ngrams_checked": 8,
        "ngrams_found": 3,
        "fraction_ngrams": 0.375,
    }


def test_ngrams_do_not_span_documents_and_respect_order():
    result = ngram_overlap(["a b", "c d"], ["a b c", "b a"], n=2)
    # doc 1: (a b) found, (b c) not (crosses corpus documents); doc 2: (b a) not (order matters)
    assert (result["docs_with_overlap"], result["ngrams_checked"], result["ngrams_found"]) == (1, 3, 1)
    assert ngram_overlap(["a b c"], ["a b c"], n=3)["fraction_ngrams"] == 1.0


def test_default_13_grams():
    words = [f"w{i}" for i in range(30)]
    corpus = [" ".join(words)]
    docs = [" ".join(words[5:18]), " ".join(words[5:17]), " ".join(words[::-1])]
    result = ngram_overlap(corpus, docs)
    assert result["n"] == 13
    assert (result["docs"], result["docs_with_overlap"], result["ngrams_checked"], result["ngrams_found"]) == (3, 1, 1 + 18, 1)


def test_empty_inputs():
    assert ngram_overlap([], ["a b c"], n=2)["ngrams_found"] == 0
    assert ngram_overlap(["a b c"], [], n=2) == {
        "n": 2, "docs": 0, "docs_with_overlap": 0, "fraction_docs": 0.0,
        "ngrams_checked": 0, "ngrams_found": 0, "fraction_ngrams": 0.0,
    }
    with pytest.raises(ValueError):
        ngram_overlap(["a"], ["a"], n=0)


def test_large_corpus_merges_in_chunks(monkeypatch):
    monkeypatch.setattr(contamination, "_MERGE_EVERY", 3)
    corpus = (f"doc {i} has words {i} {i + 1}" for i in range(200))
    docs = ["doc 7 has", "doc 199 has", "doc 200 has", "words 5 6"]
    result = ngram_overlap(corpus, docs, n=3)
    assert (result["docs_with_overlap"], result["ngrams_found"]) == (3, 3)


def test_hash_is_stable_across_processes():
    # blake2b word hashes, combined polynomially mod 2**64: fixed values, no per-process salt
    word = int.from_bytes(hashlib.blake2b(b"hello", digest_size=8).digest(), "little")
    assert contamination._NgramHasher(1)("Hello").tolist() == [word] == [9022087748821825191]
    assert contamination._NgramHasher(2)("hello world").tolist() == [13267355600909635851]
