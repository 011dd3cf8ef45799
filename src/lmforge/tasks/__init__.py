"""Task families: the registry, the one place family names are looked up.

A family is one module that registers itself:

    @register("tagging")
    class Tagging(Family): ...

and a task is one `conf/task/<name>.yaml` naming its family (`family: tagging`) and its settings.
A name is found by importing `lmforge.tasks.<name>` on first use; a family outside lmforge is named
by its module path (`family: my_package.my_family`), which registers it when imported. Built in:
classification (topic, sentiment, SST-2, AG News), tagging (NER), qa (extractive, SQuAD-style),
summarization and translation (both prefix-LM on a causal backbone, `prefix_lm.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError
from lmforge.plugins import Registry
from lmforge.schema import build
from lmforge.tasks.base import DATA_SOURCES, Family, TaskConfig

FAMILIES: Registry[type[Family]] = Registry(
    "tasks", "task family", "name", "family {name}", ("base", "splits", "prefix_lm", "defaults")
)
register = FAMILIES.register  # class decorator: a Family subclass as `family: <name>`
family_class = FAMILIES.get  # the registered family `name`, importing the module that registers it


def configure(task: str, node: Any) -> Family:
    """The family of task `task`, bound to its checked settings (`node`: the task's config section)."""
    from omegaconf import DictConfig, OmegaConf

    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    if not data.get("family"):
        raise ConfigError(f"task.{task}.family is not set: name the task's family (e.g. classification)")
    cls = family_class(str(data["family"]))
    source = dict(data.pop("data", None) or {})
    kind = source.get("source", "builtin")
    if kind not in DATA_SOURCES:
        raise ConfigError(f"task.{task}.data.source={kind!r} is not one of {sorted(DATA_SOURCES)}")
    config = build(cls.config_class, data, f"task.{task}")
    config.data = build(DATA_SOURCES[kind], source, f"task.{task}.data")
    if hasattr(config, "check"):  # checks that read the data settings too (after both are built)
        config.check(f"task.{task}")
    return cls(task, config)


def configure_all(tasks: Any, names: list[str]) -> dict[str, Family]:
    """`configure` each of `names` that `tasks` (the `task` config section) holds: every task's
    settings checked before the first one's work begins."""
    return {name: configure(name, tasks[name]) for name in names if name in tasks}


def load_task_model(directory: str | Path):
    """(model with its weights, in eval mode; its family, bound to the settings it was trained
    with; its SavedModel) of a fine-tuned model directory."""
    from lmforge.errors import DataError
    from lmforge.models import build_backbone, load_weights
    from lmforge.saved_model import MANIFEST, SavedModel

    saved = SavedModel.load(directory)
    if saved.kind != "task_model":
        raise DataError(f"{directory}: a {saved.kind.replace('_', ' ')}, not a fine-tuned task model")
    family = configure(saved.task, saved.task_config)
    model = family.build(build_backbone(saved.backbone, Path(directory) / MANIFEST), saved.head or {})
    load_weights(model, saved.weights(directory), Path(directory) / "model.safetensors")
    return model.eval(), family, saved


__all__ = ["Family", "TaskConfig", "register", "family_class", "configure", "configure_all", "load_task_model"]
