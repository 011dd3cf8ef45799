"""Task families by name, and what the finetune/evaluate stages need around them.

`FAMILIES` maps `task.family` to its implementation (see `base.Family`): classification
(topic, sentiment, SST-2, AG News), tagging (NER), qa (extractive, SQuAD-style), summarization
and translation (prefix LM on the causal backbone). A new family is one module here plus an
entry below and its `conf/task/*.yaml` files.

`load_splits` reads a task's train/validation/test records from the built-in world (the prepare
stage's `tasks/<name>/`), from local files or from a Hub dataset (`task.source`), and
`load_model` reloads any fine-tuned model directory.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from omegaconf import DictConfig

from lmforge.errors import ConfigError, DataError
from lmforge.fileio import read_json, read_jsonl
from lmforge.tasks.base import Family
from lmforge.tasks.classification import Classification
from lmforge.tasks.generation import Generation
from lmforge.tasks.qa import QA
from lmforge.tasks.tagging import Tagging

log = logging.getLogger("lmforge")

FAMILIES: dict[str, Family] = {
    "classification": Classification(),
    "tagging": Tagging(),
    "qa": QA(),
    "summarization": Generation("summarization", "document", "summary", ("rougeL", "rouge1", "rouge2")),
    "translation": Generation("translation", "source", "target", ("bleu", "chrf")),
}
SPLITS = ("train", "validation", "test")


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"task.family={name!r} is not one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def check_config(task: DictConfig, max_len: int) -> None:
    """Task settings that must agree with each other and with the model, naming the key."""
    fam = family(task.family)
    for key in ("doc_stride", "max_answer_length", "n_best", "max_source_length", "max_target_length", "beam_size"):
        if not task[key] > 0:
            raise ConfigError(f"task.{key}={task[key]} must be positive")
    if task.family in ("summarization", "translation"):
        need = task.max_source_length + task.max_target_length + 2
        if need > max_len:
            raise ConfigError(
                f"task.max_source_length={task.max_source_length} + task.max_target_length="
                f"{task.max_target_length} + 2 (<sep>, <eos>) = {need} exceeds model.max_len={max_len}")
    if task.family == "qa" and task.doc_stride >= task.max_length // 2:
        raise ConfigError(f"task.doc_stride={task.doc_stride} must be below half of task.max_length={task.max_length}")
    if task.source != "builtin":
        d = task.data
        if task.source == "local" and not d.train:
            raise ConfigError(f"task.source=local needs task.data.train (a {d.format} file)")
        if task.source == "local" and not (d.test or d.validation):
            raise ConfigError("task.source=local needs task.data.test (or task.data.validation)")
        if not 0.0 < d.validation_fraction < 1.0:
            raise ConfigError(f"task.data.validation_fraction={d.validation_fraction} must be in (0, 1)")
        if d.scheme not in ("iob1", "iob2"):
            raise ConfigError(f"task.data.scheme={d.scheme!r} is not one of ['iob1', 'iob2']")
    if fam.name == "translation" and task.baseline not in (None, "copy", "lexicon"):
        raise ConfigError(f"task.baseline={task.baseline!r} is not one of ['copy', 'lexicon']")
    if task.baseline == "lexicon" and task.source != "builtin":
        raise ConfigError("task.baseline=lexicon needs the built-in world's lexicon (task.source=builtin): use copy")


def _builtin(task_dir: Path) -> dict[str, list[dict]]:
    splits = {}
    for split in SPLITS:
        path = task_dir / f"{split}.jsonl"
        if not path.is_file():
            raise DataError(f"{path} is missing: run the prepare stage first (with {task_dir.name!r} in "
                            f"data.synthetic.tasks)")
        splits[split] = read_jsonl(path)
    return splits


def load_splits(task: DictConfig, tasks_dir: Path, seed: int) -> tuple[dict[str, list[dict]], list[str] | None, dict]:
    """(train/validation/test records, the label list if the source fixes one, skipped counts)."""
    fam = family(task.family)
    skipped: dict[str, int] = {}
    labels = None
    if task.source == "builtin":
        task_dir = Path(tasks_dir) / task.name
        splits = _builtin(task_dir)
        if task.data.max_train and len(splits["train"]) > task.data.max_train:  # fewer labels (seeded)
            splits["train"] = random.Random(f"lmforge-task-split:{seed}").sample(splits["train"], task.data.max_train)
        if (task_dir / "labels.json").is_file():
            labels = read_json(task_dir / "labels.json")
        where = {s: str(task_dir / f"{s}.jsonl") for s in SPLITS}
    else:
        from lmforge.tasks import formats

        d = task.data
        files = {"train": d.train, "validation": d.validation, "test": d.test or d.validation}
        if not d.test:
            files["validation"] = None  # the given validation file is the test split
        if task.source == "local":
            loaded = {s: formats.read_file(d.format, f, fam.name, d) for s, f in files.items() if f}
        else:
            names = {"train": "train", "validation": "validation", "test": "test", **dict(d.hub_splits)}
            if d.hub_name in ("json", "csv", "parquet"):
                names = {s: s for s, f in files.items() if f}
            # an empty Hub split name: carve that split from train (validation) / use validation (test)
            loaded = formats.load_hub(fam.name, d, {s: n for s, n in names.items() if s in SPLITS and n})
            if "test" not in loaded and "validation" in loaded:
                loaded["test"] = loaded.pop("validation")
        for s, part in loaded.items():
            skipped[s] = part.skipped
            if part.skipped:
                log.warning("%s: skipped %d malformed records of split %s, e.g. %s", task.name, part.skipped, s,
                            "; ".join(part.problems))
        splits = {s: part.records for s, part in loaded.items()}
        rng = random.Random(f"lmforge-task-split:{seed}")
        train = list(splits["train"])
        if "validation" not in splits:  # carved from the training records (seeded)
            rng.shuffle(train)
            n_val = max(1, int(len(train) * d.validation_fraction))
            if d.max_eval:
                n_val = min(n_val, d.max_eval)
            splits["validation"], train = train[:n_val], train[n_val:]
        if d.max_train and len(train) > d.max_train:
            rng.shuffle(train)
            train = train[: d.max_train]
        splits["train"] = train
        if d.max_eval:
            splits["validation"], splits["test"] = splits["validation"][: d.max_eval], splits["test"][: d.max_eval]
        where = {s: f"{task.name} ({task.source}) {s} split" for s in SPLITS}
    for split in SPLITS:
        if not splits.get(split):
            raise DataError(f"{where[split]} is empty")
        fam.check(splits[split], where[split])
    return splits, labels, skipped


def load_model(directory: str | Path):
    """A fine-tuned task model (weights loaded, eval mode), its family and its config.json."""
    from lmforge.models import build_backbone
    from lmforge.models.io import WEIGHTS, load_state, read_model_dir

    config, state = read_model_dir(directory)
    fam = family(config.get("family", "classification"))
    model = fam.build(build_backbone(config["backbone"]), config.get("meta") or config)  # meta: older dirs keep it top-level
    load_state(model, state, Path(directory) / WEIGHTS)
    return model.eval(), fam, config


__all__ = ["FAMILIES", "Family", "family", "check_config", "load_splits", "load_model"]
