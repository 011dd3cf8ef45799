"""prepare: the pretraining corpus → a tokenizer → packed token files, and the corpus's index.

Steps, each a function below: `corpus` (the built-in world's documents, local text files or a Hub
dataset, split into train and validation — streamed, never held in memory but for the small
built-in world), `tokenizer` (trained on the training documents, up to its character budget) and
`pack` (both splits packed into flat token files; while they stream past, the index records every
document and sentence — the leak checks of the built-in tasks — and the training documents' word
n-grams — the contamination measure of evaluation splits). Task data is not made here: each task's
stages make (or read) their own records, so this stage depends on no task code.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from omegaconf import DictConfig

from lmforge.data.corpus_index import CorpusIndexWriter
from lmforge.data.packing import pack_texts, token_dtype, write_meta
from lmforge.data.sources import Corpus, load_corpus
from lmforge.data.tokenizer import save_tokenizer, special_ids, train_tokenizer
from lmforge.fileio import atomic_dir, write_json
from lmforge.stages.common import StageContext, log, stage

PARAMS = ("seed", "data", "tokenizer")


def corpus(ctx: StageContext) -> tuple[Corpus, dict[str, list[str]]]:
    """(the corpus as re-iterable train/validation streams, each document's sentences — the
    built-in world only: it knows them)."""
    data_cfg, seed = ctx.cfg.data, ctx.cfg.seed
    if data_cfg.source == "synthetic":
        from lmforge.data import world

        docs, sentences = [], {}
        for doc, sents in world.corpus(seed, data_cfg.synthetic.n_corpus_docs, progress=ctx.cfg.progress):
            docs.append(doc)
            sentences[doc] = sents
        return Corpus.from_documents(docs, data_cfg.val_fraction, seed, "the synthetic world"), sentences
    src = data_cfg.text_files if data_cfg.source == "text_files" else data_cfg.hub
    hub, files = data_cfg.hub, data_cfg.text_files
    return load_corpus(
        data_cfg.source,
        paths=list(files.paths),
        name=hub.name,
        config=hub.config,
        split=hub.split,
        text_column=src.text_column,
        val_fraction=data_cfg.val_fraction,
        seed=seed,
        encoding=files.encoding,
        streaming=hub.streaming,
        num_proc=hub.num_proc,
    ), {}


def pack(ctx: StageContext, out, text_corpus: Corpus, sentences: dict[str, list[str]], tok) -> tuple[dict, dict]:
    """Both splits packed into `out/tokens`, indexed into `out/index` on the way; (documents, tokens) per split."""
    ids = special_ids(tok)
    n_docs = {"train": 0, "val": 0}

    def indexed(split: str, docs: Iterable[str], index: CorpusIndexWriter) -> Iterator[str]:
        for doc in docs:
            n_docs[split] += 1
            index.add(doc, sentences.get(doc), ngrams=split == "train")
            yield doc

    with CorpusIndexWriter(out / "index", n=ctx.cfg.data.contamination_n) as index:
        n_tokens = {
            split: pack_texts(
                indexed(split, docs, index), tok, out / "tokens" / f"{split}.bin", ids["eos"], progress=ctx.cfg.progress
            )
            for split, docs in (("train", text_corpus.train()), ("val", text_corpus.validation()))
        }
    vocab = tok.get_vocab_size(with_added_tokens=True)
    write_meta(
        out / "tokens",
        vocab_size=vocab,
        dtype=token_dtype(vocab),
        n_tokens=n_tokens,
        eos_id=ids["eos"],
        pad_id=ids["pad"],
        tokenizer=ctx.cfg.tokenizer.kind,
    )
    return n_docs, n_tokens


def run(cfg: DictConfig) -> dict:
    with stage(cfg, "prepare", PARAMS) as ctx:
        tok_cfg = ctx.cfg.tokenizer
        out = ctx.paths.prepare
        text_corpus, sentences = corpus(ctx)  # opened and checked: its files present, readable, in their encoding
        ctx.run.begin()
        with atomic_dir(out) as tmp:
            tok = train_tokenizer(
                text_corpus.train(),
                kind=tok_cfg.kind,
                vocab_size=tok_cfg.vocab_size,
                min_frequency=tok_cfg.min_frequency,
                progress=ctx.cfg.progress,
                max_chars=tok_cfg.max_train_chars,
            )
            save_tokenizer(tok, tmp / "tokenizer")
            n_docs, n_tokens = pack(ctx, tmp, text_corpus, sentences, tok)
            vocab = tok.get_vocab_size(with_added_tokens=True)
            stats = {
                "source": ctx.cfg.data.source,
                "docs": n_docs,
                "tokens": n_tokens,
                "vocab_size": vocab,
            }
            write_json(tmp / "stats.json", stats)
            ctx.run.log_artifact(tmp / "stats.json")  # what this process wrote, before the rename
        ctx.run.log_metrics({"tokens_train": n_tokens["train"], "tokens_val": n_tokens["val"]})
        ctx.record_runtime("prepare")
        log.info(
            "prepare: %d + %d documents, %d + %d tokens, vocabulary %d",
            n_docs["train"],
            n_docs["val"],
            n_tokens["train"],
            n_tokens["val"],
            vocab,
        )
    return stats
