"""Text classification (topic, sentiment; SST-2, AG News): records `{"text": str, "label": str}`.

Model: the backbone's hidden states mean-pooled over real tokens (`task.pooling=mean`) or its
last real token's state (`last`), then a linear layer (`SequenceClassifier`). Metrics: accuracy
(primary) and macro-F1 (torchmetrics). Baseline: the most frequent training label.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

from lmforge.errors import DataError
from lmforge.models.heads import SequenceClassifier
from lmforge.tasks.base import Family, loader, with_mask

PRIMARY_METRIC = "accuracy"


def label_list(train: list[dict]) -> list[str]:
    return sorted({r["label"] for r in train})


def scores(preds: torch.Tensor, golds: torch.Tensor, n_labels: int) -> dict[str, float]:
    # imported here: torchmetrics costs ~2 s of start-up (it imports scipy, matplotlib,
    # transformers), which the stages that never score a classifier need not pay
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    return {
        "accuracy": float(multiclass_accuracy(preds, golds, n_labels, average="micro")),
        "macro_f1": float(multiclass_f1_score(preds, golds, n_labels, average="macro")),
    }


def majority_baseline(train: list[dict], n: int) -> list[str]:
    """The most frequent training label, n times (ties go to the alphabetically first)."""
    counts = Counter(r["label"] for r in train)
    top = max(sorted(counts), key=lambda k: counts[k])
    return [top] * n


class Classification(Family):
    name = "classification"
    kind = "sequence_classifier"
    metrics = ("accuracy", "macro_f1")
    scales = {"accuracy": 1, "macro_f1": 1}
    fields = {"text": str, "label": str}

    def meta(self, splits, labels, backbone, task=None):
        return {"labels": list(labels) if labels else label_list(splits["train"]),
                "pooling": getattr(task, "pooling", "mean")}

    def build(self, backbone, meta, dropout=0.0):
        return SequenceClassifier(backbone, len(meta["labels"]), dropout, meta.get("pooling", "mean"))

    def features(self, records, tok, meta, task, train):
        label2id = {name: i for i, name in enumerate(meta["labels"])}
        out = []
        for r, enc in zip(records, tok.encode_batch([r["text"] for r in records])):
            if r["label"] not in label2id:
                raise DataError(f"label {r['label']!r} does not occur in the training split "
                                f"(labels: {sorted(label2id)})")
            out.append({**with_mask(enc.ids[: task.max_length]), "label": label2id[r["label"]]})
        return out

    def loss(self, model, batch):
        return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]).float(), batch["label"])

    def val_step(self, model, batch):
        logits = model(batch["input_ids"], batch["attention_mask"]).float()
        y = batch["label"]
        return F.cross_entropy(logits, y), int((logits.argmax(-1) == y).sum()), len(y)

    @torch.no_grad()
    def predict(self, model, records, tok, meta, task):
        model.eval()
        feats = self.features([{**r, "label": meta["labels"][0]} for r in records], tok, meta, task, False)
        pad = _pad_id(tok)
        ids = [model(b["input_ids"], b["attention_mask"]).argmax(-1)
               for b in loader(feats, task.batch_size, pad, shuffle=False)]
        return [meta["labels"][i] for i in torch.cat(ids).tolist()] if ids else []

    def scores(self, predictions, records, meta):
        label2id = {name: i for i, name in enumerate(meta["labels"])}
        unknown = sorted({r["label"] for r in records} - set(label2id))
        if unknown:
            raise DataError(f"test labels {unknown} do not occur in the training split (labels: {meta['labels']})")
        golds = torch.tensor([label2id[r["label"]] for r in records])
        preds = torch.tensor([label2id[p] for p in predictions])
        return scores(preds, golds, len(label2id))

    def baseline(self, train, test, meta, task, seed):
        return majority_baseline(train, len(test))

    def show(self, record, predictions):
        return {"text": record["text"], "label": record["label"], **predictions}

    def outcomes(self, records, predictions):
        return [(r["label"], p) for r, p in zip(records, predictions)]


def _pad_id(tok) -> int:
    from lmforge.data.tokenizer import special_ids

    return special_ids(tok)["pad"]
