"""A task's train / validation / test records, from where its settings say (`task.data.source`):

- `builtin`: the synthetic world of `seed` makes them with the family's maker (`Family.world_tasks`),
  none leaking into the pretraining corpus (checked against the prepare stage's corpus index);
  deterministic, so the finetune and evaluate stages make the same records;
- `local`: files in a standard format (`lmforge.data.formats`), rows mapped to records by the family;
- `hub`: a Hugging Face dataset (`datasets.load_dataset`), the same way.

Without a validation split, one is carved from train (`validation_fraction`, seeded); `max_train`
and `max_eval` take seeded / leading subsets. Empty splits and data the family refuses fail here,
naming the file, before any training.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from lmforge.errors import ConfigError, DataError
from lmforge.tasks.base import Family

log = logging.getLogger("lmforge")

SPLITS = ("train", "validation", "test")


@dataclass
class Splits:
    records: dict[str, list[dict]]
    labels: list[str] | None  # the label list when the source fixes one (the built-in world)
    skipped: dict[str, int]  # malformed records skipped per split (task.data.skip_malformed)
    where: dict[str, str]  # split -> the file (or world task) it came from

    def __getitem__(self, split: str) -> list[dict]:
        return self.records[split]


def _builtin(family: Family, seed: int, max_records: int | None, corpus_index: Path, world_seed: int | None) -> Splits:
    from lmforge.data.corpus_index import CorpusIndex
    from lmforge.data.world import make_splits

    data_cfg = family.config.data
    name = data_cfg.world_task or family.task
    if name not in family.world_tasks:
        raise ConfigError(
            f"task.{family.task}.data.world_task={name!r}: the built-in world makes no such "
            f"{family.name} task (it makes {sorted(family.world_tasks) or 'none'}); "
            "use task.data.source=local or hub for other data"
        )
    sizes = {"train": data_cfg.n_train, "validation": data_cfg.n_validation, "test": data_cfg.n_test}
    if max_records:
        sizes = {s: min(n, max_records) for s, n in sizes.items()}
    made = make_splits(name, family.world_tasks[name], seed, sizes, CorpusIndex(corpus_index), world_seed)
    if data_cfg.max_train and len(made["train"]) > data_cfg.max_train:  # fewer labels (seeded)
        made["train"] = random.Random(f"lmforge-task-split:{seed}").sample(made["train"], data_cfg.max_train)
    labels = family.world_tasks[name].labels
    where = {s: f"built-in task {name!r} (seed {seed}), {s} split" for s in SPLITS}
    return Splits(made, list(labels) if labels else None, {s: 0 for s in SPLITS}, where)


def _files(family: Family, seed: int, root: Path) -> Splits:
    from lmforge.data import formats

    data_cfg = family.config.data
    provides = formats.PROVIDES.get(data_cfg.format) if data_cfg.source == "local" else None
    if provides:
        need = [data_cfg.columns.get(f, f) for f in family.fields]
        missing = [c for c in need if c not in provides]
        if missing:
            raise ConfigError(
                f"task.{family.task}.data.format={data_cfg.format!r} holds records of "
                f"{', '.join(provides)}; the {family.name} family needs {', '.join(family.fields)}"
            )

    def convert(row: dict, where: str) -> dict:
        rec = family.record(row, where)
        family.check_record(rec, where)
        return rec

    def at_root(f: str | None) -> str | None:  # data files are named relative to the project root
        if not f or Path(f).is_absolute() or data_cfg.source == "hub" and "://" in f:
            return f or None
        return str(root / f)

    files = {
        "train": at_root(data_cfg.train),
        "validation": at_root(data_cfg.validation),
        "test": at_root(data_cfg.test or data_cfg.validation),
    }
    if not data_cfg.test:
        files["validation"] = None  # the given validation file is the test split
    if data_cfg.source == "local":
        named_by = {"train": "train", "validation": "validation", "test": "test" if data_cfg.test else "validation"}
        loaded = {
            s: formats.read_file(data_cfg.format, f, data_cfg, convert, f"task.{family.task}.data", named_by[s])
            for s, f in files.items()
            if f
        }
        where = {
            s: f"{f}.{data_cfg.source_lang}" if data_cfg.format == "parallel" else str(f) for s, f in files.items() if f
        }
    else:
        names = {"train": "train", "validation": "validation", "test": "test", **dict(data_cfg.hub_splits)}
        if data_cfg.hub_name in ("json", "csv", "parquet"):
            names = {s: s for s, f in files.items() if f}
        # an empty Hub split name: carve that split from train (validation) / use validation (test)
        loaded = formats.hub_rows(
            data_cfg,
            {s: n for s, n in names.items() if s in SPLITS and n},
            convert,
            files={s: f for s, f in files.items() if f},
            key=f"task.{family.task}.data",
        )
        if "test" not in loaded and "validation" in loaded:
            loaded["test"] = loaded.pop("validation")
        where = {s: f"{data_cfg.hub_name}:{names.get(s, s)}" for s in SPLITS}
    skipped = {}
    for s, part in loaded.items():
        skipped[s] = part.skipped
        if part.skipped:
            log.warning(
                "%s: skipped %d malformed records of the %s split, e.g. %s",
                family.task,
                part.skipped,
                s,
                "; ".join(part.problems),
            )
    records = {s: part.records for s, part in loaded.items()}
    rng = random.Random(f"lmforge-task-split:{seed}")
    train = list(records["train"])
    if "validation" not in records:  # carved from the training records (seeded)
        rng.shuffle(train)
        n_val = max(1, int(len(train) * data_cfg.validation_fraction))
        if data_cfg.max_eval:
            n_val = min(n_val, data_cfg.max_eval)
        records["validation"], train = train[:n_val], train[n_val:]
        where["validation"] = f"{where['train']} (the validation part carved from it)"
    if data_cfg.max_train and len(train) > data_cfg.max_train:
        rng.shuffle(train)
        train = train[: data_cfg.max_train]
    records["train"] = train
    if data_cfg.max_eval:
        for split in ("validation", "test"):
            records[split] = records[split][: data_cfg.max_eval]
    return Splits(records, None, skipped, where)


def load_splits(
    family: Family,
    seed: int,
    max_task_records: int | None,
    corpus_index: Path,
    root: Path,
    world_seed: int | None = None,
) -> Splits:
    """The checked splits of `family`'s task (see the module docstring); data files are named
    relative to the project root `root`; a built-in task's records are drawn with `seed` from the
    world of `world_seed` (default: `seed`)."""
    if family.config.data.source == "builtin":
        splits = _builtin(family, seed, max_task_records, corpus_index, world_seed)
    else:
        splits = _files(family, seed, Path(root))
    for split in SPLITS:
        if not splits.records.get(split):
            skipped = splits.skipped.get(split)
            raise DataError(
                f"{splits.where.get(split, split)}: the {split} split of task {family.task!r} is empty"
                + (
                    f" (all {skipped} of its records are malformed and were skipped); fix them, or name another file"
                    if skipped
                    else "; give it records"
                )
            )
    family.check_splits(splits.records, splits.where)
    return splits
