"""The defaults of every task family and data source, as the YAML that task configs build on.

A family's settings class (`Family.config_class`) and each data source's class hold the defaults
(where they are checked); `conf/task_defaults/<family>.yaml` and `conf/task_defaults/data/<source>.yaml`
are written from them by `make params` (`python -m lmforge.params`), so that a task config states
its family, its data and only what differs, while Hydra — and so params.yaml, DVC and MLflow — still
sees every value. `tests/test_task_defaults.py` fails when the files and the classes disagree."""

from __future__ import annotations

import inspect
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from lmforge.tasks import FAMILIES
from lmforge.tasks.base import DATA_SOURCES

FOLDER = "task_defaults"  # the config group under conf/
HEADER = (
    "# Written by `make params` from {where}, where these defaults live:\n"
    "# edit the class, then run `make params`. A task config includes this file and states only what differs.\n"
)


def defaults(cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The default of each field of the dataclass `cls` (those with one), in field order."""
    out = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def comments(cls: type) -> dict[str, str]:
    """The comment beside each field in the source of `cls` and its bases (the nearest one wins)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        out.update(re.findall(r"^\s+(\w+): [^#\n]*#\s*(.+?)\s*$", source, re.MULTILINE))
    return out


def files() -> dict[str, str]:
    """conf/-relative path → the YAML text of every family's and data source's defaults."""
    import yaml

    def text(cls: type, values: dict) -> str:
        notes = comments(cls)
        lines = [HEADER.format(where=f"{cls.__module__}.{cls.__qualname__}")]
        for key, value in values.items():
            line = yaml.safe_dump({key: value}, default_flow_style=False, allow_unicode=True).rstrip("\n")
            lines.append(f"{line}  # {notes[key]}\n" if key in notes else f"{line}\n")
        return "".join(lines)

    out = {}
    for name in FAMILIES.builtin():  # (a family from outside lmforge keeps its defaults in its own configs)
        cls = FAMILIES.get(name).config_class
        out[f"{FOLDER}/{name}.yaml"] = text(cls, defaults(cls, skip=("family", "data")))
    for source, cls in DATA_SOURCES.items():
        out[f"{FOLDER}/data/{source}.yaml"] = text(cls, defaults(cls))
    return out


def write(conf_dir: Path) -> list[Path]:
    """Write the defaults under `conf_dir` where they changed; the paths written."""
    from lmforge.fileio import write_text

    written = []
    for rel, text in files().items():
        path = conf_dir / rel
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)
            written.append(path)
    return written
