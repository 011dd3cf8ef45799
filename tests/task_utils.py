"""Helpers of the per-task smoke tests: a tiny world, tokenizer and Transformer, and a short
real Lightning fit of a task family on a handful of records."""

from __future__ import annotations

import functools

import lightning as L
import torch
from omegaconf import OmegaConf

from lmforge.config import TaskConfig
from lmforge.data.tokenizer import special_ids, train_tokenizer
from lmforge.models.transformer import Transformer, TransformerConfig
from lmforge.tasks.base import loader
from lmforge.train.tasks import TaskModule


@functools.lru_cache(maxsize=None)
def world(tasks: tuple[str, ...], n: int = 12):
    from lmforge.data.world import generate

    return generate(seed=7, n_corpus_docs=300, n_train=n, n_validation=4, n_test=4, tasks=tasks, progress=False)


def tokenizer(texts: list[str], vocab_size: int = 600):
    return train_tokenizer(texts, kind="bpe", vocab_size=vocab_size, min_frequency=1, progress=False)


def backbone(tok, causal: bool = True, d_model: int = 64, n_layers: int = 2, max_len: int = 128) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=tok.get_vocab_size(), d_model=d_model, n_layers=n_layers, n_heads=4,
                            d_ff=4 * d_model, max_len=max_len, causal=causal, pad_id=special_ids(tok)["pad"])
    return Transformer(cfg)


def task_cfg(**kw):
    return OmegaConf.structured(TaskConfig(**{"batch_size": 8, "dropout": 0.0, **kw}))


def fit(family, model, records, tok, meta, task, epochs: int, lr: float = 3e-3) -> TaskModule:
    """Train `model` on `records` for `epochs` (real Lightning Trainer, CPU, fp32)."""
    feats = family.features(records, tok, meta, task, train=True)
    pad = special_ids(tok)["pad"]
    steps = epochs * len(loader(feats, task.batch_size, pad, shuffle=False))
    module = TaskModule(family, model, lr, 0.0, warmup_steps=5, total_steps=steps)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, gradient_clip_val=1.0)
    trainer.fit(module, loader(feats, task.batch_size, pad, shuffle=True, seed=0))
    model.eval()
    return module
