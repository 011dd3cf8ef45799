"""Tests of the built-in synthetic world (lmforge.data.world): its corpus, and the splits each
family's world maker makes from it."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import sys
import types
from collections import Counter

import pytest
from task_utils import WORLD_TASKS, CorpusSets, family, labels, write_index

from lmforge.data import world
from lmforge.data.world.reviews import NEGATIVE, NEGATORS, POSITIVE
from lmforge.data.world.text import render
from lmforge.data.world.translation import ADJECTIVES, NOUNS, VERBS, Lexicon
from lmforge.errors import ConfigError
from lmforge.tasks import family_class
from lmforge.tasks.splits import load_splits

TASKS = tuple(WORLD_TASKS)
N_CORPUS = 3000
SIZES = {"train": 300, "validation": 100, "test": 300}


def maker(task: str) -> world.WorldTask:
    return family_class(WORLD_TASKS[task]).world_tasks[task]


def generate(seed: int, n_corpus: int, tasks=TASKS, **sizes: int):
    """(corpus documents, their sentences, {task: splits}) of the world of `seed`."""
    docs = list(world.corpus(seed, n_corpus))
    against = CorpusSets(docs)
    splits = {t: world.make_splits(t, maker(t), seed, {**SIZES, **sizes}, against) for t in tasks}
    return [d for d, _ in docs], against.sentences, splits


@pytest.fixture(scope="module")
def data():
    corpus, sentences, tasks = generate(7, N_CORPUS)
    return {"corpus": corpus, "sentences": sentences, "tasks": tasks}


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", text)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:-[a-z]+)*", text.lower())


KEYS = {"topic": "text", "sentiment": "text", "summarization": "document", "qa": "context", "translation": "source"}


def _key(task: str, rec: dict) -> str:
    return " ".join(rec["tokens"]) if task == "ner" else rec[KEYS[task]]


# ----------------------------------------------------------------------------- API, determinism
def test_shapes_and_labels(data):
    assert len(data["corpus"]) == N_CORPUS
    assert all(isinstance(d, str) and d for d in data["corpus"])
    fields = {
        "topic": {"text", "label"},
        "sentiment": {"text", "label"},
        "ner": {"tokens", "tags"},
        "qa": {"id", "context", "question", "answers"},
        "summarization": {"document", "summary"},
        "translation": {"source", "target"},
    }
    for task, splits in data["tasks"].items():
        assert list(splits) == ["train", "validation", "test"]
        for split, n in SIZES.items():
            assert len(splits[split]) == n, (task, split)
            assert all(set(r) == fields[task] for r in splits[split]), task
        # every record is one its family accepts
        fam = family(task)
        for r in splits["train"][:20]:
            fam.check_record(r, task)
    assert labels("sentiment") == ["negative", "positive"]
    assert labels("topic") == sorted(labels("topic")) and len(labels("topic")) >= 4
    assert labels("ner") == sorted(["O"] + [f"{p}-{t}" for t in ("PER", "ORG", "LOC", "MISC") for p in "BI"])
    assert {t for t in TASKS if labels(t)} == {"topic", "sentiment", "ner"}


def test_unknown_world_task_and_bad_sizes_name_the_key(tmp_path):
    fam = family("topic", data={"world_task": "parsing"})
    with pytest.raises(ConfigError, match=r"task\.topic\.data\.world_task='parsing'.*\['sentiment', 'topic'\]"):
        load_splits(fam, 1, None, tmp_path, tmp_path)
    with pytest.raises(ConfigError, match=r"task\.topic\.data\.n_train"):
        family("topic", data={"n_train": -1})


def test_same_seed_same_output_different_seed_differs():
    args = {"n_corpus": 300, "train": 30, "validation": 10, "test": 20}
    a, b, c = generate(3, **args), generate(3, **args), generate(4, **args)
    assert a == b
    assert not set(a[0]) & set(c[0])
    for task in TASKS:
        assert a[2][task]["test"] != c[2][task]["test"], task

    # the invented names differ too, not only their arrangement
    def names(d):
        return {t for r in d[2]["ner"]["train"] for t, g in zip(r["tokens"], r["tags"]) if g != "O"}

    assert len(names(a) & names(c)) < 0.2 * len(names(a))
    # a task's splits do not depend on whether the corpus was generated first
    alone = world.make_splits(
        "ner", maker("ner"), 3, {"train": 30, "validation": 10, "test": 20}, CorpusSets(list(world.corpus(3, 300)))
    )
    assert alone == a[2]["ner"]


def test_output_does_not_depend_on_the_hash_seed():
    code = (
        "import hashlib, json, types; from lmforge.data import world; from lmforge.tasks import family_class; "
        "docs = list(world.corpus(2, 150)); sents = {s for _, ss in docs for s in ss}; "
        "against = types.SimpleNamespace(has_document={d for d, _ in docs}.__contains__, "
        "has_sentence=sents.__contains__); "
        "tasks = [family_class(f).world_tasks[t] for f, t in (('classification', 'topic'), ('tagging', 'ner'), "
        "('translation', 'translation'))]; "
        "made = [world.make_splits(str(i), t, 2, {'train': 10, 'validation': 5, 'test': 5}, against) "
        "for i, t in enumerate(tasks)]; "
        "print(hashlib.sha256(json.dumps([docs, made]).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hs},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hs in ("1", "2")
    }
    assert len(digests) == 1 and len(next(iter(digests))) == 64


def test_heldout_splits_do_not_depend_on_train_size():
    args = {"n_corpus": 200, "tasks": ("topic", "qa"), "validation": 10, "test": 20}
    small, big = generate(5, train=5, **args), generate(5, train=40, **args)
    for task in ("topic", "qa"):
        assert small[2][task]["test"] == big[2][task]["test"]
        assert small[2][task]["validation"] == big[2][task]["validation"]
        assert len(small[2][task]["train"]) == 5 and len(big[2][task]["train"]) == 40


def test_task_sizes_come_from_the_task_settings(tmp_path):
    """load_splits: each split as large as the task's settings say (capped by max_task_records);
    a larger training split leaves the held-out ones alone; the leak checks ask the corpus index."""
    index = write_index(tmp_path / "index", seed=3, n=50)

    def qa(n_train: int, cap: int | None = None):
        fam = family("qa", data={"n_train": n_train, "n_validation": 5, "n_test": 6})
        return load_splits(fam, 3, cap, index, tmp_path)

    base, more, capped = qa(10), qa(25), qa(25, cap=4)
    assert [len(base[s]) for s in ("train", "validation", "test")] == [10, 5, 6]
    assert len(more["train"]) == 25 and base.labels is None
    assert more["test"] == base["test"] and more["validation"] == base["validation"]
    assert [len(capped[s]) for s in ("train", "validation", "test")] == [4, 4, 4]
    assert base.where["test"] == "built-in task 'qa' (seed 3), test split"
    topic = load_splits(family("topic", data={"n_train": 10, "n_validation": 5, "n_test": 5}), 3, None, index, tmp_path)
    assert topic.labels == labels("topic")


# ----------------------------------------------------------------------------- leakage
def test_no_split_leakage_and_no_heldout_in_corpus(data):
    corpus = set(data["corpus"])
    corpus_sentences = data["sentences"] | {s for doc in data["corpus"] for s in _sentences(doc)}
    for task, splits in data["tasks"].items():
        keys = {split: [_key(task, r) for r in recs] for split, recs in splits.items()}
        for split, ks in keys.items():
            assert len(set(ks)) == len(ks), (task, split)
        assert not set(keys["train"]) & set(keys["validation"]), task
        assert not set(keys["train"]) & set(keys["test"]), task
        assert not set(keys["validation"]) & set(keys["test"]), task
        for split in ("validation", "test"):
            for r in splits[split]:
                if task == "ner":
                    for s in _sentences(render(r["tokens"])[0]):
                        assert s not in corpus_sentences, (task, s)
                elif task == "translation":
                    assert r["source"] not in corpus_sentences and r["target"] not in corpus_sentences
                else:
                    assert _key(task, r) not in corpus, task


def test_a_record_found_in_the_corpus_is_made_again():
    """make_splits asks `against` about each record's documents (topic) or sentences
    (translation) and never keeps one it holds."""

    def held(text: str) -> bool:  # a corpus that holds about half of all texts
        return hashlib.blake2b(text.encode()).digest()[0] % 2 == 0

    asked = []
    against = types.SimpleNamespace(
        has_document=lambda t: asked.append(t) or held(t), has_sentence=lambda t: asked.append(t) or held(t)
    )
    for task, fields in (("topic", ("text",)), ("translation", ("source", "target"))):
        asked.clear()
        made = world.make_splits(task, maker(task), 1, {"train": 6, "validation": 3, "test": 3}, against)
        kept = [r[f] for recs in made.values() for r in recs for f in fields]
        assert len(kept) == 12 * len(fields) and not any(held(t) for t in kept), task
        assert any(held(t) for t in asked), task  # some were refused and made again


def test_long_ngrams_of_test_docs_are_mostly_new(data):
    def grams(text, n=13):
        t = re.findall(r"\w+|[^\w\s]", text.lower())
        return {tuple(t[i : i + n]) for i in range(len(t) - n + 1)}

    corpus_grams = set().union(*(grams(d) for d in data["corpus"]))
    for task, key in (("topic", "text"), ("sentiment", "text"), ("summarization", "document")):
        test_grams = [g for r in data["tasks"][task]["test"] for g in grams(r[key])]
        seen = sum(g in corpus_grams for g in test_grams) / len(test_grams)
        assert seen < 0.25, (task, seen)


# ----------------------------------------------------------------------------- topic
def test_topic_labels_balanced_and_not_one_keyword(data):
    for split, recs in data["tasks"]["topic"].items():
        counts = Counter(r["label"] for r in recs)
        assert set(counts) == set(labels("topic")), split
        assert max(counts.values()) - min(counts.values()) <= 1, (split, counts)
    recs = data["tasks"]["topic"]["train"] + data["tasks"]["topic"]["test"]
    sets = [set(_words(r["text"])) for r in recs]
    vocab = set().union(*sets)
    for label in labels("topic"):
        pos = [s for s, r in zip(sets, recs) if r["label"] == label]
        neg = [s for s, r in zip(sets, recs) if r["label"] != label]
        best = max((sum(w in s for s in pos) / len(pos) + sum(w not in s for s in neg) / len(neg)) / 2 for w in vocab)
        assert best < 0.9, (label, best)  # balanced accuracy of the best one-word detector


def test_corpus_mixes_document_kinds(data):
    joined = "\n".join(data["corpus"])
    # stories of several topics, reviews, fact sentences, and target-language paragraphs
    for marker in ("percent", "election", "album", "researchers", "I would", "was born in", "is based in"):
        assert marker.lower() in joined.lower(), marker
    target_words = set(Lexicon(7).words.values())
    n_target = sum(1 for d in data["corpus"] if sum(w in target_words for w in _words(d)) >= 3)
    assert 0.02 * len(data["corpus"]) < n_target < 0.2 * len(data["corpus"])


def test_corpus_sentences_are_the_documents_sentences():
    for doc, sents in world.corpus(5, 40):
        assert sents and " ".join(sents) == doc


# ----------------------------------------------------------------------------- sentiment
def _verdict_label(text: str) -> tuple[bool, bool]:
    """Independent re-derivation: the last sentence with a polar word is the verdict; its final
    clause (after the last comma or "but") holds one polar word and at most one negator."""
    polar = POSITIVE | NEGATIVE
    verdict = [s for s in _sentences(text) if polar & set(_words(s))][-1]
    clause = re.split(r",|\bbut\b", verdict)[-1]
    words = _words(clause)
    hits = [w for w in words if w in polar]
    negators = [w for w in words if w in NEGATORS]
    assert len(hits) == 1 and len(negators) <= 1, (text, clause)
    negated = bool(negators)
    return (hits[0] in POSITIVE) != negated, negated


def test_sentiment_labels_follow_from_the_verdict(data):
    recs = [r for split in data["tasks"]["sentiment"].values() for r in split]
    more = generate(11, 10, tasks=("sentiment",), train=1000, validation=10, test=10)[2]["sentiment"]["train"]
    by_negation = Counter()
    for r in recs + more:
        label, negated = _verdict_label(r["text"])
        assert ("positive" if label else "negative") == r["label"], r["text"]
        by_negation[(negated, r["label"])] += 1
    # negated verdicts exist with both labels ("not good" and "not bad")
    assert by_negation[(True, "positive")] > 50 and by_negation[(True, "negative")] > 50
    # contrast verdicts, where a word of the other polarity comes first
    assert any(re.search(r"expected it to be \w+, but", r["text"]) for r in more)
    for split, rs in data["tasks"]["sentiment"].items():
        counts = Counter(r["label"] for r in rs)
        assert abs(counts["positive"] - counts["negative"]) <= 1, split


def test_sentiment_not_solvable_by_one_keyword(data):
    recs = data["tasks"]["sentiment"]["train"] + data["tasks"]["sentiment"]["test"]
    sets = [set(_words(r["text"])) for r in recs]
    ys = [r["label"] == "positive" for r in recs]
    best = 0.0
    for w in set().union(*sets):
        acc = sum((w in s) == y for s, y in zip(sets, ys)) / len(ys)
        best = max(best, acc, 1 - acc)
    assert best < 0.8, best


# ----------------------------------------------------------------------------- ner, qa, summaries, translation
def test_ner_bio_tags_valid(data):
    seen = Counter()
    for recs in data["tasks"]["ner"].values():
        for r in recs:
            assert len(r["tokens"]) == len(r["tags"]) > 0
            prev = "O"
            for tag in r["tags"]:
                assert tag in labels("ner")
                if tag.startswith("I-"):
                    assert prev != "O" and prev[2:] == tag[2:], r
                seen[tag] += 1
                prev = tag
    assert all(seen[t] > 0 for t in labels("ner")), seen  # every type, multi-word spans too
    assert seen["O"] > sum(v for t, v in seen.items() if t != "O")


def test_qa_offsets_and_shape(data):
    ids = set()
    for recs in data["tasks"]["qa"].values():
        for r in recs:
            ids.add(r["id"])
            (text,), (start,) = r["answers"]["text"], r["answers"]["answer_start"]
            assert text and r["context"][start : start + len(text)] == text
            # a whole-word span of the right kind for the question
            assert start == 0 or not r["context"][start - 1].isalnum()
            end = start + len(text)
            assert end == len(r["context"]) or not r["context"][end].isalnum()
            q = r["question"]
            if q.startswith(("When ", "In which year ")):
                assert re.fullmatch(r"\d{4}", text), r
            elif q.startswith(("Who ", "Where ", "In which city ", "In which country ", "Which company ")):
                assert text[0].isupper() and text.split()[-1][0].isupper(), r
            assert r["question"].endswith("?")
            assert len(r["context"].split()) <= 120
            assert len(_sentences(r["context"])) >= 2
    assert len(ids) == sum(len(v) for v in data["tasks"]["qa"].values())
    assert data["tasks"]["qa"]["test"][0]["id"] == "qa-7-test-000000"
    # several entities per passage: another capitalised name than the answer's neighbourhood
    multi = sum(len(set(re.findall(r"\b[A-Z][a-z]{3,}\b", r["context"]))) >= 4 for r in data["tasks"]["qa"]["test"])
    assert multi > 0.8 * len(data["tasks"]["qa"]["test"])


def test_summaries_combine_sentences(data):
    combined = 0
    recs = data["tasks"]["summarization"]["test"]
    for r in recs:
        sents = _sentences(r["document"])
        assert r["summary"] != sents[0]
        assert r["summary"] not in sents
        assert len(r["document"].split()) <= 90
        lead, rest = set(_words(sents[0])), set(_words(" ".join(sents[1:])))
        new = set(re.findall(r"\w+", r["summary"])) - set(re.findall(r"\w+", sents[0]))
        combined += any(w in " ".join(sents[1:]) for w in new if len(w) > 3)
        assert lead and rest
    assert combined > 0.9 * len(recs)


def test_translation_rules(data):
    lex = Lexicon(7)
    assert Lexicon(7).words == lex.words and Lexicon(8).words != lex.words
    assert len(set(lex.words.values())) == len(lex.words)  # one invented word per English lemma
    tense = tuple(lex.suffix[t] for t in ("past", "present", "future"))
    verbs = {lex.words[v] for v in VERBS}
    checked_adj = 0
    recs = [r for split in data["tasks"]["translation"].values() for r in split]
    for r in recs:
        src, tgt = _words(r["source"]), [w.lower() for w in r["target"].rstrip(".").split()]
        assert len(r["source"].split()) <= 15 and r["target"].endswith(".")
        # SOV: the target ends with verb + tense suffix; the English verb is never last
        assert tgt[-1].endswith(tense) and tgt[-1][: -len(_suffix(tgt[-1], tense))] in verbs, r
        assert src[-1] not in VERBS
        # adjective + noun -> noun(+plural suffix) adjective
        for a, n in itertools.pairwise(src):
            if a in ADJECTIVES and (n in NOUNS or n in NOUNS.values()):
                noun = lex.words[n] if n in NOUNS else lex.words[_singular(n)] + lex.suffix["plural"]
                assert any(x == noun and y == lex.words[a] for x, y in itertools.pairwise(tgt)), r
                checked_adj += 1
        if src[0] in ("yesterday", "tomorrow") or src[-1] in ("yesterday", "tomorrow"):
            assert tgt[0] == lex.words[src[-1] if src[-1] in ("yesterday", "tomorrow") else src[0]]
    assert checked_adj > 50
    args = {"tasks": ("translation",), "train": 20, "validation": 5, "test": 5}
    assert generate(9, 5, **args) == generate(9, 5, **args)


def _suffix(word: str, suffixes: tuple[str, ...]) -> str:
    return next(s for s in suffixes if word.endswith(s))


def _singular(plural: str) -> str:
    return next(s for s, p in NOUNS.items() if p == plural)


def test_a_sample_seed_draws_from_the_world_it_is_given():
    """A fine-tune seed (`finetune_seed`) draws other records from the pretraining corpus's world:
    its invented language is that world's lexicon, not the lexicon of the sample's seed."""
    sizes, against = {"train": 40, "validation": 5, "test": 5}, CorpusSets([])
    own = world.make_splits("translation", maker("translation"), 2, sizes, against)
    drawn = world.make_splits("translation", maker("translation"), 2, sizes, against, world_seed=1)
    same_world = world.make_splits("translation", maker("translation"), 1, sizes, against)
    assert drawn["train"] != same_world["train"]  # another sample …
    words = {s: {w for r in v["train"] for w in _words(r["target"])} for s, v in (("own", own), ("drawn", drawn))}
    lexicon = {1: set(Lexicon(1).words.values()), 2: set(Lexicon(2).words.values())}
    assert len(words["drawn"] & lexicon[1]) > 20 and not words["drawn"] & (lexicon[2] - lexicon[1])  # … of world 1
    assert len(words["own"] & lexicon[2]) > 20
