"""Text classification (topic, sentiment): data, model, metrics and the trivial baseline.

Records are `{"text": str, "label": str}`. Metrics: accuracy (primary) and macro-F1
(torchmetrics); the baseline predicts the most frequent training label.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from lmforge.errors import DataError
from lmforge.fileio import read_jsonl
from lmforge.models.heads import SequenceClassifier

PRIMARY_METRIC = "accuracy"
SPLITS = ("train", "validation", "test")


def read_splits(task_dir: str | Path) -> dict[str, list[dict]]:
    """Read `<split>.jsonl` files; every record needs a string `text` and `label`."""
    task_dir = Path(task_dir)
    splits = {}
    for split in SPLITS:
        path = task_dir / f"{split}.jsonl"
        if not path.is_file():
            raise DataError(f"{path} is missing: run the prepare stage first")
        records = read_jsonl(path)
        if not records:
            raise DataError(f"{path} is empty")
        for i, r in enumerate(records, 1):
            for key in ("text", "label"):
                if not isinstance(r.get(key), str):
                    raise DataError(f"{path}:{i}: record has no string {key!r}")
        splits[split] = records
    return splits


def label_list(train: list[dict]) -> list[str]:
    return sorted({r["label"] for r in train})


def encode(records: list[dict], tok, label2id: dict[str, int], max_length: int) -> list[tuple[list[int], int]]:
    """Token ids (truncated to max_length) and label ids; unknown labels fail, naming the label."""
    out = []
    encodings = tok.encode_batch([r["text"] for r in records])
    for r, enc in zip(records, encodings):
        if r["label"] not in label2id:
            raise DataError(f"label {r['label']!r} does not occur in the training split (labels: {sorted(label2id)})")
        out.append((enc.ids[:max_length], label2id[r["label"]]))
    return out


def collate(batch: list[tuple[list[int], int]], pad_id: int):
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (seq, _) in enumerate(batch):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return ids, mask, torch.tensor([y for _, y in batch], dtype=torch.long)


def loader(encoded, batch_size: int, pad_id: int, shuffle: bool, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(encoded, batch_size=batch_size, shuffle=shuffle, generator=g,
                      collate_fn=lambda b: collate(b, pad_id))


def scores(preds: torch.Tensor, golds: torch.Tensor, n_labels: int) -> dict[str, float]:
    return {
        "accuracy": float(multiclass_accuracy(preds, golds, n_labels, average="micro")),
        "macro_f1": float(multiclass_f1_score(preds, golds, n_labels, average="macro")),
    }


def majority_baseline(train: list[dict], n: int) -> list[str]:
    """The most frequent training label, n times (ties go to the alphabetically first)."""
    counts = Counter(r["label"] for r in train)
    top = max(sorted(counts), key=lambda k: counts[k])
    return [top] * n


@torch.no_grad()
def predict(model: SequenceClassifier, encoded, batch_size: int, pad_id: int) -> torch.Tensor:
    model.eval()
    out = [model(ids, mask).argmax(-1) for ids, mask, _ in loader(encoded, batch_size, pad_id, shuffle=False)]
    return torch.cat(out)
