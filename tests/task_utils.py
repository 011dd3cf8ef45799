"""Helpers of the per-task smoke tests: a tiny world (its corpus and a task's splits), a
tokenizer and Transformer, families bound to test settings, and a short real Lightning fit."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L
import torch

from lmforge.data import world as synthetic
from lmforge.data.tokenizer import special_ids, train_tokenizer
from lmforge.models.transformer import Transformer, TransformerConfig
from lmforge.tasks import configure, family_class
from lmforge.tasks.base import loader
from lmforge.train.tasks import TaskModule

SEED = 7
# the built-in world tasks and the family that makes each
WORLD_TASKS = {
    "topic": "classification",
    "sentiment": "classification",
    "ner": "tagging",
    "qa": "qa",
    "summarization": "summarization",
    "translation": "translation",
}


class CorpusSets:
    """The leak-check interface of `world.make_splits` (`has_document`, `has_sentence`) over
    in-memory sets — what `lmforge.data.corpus_index.CorpusIndex` answers from disk."""

    def __init__(self, docs: list[tuple[str, list[str]]]):
        self.documents = {doc for doc, _ in docs}
        self.sentences = {s for _, sents in docs for s in sents}

    def has_document(self, text: str) -> bool:
        return text in self.documents

    def has_sentence(self, text: str) -> bool:
        return text in self.sentences


@functools.cache
def corpus(seed: int = SEED, n: int = 300) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The world's corpus: (document, its sentences) pairs."""
    return tuple((doc, tuple(sents)) for doc, sents in synthetic.corpus(seed, n))


def texts(seed: int = SEED, n: int = 300) -> list[str]:
    return [doc for doc, _ in corpus(seed, n)]


def make_splits(task: str, seed: int = SEED, n_corpus: int = 300, **sizes: int) -> dict[str, list[dict]]:
    """Splits of world task `task` (train/validation/test sizes default to 12/4/4), none leaking
    into the corpus of (seed, n_corpus)."""
    sizes = {"train": 12, "validation": 4, "test": 4, **sizes}
    maker = family_class(WORLD_TASKS[task]).world_tasks[task]
    return synthetic.make_splits(task, maker, seed, sizes, CorpusSets(corpus(seed, n_corpus)))


@functools.cache
def _cached_splits(task: str, n: int) -> dict[str, list[dict]]:
    return make_splits(task, train=n)


def splits(task: str, n: int = 12) -> dict[str, list[dict]]:
    """`make_splits(task, train=n)`, made once per test session (do not change the records)."""
    return _cached_splits(task, n)


def labels(task: str) -> list[str] | None:
    made = family_class(WORLD_TASKS[task]).world_tasks[task].labels
    return list(made) if made else None


def write_index(directory: Path, seed: int = SEED, n: int = 300) -> Path:
    """The corpus index of the world's corpus, as the prepare stage writes it."""
    from lmforge.data.corpus_index import CorpusIndexWriter

    with CorpusIndexWriter(directory) as index:
        for doc, sents in corpus(seed, n):
            index.add(doc, sents)
    return directory


def family(task: str, **settings):
    """The family of world task `task` (or of a family name) bound to small test settings
    (batch 8, no dropout, lr 3e-3, no weight decay) and `settings` (nested dicts for `data`)."""
    name = WORLD_TASKS.get(task, task)
    return configure(
        task, {"family": name, "batch_size": 8, "dropout": 0.0, "lr": 3e-3, "weight_decay": 0.0, **settings}
    )


@functools.cache
def _tokenizer(vocab_size: int):
    return train_tokenizer(texts(), kind="bpe", vocab_size=vocab_size, min_frequency=1, progress=False)


def tokenizer(vocab_size: int = 600):
    """A BPE tokenizer trained on the world's corpus (one per size and session: do not change it)."""
    return _tokenizer(vocab_size)


def backbone(tok, causal: bool = True, d_model: int = 64, n_layers: int = 2, max_len: int = 128) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=tok.get_vocab_size(),
        d_model=d_model,
        n_layers=n_layers,
        n_heads=4,
        d_ff=4 * d_model,
        max_len=max_len,
        causal=causal,
        pad_id=special_ids(tok)["pad"],
    )
    return Transformer(cfg)


def fit(fam, model, records, tok, head, epochs: int) -> TaskModule:
    """Train `model` on `records` for `epochs` (real Lightning Trainer, CPU, fp32) with the
    family's settings (batch size, learning rate)."""
    feats = fam.features(records, tok, head, train=True)
    pad = special_ids(tok)["pad"]
    steps = epochs * len(loader(feats, fam.config.batch_size, pad, shuffle=False))
    module = TaskModule(fam, model, head, warmup_steps=5, total_steps=steps)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=1.0,
    )
    trainer.fit(module, loader(feats, fam.config.batch_size, pad, shuffle=True, seed=0))
    model.eval()
    return module
