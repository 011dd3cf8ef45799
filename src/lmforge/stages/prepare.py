"""prepare: corpus → tokenizer → packed token files + corpus index (+ the built-in task splits,
contamination). The corpus streams: one pass trains the tokenizer (up to its character budget),
one packs the train split while indexing it, one packs the validation split."""

from __future__ import annotations

from omegaconf import DictConfig

from lmforge.data import world
from lmforge.data.corpus_index import CorpusIndex, CorpusIndexWriter
from lmforge.data.packing import pack_texts, token_dtype, write_meta
from lmforge.data.sources import Corpus, load_corpus
from lmforge.data.tokenizer import save_tokenizer, special_ids, train_tokenizer
from lmforge.fileio import atomic_dir, write_json, write_jsonl
from lmforge.stages.common import log, stage

# the field of each task's records that holds the document text (for the overlap measure)
TEXT_FIELD = {
    "topic": "text", "sentiment": "text", "ner": "tokens", "qa": "context",
    "summarization": "document", "translation": "source",
}


def _text(task: str, record: dict) -> str:
    value = record[TEXT_FIELD[task]]
    return " ".join(value) if isinstance(value, list) else value


def run(cfg: DictConfig) -> dict:
    d = cfg.data
    with stage(cfg, "prepare") as run:
        out = run.paths.prepare
        with atomic_dir(out) as tmp:
            tasks: dict = {}
            if d.source == "synthetic":
                s = d.synthetic
                data = world.generate(cfg.seed, s.n_corpus_docs, s.n_train, s.n_validation, s.n_test,
                                      tasks=list(s.tasks), progress=cfg.trainer.enable_progress_bar,
                                      n_train_per_task=dict(s.n_train_per_task))
                corpus = Corpus.from_documents(data.corpus, d.val_fraction, cfg.seed, "the synthetic world")
                sentences = dict(zip(data.corpus, data.corpus_sentences))
                tasks = data.tasks
                for name, splits in tasks.items():
                    for split, records in splits.items():
                        write_jsonl(tmp / "tasks" / name / f"{split}.jsonl", records)
                    if name in data.labels:
                        write_json(tmp / "tasks" / name / "labels.json", data.labels[name])
            else:
                src = d.text_files if d.source == "text_files" else d.hub
                corpus = load_corpus(
                    d.source, paths=list(d.text_files.paths), name=d.hub.name, config=d.hub.config,
                    split=d.hub.split, text_column=src.text_column, val_fraction=d.val_fraction, seed=cfg.seed,
                    encoding=d.text_files.encoding, streaming=d.hub.streaming, num_proc=d.hub.num_proc,
                )
                sentences = {}

            t = cfg.tokenizer
            tok = train_tokenizer(corpus.train(), kind=t.kind, vocab_size=t.vocab_size, min_frequency=t.min_frequency,
                                  progress=cfg.trainer.enable_progress_bar, max_chars=t.max_train_chars)
            save_tokenizer(tok, tmp / "tokenizer", model_max_length=cfg.model.max_len)
            ids = special_ids(tok)
            vocab = tok.get_vocab_size(with_added_tokens=True)
            n_docs = {"train": 0, "val": 0}

            def counted(split, docs, index=None):  # the packing pass also counts (and indexes) them
                for doc in docs:
                    n_docs[split] += 1
                    if index is not None:
                        index.add(doc, sentences.get(doc))
                    yield doc

            with CorpusIndexWriter(tmp / "corpus_index", n=d.contamination_n) as index:
                n_tokens = {
                    split: pack_texts(counted(split, docs, index if split == "train" else None), tok,
                                      tmp / "tokens" / f"{split}.bin", ids["eos"],
                                      progress=cfg.trainer.enable_progress_bar)
                    for split, docs in (("train", corpus.train()), ("val", corpus.validation()))
                }
            write_meta(tmp / "tokens", vocab_size=vocab, dtype=token_dtype(vocab), n_tokens=n_tokens,
                       eos_id=ids["eos"], pad_id=ids["pad"], tokenizer=t.kind)

            corpus_index = CorpusIndex(tmp / "corpus_index")  # the train split: what pretraining learns from
            contamination = {
                f"{name}/{split}": corpus_index.overlap(_text(name, r) for r in splits[split])
                for name, splits in tasks.items() for split in ("validation", "test")
            }
            worst = max((c["fraction_docs"] for c in contamination.values()), default=0.0)
            worst_ngrams = max((c["fraction_ngrams"] for c in contamination.values()), default=0.0)
            log.info("contamination: up to %.1f%% of an eval split's documents share a %d-gram with the "
                     "corpus (%.1f%% of its %d-grams)", 100 * worst, d.contamination_n, 100 * worst_ngrams,
                     d.contamination_n)

            stats = {
                "source": d.source,
                "docs": n_docs,
                "tokens": n_tokens,
                "vocab_size": vocab,
                "tasks": {name: {split: len(r) for split, r in splits.items()} for name, splits in tasks.items()},
                "contamination": contamination,
                "contamination_max_fraction_docs": worst,
                "contamination_max_fraction_ngrams": worst_ngrams,
                "wall_s": run.elapsed(),
            }
            run.log_metrics({"tokens_train": n_tokens["train"], "tokens_val": n_tokens["val"],
                             "contamination_max_fraction_docs": worst,
                             "contamination_max_fraction_ngrams": worst_ngrams})
            write_json(tmp / "stats.json", stats)
        run.log_artifact(out / "stats.json")
    return stats
