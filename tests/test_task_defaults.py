"""A task family's defaults live once, in its settings class: conf/task_defaults/ is written from
the classes (`make params`), each task config includes its family's and its data source's file and
states only what differs — and a changed default reaches every task that does not override it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from lmforge.tasks import FAMILIES
from lmforge.tasks.base import DATA_SOURCES
from lmforge.tasks.defaults import defaults, files

TASKS = sorted(p.stem for p in (ROOT / "conf" / "task").glob("*.yaml"))


def task_node(name: str, conf: Path = ROOT / "conf") -> dict:
    doc = yaml.safe_load((conf / "task" / f"{name}.yaml").read_text())
    return doc[name]


def composed_tasks(conf: Path, names: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import lmforge.config  # noqa: F401  (the schema and resolvers)

    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"task=[{','.join(names)}]"])
    return OmegaConf.to_container(cfg.task)


def test_the_defaults_files_are_written_from_the_classes():
    stale = [rel for rel, text in files().items() if (ROOT / "conf" / rel).read_text() != text]
    assert not stale, f"{stale} differ from the settings classes: run `make params`"


@pytest.mark.parametrize("name", TASKS)
def test_a_task_config_states_only_what_differs_from_its_defaults(name):
    node = task_node(name)
    family = defaults(FAMILIES.get(node["family"]).config_class)
    data = defaults(DATA_SOURCES[node["data"]["source"]])
    restated = [k for k, v in node.items() if k in family and k not in ("family", "data") and v == family[k]]
    restated += [f"data.{k}" for k, v in node["data"].items() if k != "source" and data.get(k, object()) == v]
    assert not restated, f"conf/task/{name}.yaml restates defaults: {restated}"


def test_a_changed_family_default_reaches_every_task_that_does_not_override_it(tmp_path):
    conf = Path(shutil.copytree(ROOT / "conf", tmp_path / "conf"))
    classification = [t for t in TASKS if task_node(t)["family"] == "classification"]
    edited = conf / "task_defaults" / "classification.yaml"
    edited.write_text(
        edited.read_text().replace("patience: 3", "patience: 7").replace("pooling: mean", "pooling: last")
    )
    tasks = composed_tasks(conf, classification)
    for name in classification:
        own = task_node(name)
        assert tasks[name]["patience"] == own.get("patience", 7), name
        assert tasks[name]["pooling"] == own.get("pooling", "last"), name
        assert tasks[name]["data"]["source"] == own["data"]["source"]
    assert any("patience" not in task_node(t) for t in classification)  # the edit reached some task
