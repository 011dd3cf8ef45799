"""Token classification (named-entity recognition): records `{"tokens": [str], "tags": [str]}`,
tags in IOB2 (`B-PER`, `I-PER`, `O`; IOB1 files are converted on reading, see formats.py).

Words are encoded pre-split (`is_pretokenized`), each after a space as in running text, so the
tokenizer's `word_ids` maps sub-tokens to words; a word's tag is learned and predicted on its
*first* sub-token, the others are ignored (-100). A causal backbone sees only the left context at
that sub-token, so for it the sentence is fed twice — `words <sep> words` — and the tags are read
from the second copy, whose every position has seen the whole sentence in the first ("echo"
input; a bidirectional backbone reads it once).

Metric: entity-level micro precision/recall/F1 (seqeval, conlleval rules). Baseline: each word's
most frequent training tag (`O` for unseen words).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import DataError
from lmforge.models.heads import linear_head
from lmforge.tasks.base import IGNORE, Family, loader
from lmforge.tasks.metrics import entity_scores


class TokenClassifier(nn.Module):
    """Backbone → dropout → linear, at every position: ids [B, T] → tag logits [B, T, n_tags]."""

    def __init__(self, backbone: nn.Module, n_labels: int, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)
        self.head = linear_head(backbone.cfg.d_model, n_labels)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.backbone(ids, attention_mask)))


def encode_words(tok, words: list[str]) -> tuple[list[int], list[int | None]]:
    """Token ids and, per token, the index of its word (None for added special tokens)."""
    enc = tok.encode([w if i == 0 else " " + w for i, w in enumerate(words)], is_pretokenized=True)
    return enc.ids, enc.word_ids


def first_subtokens(word_ids: list[int | None]) -> dict[int, int]:
    """word index -> position of its first sub-token."""
    out: dict[int, int] = {}
    for pos, w in enumerate(word_ids):
        if w is not None and w not in out:
            out[w] = pos
    return out


class Tagging(Family):
    name = "tagging"
    kind = "token_classifier"
    metrics = ("f1", "precision", "recall")
    scales = {"f1": 1, "precision": 1, "recall": 1}
    fields = {"tokens": list, "tags": list}

    def check_record(self, record, where):
        if len(record["tokens"]) != len(record["tags"]):
            raise DataError(f"{where}: {len(record['tokens'])} tokens but {len(record['tags'])} tags")
        if not record["tokens"]:
            raise DataError(f"{where}: no tokens")

    def meta(self, splits, labels, backbone, task=None):
        if not labels:
            labels = sorted({t for r in splits["train"] for t in r["tags"]} | {"O"})
        return {"labels": list(labels), "echo": bool(getattr(backbone.cfg, "causal", True))}

    def build(self, backbone, meta, dropout=0.0):
        return TokenClassifier(backbone, len(meta["labels"]), dropout)

    def _feature(self, tok, words, tags, meta, max_length, sep):
        """(feature, {word index: position of its first sub-token in the read copy})."""
        ids, word_ids = encode_words(tok, words)
        if meta["echo"]:
            half = (max_length - 1) // 2
            ids, word_ids = ids[:half], word_ids[:half]
            offset = len(ids) + 1
            ids = ids + [sep] + ids
            word_ids = [None] * offset + word_ids
        else:
            ids, word_ids = ids[:max_length], word_ids[:max_length]
        first = first_subtokens(word_ids)
        labels = [IGNORE] * len(ids)
        if tags is not None:
            label2id = {t: i for i, t in enumerate(meta["labels"])}
            for w, pos in first.items():
                if tags[w] not in label2id:
                    raise DataError(f"tag {tags[w]!r} does not occur in the training split (tags: {meta['labels']})")
                labels[pos] = label2id[tags[w]]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}, first

    def features(self, records, tok, meta, task, train):
        sep = _special(tok)["sep"]
        return [self._feature(tok, r["tokens"], r["tags"], meta, task.max_length, sep)[0] for r in records]

    def loss(self, model, batch):
        logits = model(batch["input_ids"], batch["attention_mask"]).float()
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)

    def val_step(self, model, batch):
        logits = model(batch["input_ids"], batch["attention_mask"]).float()
        y = batch["labels"]
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)
        keep = y != IGNORE
        return loss, int((logits.argmax(-1)[keep] == y[keep]).sum()), int(keep.sum())

    @torch.no_grad()
    def predict(self, model, records, tok, meta, task):
        model.eval()
        sep = _special(tok)["sep"]
        pairs = [self._feature(tok, r["tokens"], None, meta, task.max_length, sep) for r in records]
        out, k = [], 0
        for batch in loader([f for f, _ in pairs], task.batch_size, _special(tok)["pad"], shuffle=False):
            best = model(batch["input_ids"], batch["attention_mask"]).argmax(-1).tolist()
            for row in best:
                r, (_, first) = records[k], pairs[k]
                # words cut off by max_length are tagged O
                out.append([meta["labels"][row[first[w]]] if w in first else "O" for w in range(len(r["tokens"]))])
                k += 1
        return out

    def scores(self, predictions, records, meta):
        return entity_scores([r["tags"] for r in records], predictions)

    def baseline(self, train, test, meta, task, seed):
        counts: dict[str, Counter] = defaultdict(Counter)
        for r in train:
            for word, tag in zip(r["tokens"], r["tags"]):
                counts[word][tag] += 1
        best = {w: max(sorted(c), key=lambda t: c[t]) for w, c in counts.items()}
        return [[best.get(w, "O") for w in r["tokens"]] for r in test]

    def show(self, record, predictions):
        return {"tokens": record["tokens"], "tags": record["tags"], **predictions}

    def outcomes(self, records, predictions):
        return [(g, p) for r, pred in zip(records, predictions) for g, p in zip(r["tags"], pred)]


def _special(tok) -> dict[str, int]:
    from lmforge.data.tokenizer import special_ids

    ids = special_ids(tok)
    ids.setdefault("sep", ids["eos"])
    return ids
