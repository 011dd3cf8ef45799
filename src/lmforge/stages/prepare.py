"""prepare: the pretraining corpus → its index → a tokenizer → packed token files.

Steps, each a function below: `corpus` (the built-in world's documents, local text files or a Hub
dataset, split into train and validation), `index` (hashes of every document and sentence, for the
leak checks of the built-in tasks, and of the training documents' word n-grams, for the
contamination measure of evaluation splits), `tokenizer` (trained on the training documents) and
`tokens` (both splits packed into flat token files). Task data is not made here: each task's
stages make (or read) their own records, so this stage depends on no task code.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lmforge.data.corpus_index import CorpusIndexWriter
from lmforge.data.packing import pack_texts, token_dtype, write_meta
from lmforge.data.sources import load_corpus, train_val_split
from lmforge.data.tokenizer import save_tokenizer, special_ids, train_tokenizer
from lmforge.fileio import atomic_dir, write_json
from lmforge.stages.common import StageContext, log, stage

PARAMS = ("seed", "data", "tokenizer")


def corpus(ctx: StageContext) -> tuple[list[str], list[str], list[str], list[list[str]] | None]:
    """(every document, the training ones, the validation ones, and — built-in world only — each
    document's sentences, in the order of the first list)."""
    d, seed = ctx.cfg.data, ctx.cfg.seed
    if d.source == "synthetic":
        from lmforge.data import world

        docs, sentences = [], []
        for doc, sents in world.corpus(seed, d.synthetic.n_corpus_docs, progress=ctx.cfg.progress):
            docs.append(doc)
            sentences.append(sents)
        train, val = train_val_split(docs, d.val_fraction, seed)
        return docs, train, val, sentences
    src = d.text_files if d.source == "text_files" else d.hub
    train, val = load_corpus(d.source, paths=list(d.text_files.paths), name=d.hub.name, config=d.hub.config,
                             split=d.hub.split, text_column=src.text_column, val_fraction=d.val_fraction, seed=seed)
    return [*train, *val], train, val, None


def index(out: Path, docs: list[str], train: list[str], sentences: list[list[str]] | None, n: int) -> None:
    """Every document and sentence (the leak checks), the training documents' n-grams (contamination)."""
    writer = CorpusIndexWriter(out, n=n)
    train_set = set(train)
    for i, doc in enumerate(docs):
        writer.add(doc, sentences[i] if sentences is not None else None, ngrams=doc in train_set)
    writer.close()


def run(cfg: DictConfig) -> dict:
    with stage(cfg, "prepare", PARAMS) as ctx:
        d, t = ctx.cfg.data, ctx.cfg.tokenizer
        out = ctx.paths.prepare
        with atomic_dir(out) as tmp:
            docs, train, val, sentences = corpus(ctx)
            index(tmp / "index", docs, train, sentences, d.contamination_n)
            tok = train_tokenizer(train, kind=t.kind, vocab_size=t.vocab_size, min_frequency=t.min_frequency,
                                  progress=ctx.cfg.progress)
            save_tokenizer(tok, tmp / "tokenizer")
            ids = special_ids(tok)
            vocab = tok.get_vocab_size(with_added_tokens=True)
            n_tokens = {split: pack_texts(docs, tok, tmp / "tokens" / f"{split}.bin", ids["eos"],
                                          progress=ctx.cfg.progress)
                        for split, docs in (("train", train), ("val", val))}
            write_meta(tmp / "tokens", vocab_size=vocab, dtype=token_dtype(vocab), n_tokens=n_tokens,
                       eos_id=ids["eos"], pad_id=ids["pad"], tokenizer=t.kind)
            stats = {"source": d.source, "docs": {"train": len(train), "val": len(val)}, "tokens": n_tokens,
                     "vocab_size": vocab, "wall_s": ctx.elapsed()}
            write_json(tmp / "stats.json", stats)
        ctx.run.log_metrics({"tokens_train": n_tokens["train"], "tokens_val": n_tokens["val"]})
        ctx.run.log_artifact(out / "stats.json")
        log.info("prepare: %d + %d documents, %d + %d tokens, vocabulary %d", len(train), len(val),
                 n_tokens["train"], n_tokens["val"], vocab)
    return stats
