"""Token classification (named-entity recognition): records `{"tokens": [str], "tags": [str]}`,
tags in IOB2 (`B-PER`, `I-PER`, `O`; files in IOB1 — CoNLL-2003's own — are converted on reading,
`task.data.scheme: iob1`).

Words are encoded pre-split (`is_pretokenized`), each after a space as in running text, so the
tokenizer's `word_ids` maps sub-tokens to words; a word's tag is learned and predicted on its
*first* sub-token, the others are ignored (-100). A causal backbone sees only the left context at
that sub-token, so for it the sentence is fed twice — `words <sep> words` — and the tags are read
from the second copy, whose every position has seen the whole sentence in the first ("echo"
input; a bidirectional backbone reads it once).

Metric: entity-level micro precision/recall/F1 (seqeval, conlleval rules). Baseline: each word's
most frequent training tag (`O` for unseen words). Built-in world task: `ner` (PER/ORG/LOC/MISC
from the generator's own spans).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.data.world import Made, WorldTask
from lmforge.data.world.entities import TOPICS
from lmforge.data.world.facts import fact_paragraph
from lmforge.data.world.reviews import review
from lmforge.data.world.stories import story
from lmforge.errors import DataError
from lmforge.models.heads import IGNORE_INDEX, linear_head
from lmforge.tasks import register
from lmforge.tasks.base import Family, TaskConfig, Validation, loader

# the phrase types of a chunk column (CoNLL-2000/2003): never entity types
CHUNK_TYPES = frozenset({"NP", "VP", "PP", "ADVP", "ADJP", "SBAR", "PRT", "CONJP", "INTJ", "LST", "UCP"})
NER_TAGS = tuple(sorted(["O"] + [f"{p}-{t}" for t in ("PER", "ORG", "LOC", "MISC") for p in "BI"]))
_TAG = re.compile(r"^(O|[BI]-\S+)$")


@dataclass
class TaggingConfig(TaskConfig):
    pass


def _ner(rng, ctx, label, i) -> Made:
    w = ctx.w
    r = rng.random()
    if r < 0.45:
        sents = story(rng, w, TOPICS[int(rng.random() * len(TOPICS))])[0]
    elif r < 0.75:
        sents = fact_paragraph(rng, w)[0]
    else:
        sents = review(rng, w, rng.random() < 0.5)
    idx = [k for k, s in enumerate(sents) if s.has_entity()] if rng.random() < 0.9 else []
    k = idx[int(rng.random() * len(idx))] if idx else int(rng.random() * len(sents))
    chosen = sents[k : k + 2] if rng.random() < 0.2 else sents[k : k + 1]
    tokens = [t for s in chosen for t in s.tokens]
    tags = [t for s in chosen for t in s.tags]
    return Made({"tokens": tokens, "tags": tags}, " ".join(tokens), sentences=tuple(s.text for s in chosen))


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (I- starts an entity unless it follows the same type; B- only between two adjacent
    entities of one type, as in CoNLL-2003's files) → IOB2 (every entity starts with B-)."""
    out = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-"):
            kind = tag[2:]
            if prev == "O" or prev[2:] != kind:
                tag = "B-" + kind
        out.append(tag)
        prev = tag
    return out


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Entity-level micro precision/recall/F1 (seqeval, conlleval rules) over IOB2 tag sequences."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    kw = dict(zero_division=0)
    return {
        "f1": float(f1_score(gold, pred, **kw)),
        "precision": float(precision_score(gold, pred, **kw)),
        "recall": float(recall_score(gold, pred, **kw)),
    }


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


@register("tagging")
class Tagging(Family):
    config_class = TaggingConfig
    fields = {"tokens": list, "tags": list}
    metrics = ("f1", "precision", "recall")
    scale = 1
    val_metric = "f1"
    world_tasks = {"ner": WorldTask(_ner, labels=NER_TAGS)}
    description = {
        "model": "a tag per word on its first sub-token (a causal backbone reads the sentence twice)",
        "metric": "entity-level F1 (seqeval)",
        "baseline": "each word's most frequent training tag",
    }
    serves = {"inputs": ["text"], "output": "tags"}

    def record(self, row, where):
        rec = super().record(row, where)
        tokens, tags = rec["tokens"], rec["tags"]
        label_map = self.config.data.label_map
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags) or not tokens:
            raise DataError(f"{where}: needs equal-length, non-empty token and tag lists")
        tags = [str(label_map.get(str(t), t)) if label_map else str(t) for t in tags]
        for t in tags:
            if not _TAG.match(t):
                raise DataError(f"{where}: {t!r} is not an IOB tag (O, B-X, I-X)")
        if self.config.data.scheme == "iob1":
            tags = iob1_to_iob2(tags)
        return {"tokens": [str(t) for t in tokens], "tags": tags}

    def check_record(self, record, where):
        super().check_record(record, where)
        if len(record["tokens"]) != len(record["tags"]) or not record["tokens"]:
            raise DataError(f"{where}: {len(record['tokens'])} tokens but {len(record['tags'])} tags")

    def check_splits(self, splits, where):
        """Tags that look like entity tags in IOB2, before any training: a CoNLL column of another
        kind (the chunk column: NP, VP, PP… phrases tile the sentence, so few words are `O`), or a
        file in IOB1 read as IOB2, would train happily and score nothing."""
        if self.config.data.source == "builtin":
            return
        data_cfg, key = self.config.data, f"task.{self.task}.data"
        conll = data_cfg.source == "local" and data_cfg.format == "conll"
        column = f"{key}.tag_column={data_cfg.tag_column}" if conll else f"{key}.columns.tags"
        tags = Counter(t for r in splits["train"] for t in r["tags"])
        kinds = {t[2:] for t in tags if t != "O"}
        if kinds and kinds <= CHUNK_TYPES:
            share = tags["O"] / sum(tags.values())
            raise DataError(
                f"{where['train']}: {column} reads chunk tags ({', '.join(sorted(kinds))}; {share:.0%} of "
                "the words O), not entity tags: point it at the entity column (the last one, -1, in "
                "CoNLL-2003)"
            )
        if not kinds:
            raise DataError(
                f"{where['train']}: every tag of the training split is 'O': no entity to learn "
                f"(is {column} the entity column?)"
            )
        for r in splits["train"]:
            prev = "O"
            for t in r["tags"]:
                if t.startswith("I-") and (prev == "O" or prev[2:] != t[2:]):
                    raise DataError(
                        f"{where['train']}: tag {t!r} starts an entity after {prev!r}: the file is in "
                        f"IOB1, not IOB2 — set {key}.scheme=iob1"
                    )
                prev = t

    def head_config(self, splits, labels, backbone):
        if not labels:
            labels = sorted({t for r in splits["train"] for t in r["tags"]} | {"O"})
        return {"labels": list(labels), "echo": bool(backbone.cfg.causal)}

    def build(self, backbone, head):
        return TokenClassifier(backbone, len(head["labels"]), self.config.dropout)

    def _feature(self, tok, words, tags, head, sep):
        """(feature, {word index: position of its first sub-token in the read copy})."""
        max_length = self.config.max_length
        ids, word_ids = encode_words(tok, words)
        if head["echo"]:
            half = (max_length - 1) // 2
            ids, word_ids = ids[:half], word_ids[:half]
            offset = len(ids) + 1
            ids = ids + [sep] + ids
            word_ids = [None] * offset + word_ids
        else:
            ids, word_ids = ids[:max_length], word_ids[:max_length]
        first = first_subtokens(word_ids)
        labels = [IGNORE_INDEX] * len(ids)
        if tags is not None:
            label2id = {t: i for i, t in enumerate(head["labels"])}
            for w, pos in first.items():
                if tags[w] not in label2id:
                    raise DataError(f"tag {tags[w]!r} is not a tag of the model ({head['labels']})")
                labels[pos] = label2id[tags[w]]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}, first

    def features(self, records, tok, head, train):
        from lmforge.data.tokenizer import special_ids

        sep = special_ids(tok)["sep"]
        return [self._feature(tok, r["tokens"], r["tags"], head, sep)[0] for r in records]

    def loss(self, model, batch):
        logits = model(batch["input_ids"], batch["attention_mask"]).float()
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)

    def val_step(self, model, batch, head):
        """Entity-level F1 as 2·|gold ∩ predicted| / (|gold| + |predicted|), entities from the tags of
        each word's first sub-token: the test metric itself, summed over batches."""
        from seqeval.metrics.sequence_labeling import get_entities

        logits = model(batch["input_ids"], batch["attention_mask"]).float()
        y = batch["labels"]
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX)
        keep = y != IGNORE_INDEX
        names, best = head["labels"], logits.argmax(-1)
        found = total = 0
        for row_keep, gold_ids, pred_ids in zip(keep, y, best):
            gold = set(get_entities([names[i] for i in gold_ids[row_keep].tolist()]))
            pred = set(get_entities([names[i] for i in pred_ids[row_keep].tolist()]))
            found, total = found + len(gold & pred), total + len(gold) + len(pred)
        return Validation(loss, int(keep.sum()), 2 * found, total)

    @torch.no_grad()
    def predict(self, model, records, tok, head):
        from lmforge.data.tokenizer import special_ids

        model.eval()
        ids = special_ids(tok)
        pairs = [self._feature(tok, r["tokens"], None, head, ids["sep"]) for r in records]
        out, k = [], 0
        for batch in loader([f for f, _ in pairs], self.config.batch_size, ids["pad"], shuffle=False):
            best = model(batch["input_ids"], batch["attention_mask"]).argmax(-1).tolist()
            for row in best:
                r, (_, first) = records[k], pairs[k]
                # words cut off by max_length are tagged O
                out.append([head["labels"][row[first[w]]] if w in first else "O" for w in range(len(r["tokens"]))])
                k += 1
        return out

    def scores(self, predictions, records, head):
        return entity_scores([r["tags"] for r in records], predictions)

    def baseline(self, train, test, head, seed):
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

    def serve_records(self, columns):
        return [{"tokens": str(t).split()} for t in columns["text"]]
