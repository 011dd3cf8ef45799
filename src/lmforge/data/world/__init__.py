"""The built-in, seeded synthetic world: an unlabeled corpus, and the machinery that makes any
task's labelled splits from the same world.

One seed fixes a world of invented entities (persons, organisations, places, products, films,
events) with attributes, and a target-language lexicon (`Ctx`). From it come

* the pretraining corpus (`corpus`): news stories of all topics, film/product reviews, fact
  paragraphs, and a few paragraphs of simple English and of the target language (shuffled);
* a task's splits (`make_splits`), from the task family's own maker (`WorldTask`; each family
  module in `lmforge.tasks` declares the built-in tasks it can make — topic, sentiment, ner, qa,
  summarization, translation).

Guarantees: same arguments give identical output (``random.Random`` instances seeded by strings,
no global state, no ``hash()``; the world is never changed by generating from it, so a task's
splits do not depend on whether the corpus was generated first); no task record equals a corpus
document, and a maker that says so checks its sentences against the corpus's sentences; no
record (by its key) is in two splits of a task; class labels are balanced per split. Changing
the training size does not change the test or validation records.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Callable, Iterator, Protocol

from .entities import TOPICS, World
from .facts import fact_paragraph
from .reviews import review
from .stories import story
from .text import Sentence, render_sentences
from .translation import Lexicon, english_sentence, target_sentence

SPLITS = ("train", "validation", "test")

# Share of each document kind in the pretraining corpus.
CORPUS_MIX = (("story", 0.45), ("review", 0.25), ("facts", 0.18), ("english", 0.06), ("target", 0.06))


class Ctx:
    """The world of one seed: its entities and its target-language lexicon."""

    def __init__(self, seed: int):
        self.seed = seed
        self.w = World(Random(f"lmforge-world:{seed}"))
        self.lex = Lexicon(seed)


@dataclass(frozen=True)
class Made:
    """One record a maker made, with what the leak checks compare against the corpus."""

    record: dict
    key: str  # distinct across the task's splits
    docs: tuple[str, ...] = ()  # texts that must not be corpus documents
    sentences: tuple[str, ...] = ()  # sentences that must not be corpus sentences


@dataclass(frozen=True)
class WorldTask:
    """A task the world can make: `make(rng, ctx, label, i) -> Made`, with balanced `classes`
    (None: no class labels) and the label list a model of it predicts (`labels`)."""

    make: Callable[[Random, Ctx, "str | None", int], Made]
    classes: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None
    id_prefix: str | None = None  # records get `"id": "<prefix>-<seed>-<split>-<i>"`


class Corpus(Protocol):
    def has_document(self, text: str) -> bool: ...
    def has_sentence(self, text: str) -> bool: ...


def _corpus_doc(kind: str, rng: Random, c: Ctx) -> list[Sentence]:
    w, lex = c.w, c.lex
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


def corpus(seed: int, n: int, progress: bool = False) -> Iterator[tuple[str, list[str]]]:
    """The world's pretraining corpus, one (document, its sentences) at a time."""
    c = Ctx(seed)
    counts = [int(n * share) for _, share in CORPUS_MIX]
    counts[0] += n - sum(counts)
    kinds = [k for (k, _), count in zip(CORPUS_MIX, counts) for _ in range(count)]
    rng = Random(f"lmforge-corpus:{seed}")
    rng.shuffle(kinds)
    it = kinds
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(kinds, desc="synthetic corpus", unit="doc", leave=False)
    for kind in it:
        sents = _corpus_doc(kind, rng, c)
        yield render_sentences(sents), [s.text for s in sents]


def make_splits(
    name: str, task: WorldTask, seed: int, sizes: dict[str, int], against: Corpus, world_seed: int | None = None
) -> dict[str, list[dict]]:
    """The train/validation/test records of world task `name`: `sizes[split]` records each, drawn
    with `seed` from the world of `world_seed` (default: `seed`; the pretraining corpus's world, so
    that a fine-tune seed changes the sample, not the entities and lexicon), none leaking into the
    corpus `against`, none in two splits."""
    ctx = Ctx(seed if world_seed is None else world_seed)
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split in ("test", "validation", "train"):  # held-out splits first: train never shifts them
        rng = Random(f"lmforge-{name}-{split}:{seed}")
        n = sizes[split]
        plan = [task.classes[i % len(task.classes)] for i in range(n)] if task.classes else [None] * n
        rng.shuffle(plan)
        records: list[dict] = []
        failures = 0
        for i, label in enumerate(plan):
            while True:
                made = task.make(rng, ctx, label, i)
                leak = any(against.has_document(d) for d in made.docs) or any(
                    against.has_sentence(s) for s in made.sentences
                )
                if not leak and made.key not in seen:
                    break
                failures += 1
                if failures > 1000 + 10 * n:
                    raise RuntimeError(f"synthetic {name}/{split}: could not make {n} distinct records")
            seen.add(made.key)
            rec = made.record
            if task.id_prefix:
                rec = {"id": f"{task.id_prefix}-{seed}-{split}-{i:06d}", **rec}
            records.append(rec)
        out[split] = records
    return {s: out[s] for s in SPLITS}


__all__ = ["SPLITS", "Ctx", "Made", "WorldTask", "corpus", "make_splits"]
