"""The built-in, seeded synthetic world: an unlabeled corpus and every task's labelled splits.

One seed fixes a world of invented entities (persons, organisations, places, products, films,
events) with attributes. From it come, by the same generators:

* the pretraining corpus: news stories of all topics, film/product reviews, fact paragraphs,
  and a few paragraphs of simple English and of the synthetic target language (shuffled);
* the task splits (``TASKS``): topic, sentiment, ner, qa, summarization, translation.

Guarantees: same arguments give identical output (``random.Random`` instances seeded by
strings, no global state, no ``hash()``); no task record equals a corpus document, and for the
sentence-level tasks (ner, translation) no record sentence occurs as a sentence of the corpus;
no record (by its text/document/context/source) is in two splits of a task; class labels are
balanced per split. Changing ``n_train`` does not change the test or validation records.

Usage::

    data = generate(seed=0, n_corpus_docs=20000, n_train=400, n_validation=200, n_test=500,
                    tasks=("topic", "sentiment"))
    data.corpus[0]; data.tasks["topic"]["test"][0]; data.labels["topic"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Callable, Sequence

from .entities import TOPICS, World
from .facts import fact_paragraph, qa_record
from .reviews import review
from .stories import story
from .text import Sentence, render_sentences
from .translation import Lexicon, english_sentence, pair, target_sentence

TASKS = ("topic", "sentiment", "ner", "qa", "summarization", "translation")
SPLITS = ("train", "validation", "test")
SENTIMENTS = ("negative", "positive")
NER_TAGS = tuple(sorted(["O"] + [f"{p}-{t}" for t in ("PER", "ORG", "LOC", "MISC") for p in "BI"]))

# Share of each document kind in the pretraining corpus.
CORPUS_MIX = (("story", 0.45), ("review", 0.25), ("facts", 0.18), ("english", 0.06), ("target", 0.06))


@dataclass
class SyntheticData:
    corpus: list[str]  # unlabeled pretraining documents
    tasks: dict[str, dict[str, list[dict]]]  # task -> split -> records
    labels: dict[str, list[str]] = field(default_factory=dict)  # classification/tagging labels
    corpus_sentences: list[list[str]] = field(default_factory=list)  # the sentences of each corpus doc


def _corpus_doc(kind: str, rng: Random, w: World, lex: Lexicon) -> list[Sentence]:
    if kind == "story":
        return story(rng, w, TOPICS[int(rng.random() * len(TOPICS))])[0]
    if kind == "review":
        return review(rng, w, rng.random() < 0.5)
    if kind == "facts":
        return fact_paragraph(rng, w)[0]
    n = 3 + int(rng.random() * 4)
    if kind == "english":
        return [english_sentence(rng, w) for _ in range(n)]
    return [target_sentence(rng, w, lex) for _ in range(n)]


def _corpus(seed: int, n: int, w: World, lex: Lexicon, progress: bool) -> tuple[list[str], list[list[str]]]:
    counts = [int(n * share) for _, share in CORPUS_MIX]
    counts[0] += n - sum(counts)
    kinds = [k for (k, _), c in zip(CORPUS_MIX, counts) for _ in range(c)]
    rng = Random(f"lmforge-corpus:{seed}")
    rng.shuffle(kinds)
    docs: list[str] = []
    sentences: list[list[str]] = []
    it = kinds
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(kinds, desc="synthetic corpus", unit="doc", leave=False)
    for kind in it:
        sents = _corpus_doc(kind, rng, w, lex)
        sentences.append([s.text for s in sents])
        docs.append(render_sentences(sents))
    return docs, sentences


class _Ctx:
    def __init__(self, w: World, lex: Lexicon, corpus_docs: set[str], corpus_sents: set[str]):
        self.w, self.lex, self.docs, self.sents = w, lex, corpus_docs, corpus_sents


# Each maker: (rng, ctx, label or None, index) -> (record, key, leaks_into_corpus)
def _topic(rng, c: _Ctx, label, i):
    sents, _ = story(rng, c.w, label)
    text = render_sentences(sents)
    return {"text": text, "label": label}, text, text in c.docs


def _sentiment(rng, c: _Ctx, label, i):
    text = render_sentences(review(rng, c.w, label == "positive"))
    return {"text": text, "label": label}, text, text in c.docs


def _ner(rng, c: _Ctx, label, i):
    r = rng.random()
    if r < 0.45:
        sents = story(rng, c.w, TOPICS[int(rng.random() * len(TOPICS))])[0]
    elif r < 0.75:
        sents = fact_paragraph(rng, c.w)[0]
    else:
        sents = review(rng, c.w, rng.random() < 0.5)
    idx = [k for k, s in enumerate(sents) if s.has_entity()] if rng.random() < 0.9 else []
    k = idx[int(rng.random() * len(idx))] if idx else int(rng.random() * len(sents))
    chosen = sents[k:k + 2] if rng.random() < 0.2 else sents[k:k + 1]
    tokens = [t for s in chosen for t in s.tokens]
    tags = [t for s in chosen for t in s.tags]
    leak = any(s.text in c.sents for s in chosen)
    return {"tokens": tokens, "tags": tags}, " ".join(tokens), leak


def _qa(rng, c: _Ctx, label, i):
    rec = qa_record(rng, c.w)
    return rec, rec["context"], rec["context"] in c.docs


def _summarization(rng, c: _Ctx, label, i):
    sents, summary = story(rng, c.w, TOPICS[i % len(TOPICS)])
    doc = render_sentences(sents)
    return {"document": doc, "summary": summary.text}, doc, doc in c.docs


def _translation(rng, c: _Ctx, label, i):
    src, tgt = pair(rng, c.w, c.lex)
    return {"source": src, "target": tgt}, src, src in c.sents or tgt in c.sents


_MAKERS: dict[str, Callable] = {"topic": _topic, "sentiment": _sentiment, "ner": _ner, "qa": _qa,
                                "summarization": _summarization, "translation": _translation}
_CLASSES = {"topic": tuple(sorted(TOPICS)), "sentiment": SENTIMENTS}


def _splits(task: str, seed: int, sizes: dict[str, int], ctx: _Ctx) -> dict[str, list[dict]]:
    make = _MAKERS[task]
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split in ("test", "validation", "train"):  # held-out splits first: train never shifts them
        rng = Random(f"lmforge-{task}-{split}:{seed}")
        n = sizes[split]
        classes = _CLASSES.get(task)
        plan = [classes[i % len(classes)] for i in range(n)] if classes else [None] * n
        rng.shuffle(plan)
        records: list[dict] = []
        failures = 0
        for i, label in enumerate(plan):
            while True:
                rec, key, leak = make(rng, ctx, label, i)
                if not leak and key not in seen:
                    break
                failures += 1
                if failures > 1000 + 10 * n:
                    raise RuntimeError(f"synthetic {task}/{split}: could not make {n} distinct records")
            seen.add(key)
            if task == "qa":
                rec = {"id": f"qa-{seed}-{split}-{i:06d}", **rec}
            records.append(rec)
        out[split] = records
    return {s: out[s] for s in SPLITS}


def generate(seed: int, n_corpus_docs: int, n_train: int, n_validation: int, n_test: int,
             tasks: Sequence[str] = ("topic", "sentiment"), progress: bool = True,
             n_train_per_task: dict[str, int] | None = None) -> SyntheticData:
    """Generate the corpus and the splits of ``tasks`` for the world of ``seed``.
    ``n_train_per_task`` gives some tasks another training-split size than ``n_train`` (data is
    free here: a task that needs many steps learns more from more records than from more epochs);
    their validation and test records do not change."""
    per_task = dict(n_train_per_task or {})
    unknown_sized = sorted(set(per_task) - set(TASKS))
    if unknown_sized:
        raise ValueError(f"synthetic data: n_train_per_task names unknown task(s) {unknown_sized}")
    for name, v in (("n_corpus_docs", n_corpus_docs), ("n_train", n_train),
                    ("n_validation", n_validation), ("n_test", n_test),
                    *((f"n_train_per_task[{t}]", n) for t, n in per_task.items())):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"synthetic data: {name} must be a non-negative integer, got {v!r}")
    if isinstance(tasks, str):
        tasks = (tasks,)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"synthetic data: unknown task(s) {unknown}; known: {list(TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"synthetic data: duplicate task in {list(tasks)}")

    w = World(Random(f"lmforge-world:{seed}"))
    lex = Lexicon(seed)
    corpus, corpus_sents = _corpus(seed, n_corpus_docs, w, lex, progress)
    ctx = _Ctx(w, lex, set(corpus), {s for sents in corpus_sents for s in sents})
    sizes = {"train": n_train, "validation": n_validation, "test": n_test}
    out = {t: _splits(t, seed, {**sizes, "train": per_task.get(t, n_train)}, ctx) for t in tasks}
    labels: dict[str, list[str]] = {t: list(_CLASSES[t]) for t in tasks if t in _CLASSES}
    if "ner" in tasks:
        labels["ner"] = list(NER_TAGS)
    return SyntheticData(corpus=corpus, tasks=out, labels=labels, corpus_sentences=corpus_sents)


def translation_lexicon(seed: int) -> Lexicon:
    """The target-language lexicon of ``seed`` (``.words[lemma]``, ``.suffix[name]``)."""
    return Lexicon(seed)


__all__ = ["TASKS", "SPLITS", "NER_TAGS", "SyntheticData", "generate", "translation_lexicon"]
