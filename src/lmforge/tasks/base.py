"""What every task family shares: the interface the stages call, batching, and record checks.

A family turns canonical records (see each module's docstring) into model features, builds its
model from a backbone, computes its loss and a cheap validation accuracy for early stopping,
predicts on raw records, scores predictions with its library metric, and predicts a trivial
baseline. The stages only talk to this interface (`lmforge.tasks.family(name)`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from lmforge.errors import DataError

IGNORE = -100  # label of positions the loss skips (torch's cross_entropy default)
# how each feature key is padded; a key not listed here is a per-example scalar
PAD = {"input_ids": "pad", "attention_mask": 0, "labels": IGNORE, "loss_mask": 0, "context_mask": 0}


class Family:
    """One task family. Subclasses set the class attributes and implement the methods."""

    name = ""
    kind = ""  # the `kind` of a saved model directory
    metrics: tuple[str, ...] = ()  # the first is the primary metric
    scales: dict[str, int] = {}  # metric -> 1 (a fraction) or 100 (a percentage)
    fields: dict[str, type] = {}  # required record fields and their types

    def primary(self, task: Any = None) -> str:
        return self.metrics[0]

    def check(self, records: list[dict], where: str) -> None:
        """Fail on the first record without the family's fields, naming `where` and the record."""
        for i, r in enumerate(records, 1):
            for key, typ in self.fields.items():
                if not isinstance(r.get(key), typ):
                    raise DataError(f"{where}: record {i} has no {typ.__name__} {key!r}")
            self.check_record(r, f"{where}: record {i}")

    def check_record(self, record: dict, where: str) -> None:
        pass

    def meta(self, splits: dict[str, list[dict]], labels: list[str] | None, backbone: nn.Module,
             task: Any = None) -> dict:
        """What the saved model needs besides its weights (labels, input layout, pooling)."""
        return {}

    def build(self, backbone: nn.Module, meta: dict, dropout: float = 0.0) -> nn.Module:
        raise NotImplementedError

    def features(self, records: list[dict], tok, meta: dict, task, train: bool) -> list[dict]:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def val_step(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, int, int]:
        """(loss, correct, total) of a validation batch: the accuracy early stopping watches."""
        raise NotImplementedError

    def predict(self, model: nn.Module, records: list[dict], tok, meta: dict, task) -> list:
        raise NotImplementedError

    def scores(self, predictions: list, records: list[dict], meta: dict) -> dict[str, float]:
        raise NotImplementedError

    def baseline(self, train: list[dict], test: list[dict], meta: dict, task, seed: int) -> list:
        raise NotImplementedError

    def show(self, record: dict, predictions: dict[str, Any]) -> dict:
        """One line of the predictions sample: the record and each system's prediction."""
        return {**record, **predictions}

    def outcomes(self, records: list[dict], predictions: list) -> list[tuple[str, str]]:
        """(actual, predicted) pairs for the confusion plot of `dvc plots`."""
        raise NotImplementedError


def pad_batch(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad the list-valued features of a batch (see PAD) and stack the scalar ones."""
    out = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        if isinstance(values[0], list):
            fill = pad_id if PAD.get(key, 0) == "pad" else PAD.get(key, 0)
            width = max(len(v) for v in values)
            t = torch.full((len(values), width), fill, dtype=torch.long)
            for i, v in enumerate(values):
                t[i, : len(v)] = torch.tensor(v, dtype=torch.long)
            out[key] = t
        else:
            out[key] = torch.tensor(values, dtype=torch.long)
    return out


class LengthGrouped(Sampler[int]):
    """A shuffled example order in which each run of `batch_size` examples has similar lengths
    (less padding): each epoch shuffles the examples, sorts them by length within pools of `pool`
    batches, cuts the pools into batches and shuffles the batches, so batches stay random in
    content and order. The order depends only on (seed, epoch); Lightning sets the epoch through
    `set_epoch`. Under data parallelism each rank takes its share of the full batches."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, pool: int = 50):
        self.lengths, self.batch_size = lengths, batch_size
        self.seed, self.pool, self.epoch = seed, pool, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _ranks() -> tuple[int, int]:
        import torch.distributed as dist

        return (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)

    def __len__(self) -> int:
        world = self._ranks()[1]
        return len(self.lengths) if world == 1 else len(self.lengths) // self.batch_size // world * self.batch_size

    def __iter__(self):
        n = len(self.lengths)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=g).tolist()
        span = self.pool * self.batch_size
        pools = (sorted(order[i : i + span], key=lambda i: -self.lengths[i]) for i in range(0, n, span))
        batches = [b[j : j + self.batch_size] for b in pools for j in range(0, len(b), self.batch_size)]
        # all batches are full but the last pool's remainder: it stays last, so that the loader's
        # cuts every `batch_size` examples fall on batch edges
        n_full = n // self.batch_size
        batch_order = torch.randperm(n_full, generator=g).tolist() + list(range(n_full, len(batches)))
        rank, world = self._ranks()
        if world > 1:  # the same number of full batches on every rank
            batch_order = batch_order[rank : n_full // world * world : world]
        return iter([i for k in batch_order for i in batches[k]])


def loader(features: list[dict], batch_size: int, pad_id: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of features padded to their longest member: in order, or shuffled and grouped by
    length (`LengthGrouped`)."""
    sampler = LengthGrouped([len(f["input_ids"]) for f in features], batch_size, seed) if shuffle else None
    return DataLoader(features, batch_size=batch_size, sampler=sampler, collate_fn=lambda b: pad_batch(b, pad_id))


def with_mask(ids: list[int]) -> dict:
    return {"input_ids": ids, "attention_mask": [1] * len(ids)}
