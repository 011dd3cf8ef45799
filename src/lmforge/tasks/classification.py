"""Text classification (topic, sentiment; SST-2, AG News): records `{"text": str, "label": str}`.

Model: the backbone's hidden states mean-pooled over real tokens (`pooling: mean`) or its last real
token's state (`last`: a causal backbone's reading of the whole text; exports to
`GPT2ForSequenceClassification`), then a linear layer. Metrics: accuracy (primary) and macro-F1
(torchmetrics). Baseline: the most frequent training label.

Built-in world tasks: `topic` (news stories of five topics) and `sentiment` (reviews whose verdict
turns on negation and contrast, not one keyword).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.data.world import Made, WorldTask
from lmforge.data.world.entities import TOPICS
from lmforge.data.world.reviews import review
from lmforge.data.world.stories import story
from lmforge.data.world.text import render_sentences
from lmforge.errors import ConfigError, DataError
from lmforge.models.heads import last_token, linear_head, masked_mean
from lmforge.schema import setting
from lmforge.tasks import register
from lmforge.tasks.base import Family, TaskConfig, Validation, loader, with_mask

SENTIMENTS = ("negative", "positive")


@dataclass
class ClassificationConfig(TaskConfig):
    pooling: str = setting("mean", choices=("mean", "last"))  # the text's representation


class SequenceClassifier(nn.Module):
    """Backbone → pooled hidden state → dropout → linear: ids [B, T] → label logits [B, n_labels].
    Works for causal and bidirectional backbones (with right padding, a causal backbone never
    attends to the padding)."""

    def __init__(self, backbone: nn.Module, n_labels: int, dropout: float = 0.1, pooling: str = "mean"):
        super().__init__()
        self.pooling = pooling
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)
        self.head = linear_head(backbone.cfg.d_model, n_labels)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(ids, attention_mask)
        pool = masked_mean if self.pooling == "mean" else last_token
        return self.head(self.drop(pool(hidden, attention_mask)))


def _topic(rng, ctx, label, i) -> Made:
    text = render_sentences(story(rng, ctx.w, label)[0])
    return Made({"text": text, "label": label}, text, docs=(text,))


def _sentiment(rng, ctx, label, i) -> Made:
    text = render_sentences(review(rng, ctx.w, label == "positive"))
    return Made({"text": text, "label": label}, text, docs=(text,))


def scores(preds: torch.Tensor, golds: torch.Tensor, n_labels: int) -> dict[str, float]:
    # imported here: torchmetrics costs ~2 s of start-up, which stages that never score need not pay
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    return {
        "accuracy": float(multiclass_accuracy(preds, golds, n_labels, average="micro")),
        "macro_f1": float(multiclass_f1_score(preds, golds, n_labels, average="macro")),
    }


@register("classification")
class Classification(Family):
    config_class = ClassificationConfig
    fields = {"text": str, "label": str}
    metrics = ("accuracy", "macro_f1")
    scale = 1
    val_metric = "accuracy"
    world_tasks = {
        "topic": WorldTask(_topic, classes=tuple(sorted(TOPICS)), labels=tuple(sorted(TOPICS))),
        "sentiment": WorldTask(_sentiment, classes=SENTIMENTS, labels=SENTIMENTS),
    }
    description = {
        "model": "hidden states pooled (mean, or the last token) → linear",
        "metric": "accuracy / macro-F1 (torchmetrics)",
        "baseline": "the majority class",
    }
    serves = {"inputs": ["text"], "output": "label"}

    def record(self, row, where):
        rec = super().record(row, where)
        text, label = rec["text"], rec["label"]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: empty text")
        label = str(label)
        label_map = self.config.data.label_map
        if label_map:
            if label not in label_map:
                raise DataError(
                    f"{where}: label {label!r} is not in task.{self.task}.data.label_map "
                    f"{dict(label_map)}: add it there"
                )
            label = str(label_map[label])
        return {"text": text, "label": label}

    def check_splits(self, splits, where):
        train = {r["label"] for r in splits["train"]}
        if len(train) < 2:
            raise DataError(
                f"{where['train']}: the training split has one label ({sorted(train)[0]!r}): a "
                f"classifier needs at least two (is task.{self.task}.data.columns.label the label column?)"
            )
        for split in ("validation", "test"):
            unknown = sorted({r["label"] for r in splits[split]} - train)
            if unknown:
                raise DataError(
                    f"{where[split]}: labels {unknown} of the {split} split do not occur in the "
                    f"training split (labels: {sorted(train)})"
                )

    def check_backbone(self, backbone_cfg, capabilities, where):
        super().check_backbone(backbone_cfg, capabilities, where)
        if self.config.pooling == "last" and not backbone_cfg.causal:
            raise ConfigError(
                f"task.{self.task}.pooling=last reads the last token of a left-to-right backbone; "
                f"{where} is bidirectional: use pooling=mean"
            )

    def head_config(self, splits, labels, backbone):
        return {
            "labels": list(labels) if labels else sorted({r["label"] for r in splits["train"]}),
            "pooling": self.config.pooling,
        }

    def build(self, backbone, head):
        return SequenceClassifier(backbone, len(head["labels"]), self.config.dropout, head["pooling"])

    def features(self, records, tok, head, train):
        from lmforge.data.tokenizer import special_ids

        pad = special_ids(tok)["pad"]
        label2id = {name: i for i, name in enumerate(head["labels"])}
        out = []
        for r, enc in zip(records, tok.encode_batch([r["text"] for r in records])):
            label = label2id[r["label"]] if train else label2id.get(r.get("label"), 0)
            out.append({**with_mask(enc.ids[: self.config.max_length] or [pad]), "label": label})
        return out

    def loss(self, model, batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]).float(), batch["label"])

    def val_step(self, model, batch, head):
        logits = model(batch["input_ids"], batch["attention_mask"]).float()
        y = batch["label"]
        return Validation(F.cross_entropy(logits, y), len(y), int((logits.argmax(-1) == y).sum()), len(y))

    @torch.no_grad()
    def predict(self, model, records, tok, head):
        from lmforge.data.tokenizer import special_ids

        model.eval()
        feats = self.features(records, tok, head, train=False)
        pad = special_ids(tok)["pad"]
        ids = [
            model(b["input_ids"], b["attention_mask"]).argmax(-1)
            for b in loader(feats, self.config.batch_size, pad, shuffle=False)
        ]
        return [head["labels"][i] for i in torch.cat(ids).tolist()] if ids else []

    def scores(self, predictions, records, head):
        label2id = {name: i for i, name in enumerate(head["labels"])}
        unknown = sorted({r["label"] for r in records} - set(label2id))
        if unknown:
            raise DataError(f"test labels {unknown} are not labels of the model ({head['labels']})")
        golds = torch.tensor([label2id[r["label"]] for r in records])
        preds = torch.tensor([label2id[p] for p in predictions])
        return scores(preds, golds, len(label2id))

    def baseline(self, train, test, head, seed):
        """The most frequent training label (ties go to the alphabetically first)."""
        counts = Counter(r["label"] for r in train)
        top = max(sorted(counts), key=lambda k: counts[k])
        return [top] * len(test)

    def show(self, record, predictions):
        return {"text": record["text"], "label": record["label"], **predictions}

    def outcomes(self, records, predictions):
        return [(r["label"], p) for r, p in zip(records, predictions)]

    def serve_records(self, columns):
        return [{"text": str(t)} for t in columns["text"]]
