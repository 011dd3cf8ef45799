"""What every task family shares: its settings' base class, the interface the stages call, and
batching.

A family module owns everything specific to its idea — its settings (a `TaskConfig` subclass that
checks itself), its record fields and how a data file's columns become them, its built-in world
tasks, features, head, loss, predictions, metric, baseline, the text the report prints, and what
it serves — and registers itself (`lmforge.tasks.register`). The stages only call this interface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from lmforge.data.formats import FORMATS
from lmforge.errors import ConfigError, DataError
from lmforge.models.heads import IGNORE_INDEX
from lmforge.schema import setting

# how each feature key is padded; a key not listed here is a per-example scalar
PAD = {"input_ids": "pad", "attention_mask": 0, "labels": IGNORE_INDEX, "loss_mask": 0, "context_mask": 0}


class Validation(NamedTuple):
    """What a validation batch scores: its mean loss over `loss_weight` items (examples, tags,
    target tokens) and the family's `val_metric` as `hits / out_of` — both sums over batches, so
    that any split of the data across processes reduces to the single-process value."""

    loss: torch.Tensor
    loss_weight: int
    hits: float
    out_of: int


@dataclass
class BuiltinData:
    """Records the synthetic world makes (`Family.world_tasks`), sized here."""

    source: str = setting("builtin", choices=("builtin",))
    world_task: Optional[str] = None  # which of the world's tasks (null: the task's own name)
    n_train: int = setting(400, gt=0)
    n_validation: int = setting(200, gt=0)
    n_test: int = setting(500, gt=0)
    max_train: Optional[int] = setting(None, gt=0)  # keep N training records (a seeded sample)


@dataclass
class _ReadData:
    """What reading real data needs, from files or the Hub (`lmforge.data.formats`)."""

    columns: dict[str, str] = field(default_factory=dict)  # record field (text, label, ...) -> column
    label_map: dict[str, str] = field(default_factory=dict)  # raw label -> label name
    scheme: str = setting("iob2", choices=("iob1", "iob2"))  # tags: converted to IOB2
    source_lang: str = "en"  # parallel text / translation pairs: file suffixes or dict keys
    target_lang: str = "de"
    validation_fraction: float = setting(0.1, gt=0, lt=1)  # carved from train when there is no validation split
    max_train: Optional[int] = setting(None, gt=0)  # keep N training records (after a seeded shuffle)
    max_eval: Optional[int] = setting(None, gt=0)  # keep the first N validation / test records
    skip_malformed: bool = False  # count and report malformed records instead of failing


@dataclass
class LocalData(_ReadData):
    """Records from local files in a standard format."""

    source: str = setting("local", choices=("local",))
    format: str = setting("jsonl", choices=FORMATS)
    train: Optional[str] = None  # a file, relative to the project root (parallel: without the language suffix)
    validation: Optional[str] = None  # null: carved from train (validation_fraction)
    test: Optional[str] = None  # null: the validation file is the test split (and validation is carved)
    encoding: str = "utf-8"
    header: bool = True  # csv/tsv: the first row names the columns
    tag_column: int = -1  # conll: the column holding the tag

    def check(self, key: str) -> None:
        if not self.train:
            raise ConfigError(f"{key}.train is not set: task.data.source=local needs a {self.format} file")
        if not (self.test or self.validation):
            raise ConfigError(f"{key}.test is not set: task.data.source=local needs a test (or validation) file")


@dataclass
class HubData(_ReadData):
    """Records from a Hugging Face dataset (`datasets.load_dataset(hub_name, hub_config)`)."""

    source: str = setting("hub", choices=("hub",))
    hub_name: Optional[str] = None
    hub_config: Optional[str] = None
    hub_splits: dict[str, str] = field(default_factory=dict)  # train/validation/test -> the Hub split ("": none)
    # hub_name json / csv / parquet: the local files of each split, through `datasets`
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None

    def check(self, key: str) -> None:
        if not self.hub_name:
            raise ConfigError(f"{key}.hub_name is not set: task.data.source=hub needs a dataset (e.g. glue)")


DATA_SOURCES = {"builtin": BuiltinData, "local": LocalData, "hub": HubData}


@dataclass
class TaskConfig:
    """The settings every task has; a family's settings extend it."""

    family: str = ""
    data: Any = field(default_factory=BuiltinData)  # BuiltinData | LocalData | HubData, by `data.source`
    max_length: int = setting(128, gt=0)  # tokens per training sequence
    batch_size: int = setting(32, gt=0)  # global: split evenly over devices × nodes
    lr: float = setting(5e-4, gt=0)
    weight_decay: float = setting(0.01, ge=0)
    max_epochs: int = setting(10, gt=0)
    warmup_ratio: float = setting(0.1, ge=0, lt=1)
    patience: int = setting(3, ge=0)  # epochs without a better validation score before stopping
    dropout: float = setting(0.1, ge=0, lt=1)
    freeze_embeddings: bool = False  # keep the backbone's token embeddings as pretrained (fewer weights to move)
    n_predictions: int = setting(20, ge=0, eval_only=True)  # the predictions sample evaluate writes
    # what fine-tuning trains: every weight, low-rank adapters beside the backbone's projections (saved
    # merged), or the head alone on a fixed backbone (a linear probe)
    method: str = setting("full", choices=("full", "lora", "frozen"))
    lora_rank: int = setting(8, gt=0)
    lora_alpha: float = setting(16.0, gt=0)  # the adapters' output is scaled by alpha / rank
    lora_dropout: float = setting(0.0, ge=0, lt=1)
    lora_targets: list[str] = field(default_factory=list)  # linear layers by name (or last parts); []: the backbone's


def training_settings(config: TaskConfig) -> dict:
    """The settings that shape a fine-tuned model (not those read only at evaluation)."""
    from dataclasses import asdict, fields

    def keep(obj: Any) -> dict:
        out = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("eval_only"):
                continue
            out[f.name] = keep(value) if hasattr(value, "__dataclass_fields__") else value
        return out

    return keep(config) if hasattr(config, "__dataclass_fields__") else asdict(config)


class Family:
    """One task family, bound to one task (`task`: its name; `config`: its checked settings).
    Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str] = ""  # the registered family name (set by `register`)
    config_class: ClassVar[type] = TaskConfig
    fields: ClassVar[dict[str, type]] = {}  # canonical record fields and their types
    metrics: ClassVar[tuple[str, ...]] = ()  # test metrics; the first is the primary one
    scale: ClassVar[int] = 1  # the metrics' maximum: 1 (fractions) or 100 (percentages)
    val_metric: ClassVar[str] = "accuracy"  # the validation score checkpointing and early stopping watch
    generates: ClassVar[bool] = False  # writes text: needs a backbone that reads left to right and decodes
    world_tasks: ClassVar[dict] = {}  # built-in world task name -> `lmforge.data.world.WorldTask`
    # the report's sentence on it: {"model": ..., "metric": ..., "baseline": ...}
    description: ClassVar[dict[str, str]] = {}
    serves: ClassVar[Optional[dict]] = None  # MLflow serving: {"inputs": [columns], "output": name}; None: not served

    def __init__(self, task: str, config: TaskConfig):
        self.task, self.config = task, config

    @property
    def primary(self) -> str:
        return self.metrics[0]

    # -- data ------------------------------------------------------------------------------------
    def record(self, row: dict, where: str) -> dict:
        """A row of a data file (columns) as a canonical record; DataError naming `where`."""
        columns = self.config.data.columns
        rec = {}
        for name in self.fields:
            col = columns.get(name, name)
            if col not in row or row[col] is None:
                raise DataError(
                    f"{where}: no column {col!r} (record field {name!r}): set "
                    f"task.{self.task}.data.columns.{name} to the column that holds it"
                )
            rec[name] = row[col]
        return rec

    def check_record(self, record: dict, where: str) -> None:
        for key, typ in self.fields.items():
            if not isinstance(record.get(key), typ):
                raise DataError(f"{where}: record has no {typ.__name__} {key!r}")

    def check_splits(self, splits: dict[str, list[dict]], where: dict[str, str]) -> None:
        """Checks that need the whole data, before any training (e.g. at least two labels)."""

    def document(self, record: dict) -> str:
        """The record's text, for the contamination measure against the pretraining corpus."""
        value = record[next(iter(self.fields))]
        return " ".join(value) if isinstance(value, list) else str(value)

    # -- model -----------------------------------------------------------------------------------
    def check_backbone(self, backbone_cfg: Any, capabilities: Any, where: str) -> None:
        """Refuse a backbone this task cannot run on, before training, naming both."""
        if self.config.max_length > backbone_cfg.max_len:
            raise ConfigError(
                f"task.{self.task}.max_length={self.config.max_length} exceeds the max_len "
                f"{backbone_cfg.max_len} of {where}: lower it, or pretrain with a larger model.max_len"
            )

    def head_config(self, splits: dict[str, list[dict]], labels: list[str] | None, backbone: nn.Module) -> dict:
        """What the saved model needs besides its weights (labels, input layout, pooling)."""
        return {}

    def build(self, backbone: nn.Module, head: dict) -> nn.Module:
        raise NotImplementedError

    def features(self, records: list[dict], tok, head: dict, train: bool) -> list[dict]:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def val_step(self, model: nn.Module, batch: dict, head: dict) -> Validation:
        """The loss and the `val_metric` (what checkpointing and early stopping watch) of a validation batch."""
        raise NotImplementedError

    def predict(self, model: nn.Module, records: list[dict], tok, head: dict) -> list:
        raise NotImplementedError

    def scores(self, predictions: list, records: list[dict], head: dict) -> dict[str, float]:
        raise NotImplementedError

    def baseline(self, train: list[dict], test: list[dict], head: dict, seed: int) -> list:
        raise NotImplementedError

    # -- output ----------------------------------------------------------------------------------
    def show(self, record: dict, predictions: dict[str, Any]) -> dict:
        """One line of the predictions sample: the record and each system's prediction."""
        return {**record, **predictions}

    def outcomes(self, records: list[dict], predictions: list) -> list[tuple[str, str]]:
        """(actual, predicted) pairs for the confusion plot of `dvc plots`."""
        raise NotImplementedError

    def serve_records(self, columns: dict[str, list]) -> list[dict]:
        """Serving: the request's input columns → records to `predict` on."""
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


def _ranks() -> tuple[int, int]:
    import torch.distributed as dist

    return (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)


class LengthGrouped(Sampler[int]):
    """A shuffled example order in which each run of `batch_size` examples has similar lengths
    (less padding): each epoch shuffles the examples, sorts them by length within pools of `pool`
    batches, cuts the pools into batches and shuffles the batches, so batches stay random in
    content and order. The order depends only on (seed, epoch); Lightning sets the epoch through
    `set_epoch`. `batch_size` is the global batch: under data parallelism each rank takes its
    contiguous slice of every global batch (the loader's batch is then batch_size / world), so
    N processes see exactly the batches one process would. `skip`: batches of the next epoch's
    order already trained on (a run resumed mid-epoch, `train.tasks.EpochPosition`), left out once."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, pool: int = 50):
        self.lengths, self.batch_size = lengths, batch_size
        self.seed, self.pool, self.epoch, self.skip = seed, pool, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        world = _ranks()[1]
        return len(self.lengths) if world == 1 else len(self.lengths) // self.batch_size * (self.batch_size // world)

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
        rank, world = _ranks()
        skip, self.skip = self.skip, 0
        if world > 1:  # full global batches only; each rank its slice of each
            share = self.batch_size // world
            return iter([i for k in batch_order[skip:n_full] for i in batches[k][rank * share : (rank + 1) * share]])
        return iter([i for k in batch_order[skip:] for i in batches[k]])


def per_device(batch_size: int, what: str) -> int:
    """The per-process share of a global batch under data parallelism."""
    world = _ranks()[1]
    if batch_size % world:
        raise ConfigError(f"{what}={batch_size} is not divisible by the {world} processes of data parallelism")
    return batch_size // world


def loader(
    features: list[dict], batch_size: int, pad_id: int, shuffle: bool, seed: int = 0, shard: bool = False
) -> DataLoader:
    """Batches of features padded to their longest member: shuffled and grouped by length
    (`LengthGrouped`, `batch_size` global, each process its slice), or in order — all of them, or
    with `shard` every process its own share of the batches (validation under data parallelism)."""
    # a loader's own generator: starting an iteration draws a seed from it, not from torch's global
    # generator, whose draws (dropout) a resumed run must continue exactly
    common = {"collate_fn": lambda b: pad_batch(b, pad_id), "generator": torch.Generator().manual_seed(seed)}
    if shuffle:
        sampler = LengthGrouped([len(f["input_ids"]) for f in features], batch_size, seed)
        return DataLoader(features, batch_size=per_device(batch_size, "task.batch_size"), sampler=sampler, **common)
    rank, world = _ranks()
    if shard and world > 1:
        batches = [list(range(i, min(i + batch_size, len(features)))) for i in range(0, len(features), batch_size)]
        return DataLoader(features, batch_sampler=batches[rank::world], **common)
    return DataLoader(features, batch_size=batch_size, **common)


def with_mask(ids: list[int]) -> dict:
    return {"input_ids": ids, "attention_mask": [1] * len(ids)}


_SENT = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """Split on whitespace after . ! or ? (enough for the built-in world and news text)."""
    return [s for s in _SENT.split(text.strip()) if s]
