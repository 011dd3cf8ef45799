import hashlib
import json

import numpy as np
import pytest
from task_utils import WORLD_TASKS, CorpusSets

from lmforge.data import world
from lmforge.data.corpus_index import CorpusIndex, CorpusIndexWriter, NgramHasher
from lmforge.errors import DataError
from lmforge.tasks import family_class

CORPUS = ["The cat sat on the mat", "a b c d"]
DOCS = [
    "THE CAT sat quietly",  # (the cat sat) found, (cat sat quietly) not
    "dogs run fast today",  # 2 trigrams, none found
    "b c",  # shorter than n: counted, never overlaps
    "x a\tb\nc d y",  # (a b c), (b c d) found; (x a b), (c d y) not
    "",
]


def reference_overlap(corpus, docs, n):
    """The measure's definition, exactly (word tuples, no hashing): what `ngram_overlap` of the
    former contamination module computed with hashes."""

    def grams(text):
        words = text.lower().split()
        return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]

    seen = {g for text in corpus for g in grams(text)}
    n_docs = overlapping = checked = found = 0
    for text in docs:
        n_docs += 1
        g = grams(text)
        hits = sum(x in seen for x in g)
        checked += len(g)
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


def build(directory, corpus, n=13, chunk_size=1 << 21, sentences=None):
    with CorpusIndexWriter(directory, n=n, chunk_size=chunk_size) as writer:
        for i, doc in enumerate(corpus):
            writer.add(doc, sentences[i] if sentences is not None else None)
    return CorpusIndex(directory)


def test_exact_counts(tmp_path):
    result = build(tmp_path / "i", CORPUS, n=3).overlap(DOCS)
    assert result == {
        "n": 3,
        "docs": 5,
        "docs_with_overlap": 2,
        "fraction_docs": 0.4,
        "ngrams_checked": 8,
        "ngrams_found": 3,
        "fraction_ngrams": 0.375,
    }
    assert result == reference_overlap(CORPUS, DOCS, 3)


def test_ngrams_do_not_span_documents_and_respect_order(tmp_path):
    result = build(tmp_path / "a", ["a b", "c d"], n=2).overlap(["a b c", "b a"])
    # doc 1: (a b) found, (b c) not (crosses corpus documents); doc 2: (b a) not (order matters)
    assert (result["docs_with_overlap"], result["ngrams_checked"], result["ngrams_found"]) == (1, 3, 1)
    assert build(tmp_path / "b", ["a b c"], n=3).overlap(["a b c"])["fraction_ngrams"] == 1.0


def test_default_13_grams(tmp_path):
    words = [f"w{i}" for i in range(30)]
    docs = [" ".join(words[5:18]), " ".join(words[5:17]), " ".join(words[::-1])]
    result = build(tmp_path / "i", [" ".join(words)]).overlap(docs)
    assert result["n"] == 13
    assert (result["docs"], result["docs_with_overlap"], result["ngrams_checked"], result["ngrams_found"]) == (
        3,
        1,
        1 + 18,
        1,
    )


def test_empty_inputs(tmp_path):
    assert build(tmp_path / "empty", [], n=2).overlap(["a b c"])["ngrams_found"] == 0
    assert build(tmp_path / "a", ["a b c"], n=2).overlap([]) == {
        "n": 2,
        "docs": 0,
        "docs_with_overlap": 0,
        "fraction_docs": 0.0,
        "ngrams_checked": 0,
        "ngrams_found": 0,
        "fraction_ngrams": 0.0,
    }
    with pytest.raises(ValueError):
        CorpusIndexWriter(tmp_path / "zero", n=0)


def world_data(seed: int, n_corpus: int, tasks: tuple[str, ...]):
    """(corpus documents, their sentences, {task: test records}) of the built-in world."""
    docs = list(world.corpus(seed, n_corpus))
    against = CorpusSets(docs)
    sizes = {"train": 20, "validation": 20, "test": 40}
    made = {
        t: world.make_splits(t, family_class(WORLD_TASKS[t]).world_tasks[t], seed, sizes, against)["test"]
        for t in tasks
    }
    return [d for d, _ in docs], [s for _, s in docs], made


def test_agrees_with_the_exact_measure_on_the_synthetic_world(tmp_path):
    corpus, _, tests = world_data(5, 300, ("topic", "qa"))
    evals = {
        "topic": [r["text"] for r in tests["topic"]],
        "qa": [r["context"] for r in tests["qa"]],
        "corpus sample": corpus[::10],
    }
    for n in (3, 13):
        one = build(tmp_path / f"one-{n}", corpus, n=n)
        many = build(tmp_path / f"many-{n}", corpus, n=n, chunk_size=997)  # many chunk files
        assert len(many.meta["chunks"]["ngrams"]) > 10
        for name, docs in evals.items():
            expected = reference_overlap(corpus, docs, n)
            assert one.overlap(docs) == expected, (n, name)
            assert many.overlap(docs) == expected, (n, name)
        assert many.overlap(corpus)["fraction_ngrams"] == 1.0


def test_documents_and_sentences_across_many_chunks(tmp_path):
    corpus, sentences, tests = world_data(2, 120, ("ner",))
    index = build(tmp_path / "i", corpus, n=5, chunk_size=7, sentences=sentences)
    assert len(index.meta["chunks"]["documents"]) == -(-120 // 7)
    assert all(index.has_document(doc) for doc in corpus)
    assert not index.has_document(corpus[0] + " ")  # exact text
    assert not any(index.has_document(" ".join(r["tokens"])) for r in tests["ner"])
    assert all(index.has_sentence(s) for sents in sentences for s in sents)
    # the world guarantees that no NER record's sentence is a corpus sentence
    for record in tests["ner"]:
        assert not index.has_sentence(" ".join(record["tokens"]))
    several = next(i for i, sents in enumerate(sentences) if len(sents) > 1)
    assert not index.has_sentence(corpus[several])  # a document of several sentences is none


def test_meta_and_chunk_files(tmp_path):
    corpus = [f"doc {i} has words {i} {i + 1}" for i in range(200)]
    index = build(tmp_path / "i", corpus, n=3, chunk_size=50)
    meta = json.loads((tmp_path / "i" / "meta.json").read_text())
    assert meta == index.meta
    assert meta["n"] == 3 and meta["documents"] == 200 and meta["docs_with_sentences"] == 0
    assert meta["added"] == {"documents": 200, "sentences": 0, "ngrams": 200 * 4}
    assert len(meta["chunks"]["ngrams"]) == 16 and meta["chunks"]["sentences"] == []
    for name in meta["chunks"]["ngrams"]:  # every chunk sorted and unique
        chunk = np.load(tmp_path / "i" / name)
        assert chunk.dtype == np.uint64 and np.all(np.diff(chunk.astype(np.float64)) >= 0)
        assert len(np.unique(chunk)) == len(chunk)
    docs = ["doc 7 has", "doc 199 has", "doc 200 has", "words 5 6"]
    result = index.overlap(docs)
    assert (result["docs_with_overlap"], result["ngrams_found"]) == (3, 3)
    with pytest.raises(DataError, match="records no sentences"):
        index.has_sentence("doc 1")


def test_incomplete_or_missing_index_is_refused(tmp_path):
    with pytest.raises(DataError, match="not found or incomplete"):
        CorpusIndex(tmp_path / "none")
    with pytest.raises(RuntimeError), CorpusIndexWriter(tmp_path / "broken", n=2, chunk_size=2) as writer:
        writer.add("a b c d e")
        raise RuntimeError("killed mid-corpus")
    with pytest.raises(DataError, match="incomplete"):
        CorpusIndex(tmp_path / "broken")
    build(tmp_path / "done", ["a b"], n=2)
    with pytest.raises(FileExistsError):
        CorpusIndexWriter(tmp_path / "done")


def test_hash_is_stable_across_processes():
    # blake2b word hashes, combined polynomially mod 2**64: fixed values, no per-process salt
    word = int.from_bytes(hashlib.blake2b(b"hello", digest_size=8).digest(), "little")
    assert NgramHasher(1)("Hello").tolist() == [word] == [9022087748821825191]
    assert NgramHasher(2)("hello world").tolist() == [13267355600909635851]
