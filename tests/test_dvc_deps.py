"""A stage's DVC deps and params are complete by construction: for every stage of dvc.yaml (as
DVC resolves it from params.yaml), the lmforge code it imports — read from the source, with the
backbone and task-family modules it loads by name — and the conf files it composes are covered by
its deps, no other family's or backbone's module is, and its params are exactly the sections its
stage module declares (`PARAMS`: all it is given)."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
import yaml
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo
from imports import ROOT, SRC, closure, module_file

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def stages() -> list:
    return list(Repo(str(ROOT)).index.stages)


def composed_conf(config_name: str) -> set[Path]:
    """The conf files a config composes: itself and, recursively, its defaults list (plain entries
    and `group: option`; the structured `schema` lives in code, lmforge/config.py)."""
    out: set[Path] = set()

    def visit(path: Path) -> None:
        out.add(path)
        for entry in (yaml.safe_load(path.read_text()) or {}).get("defaults", []):
            if entry == "_self_":
                continue
            group, option = next(iter(entry.items())) if isinstance(entry, dict) else (None, entry)
            if option is None:
                continue
            target = ROOT / "conf" / (f"{group.split('@')[0].lstrip('/')}/{option}.yaml" if group else f"{option}.yaml")
            if target.is_file():
                visit(target)
            else:
                assert (group, option) == (None, "schema"), f"{path}: {entry} names no conf file"

    visit(ROOT / "conf" / f"{config_name}.yaml")
    return out


def dynamic_modules(stage_name: str) -> set[Path]:
    """What the stage imports by name from its config: the backbone (`model.arch`) and, for a task
    stage, the task's family."""
    found = set()
    if not stage_name.startswith(("conf", "prepare", "report")):
        found.add(module_file(f"lmforge.models.{PARAMS['model']['arch']}"))
    if "@" in stage_name:
        task = stage_name.split("@", 1)[1]
        found.add(module_file(f"lmforge.tasks.{PARAMS['task'][task]['family']}"))
    return found


def covered(path: Path, deps: list[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_deps_cover_the_code_and_conf_each_stage_uses(stage):
    deps = [ROOT / d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)]
    argv = shlex.split(stage.cmd)
    script = ROOT / argv[1]
    code = closure(script, *dynamic_modules(stage.addressing))
    config_name = next((a.split("=", 1)[1] for a in argv if a.startswith("--config-name=")), None)
    needed = code | (composed_conf(config_name) if config_name else set())  # (the conf stage composes nothing)
    missing = sorted(str(p.relative_to(ROOT)) for p in needed if not covered(p, deps))
    assert not missing, f"{stage.addressing} imports or composes files that are not its deps: {missing}"
    # no dep on code it does not import: another family's or backbone's module, or any other module
    src_deps = [d for d in deps if d.is_relative_to(SRC)]
    used = {p for p in code if p.is_relative_to(SRC)}
    unused = sorted(str(d.relative_to(ROOT)) for d in src_deps if not any(p == d or d in p.parents for p in used))
    # the prefix-LM base of summarization and translation is shared by every task stage: DVC
    # cannot make a dep conditional on the task's family (the one over-approximation)
    assert set(unused) <= {"src/lmforge/tasks/prefix_lm.py"}, (
        f"{stage.addressing} depends on code it never imports: {unused}"
    )


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_params_are_the_sections_the_stage_reads(stage):
    params = [p for d in stage.deps if isinstance(d, ParamsDependency) for p in d.params]
    if stage.addressing == "conf":  # it reads params.yaml whole, as a file dep: nothing of it is a value it uses
        assert params == []
        return
    module = importlib.import_module(f"lmforge.stages.{stage.addressing.split('@')[0]}")
    declared = [
        f"task.{stage.addressing.split('@')[1]}" if p == "task" and "@" in stage.addressing else p
        for p in module.PARAMS
    ]
    assert sorted(params) == sorted(declared)


def test_the_conf_stage_watches_what_params_yaml_is_composed_from_and_comes_first():
    """An edit to any conf/ file that composes params.yaml (`config.PIPELINE_CONF`) re-runs the
    `conf` stage, which every other stage follows (through prepare's dep on its output)."""
    from lmforge.config import PIPELINE_CONF

    by_name = {s.addressing: s for s in stages()}
    deps = {d.def_path for d in by_name["conf"].deps}
    assert {f"conf/{entry}" for entry in PIPELINE_CONF} <= deps
    (out,) = [o.def_path for o in by_name["conf"].outs]
    assert out in {d.def_path for d in by_name["prepare"].deps}


def test_every_parameter_is_read_by_some_stage():
    """params.yaml holds nothing no stage reads (a key DVC shows must reach a stage)."""
    read = {p.split(".")[0] for s in stages() for d in s.deps if isinstance(d, ParamsDependency) for p in d.params}
    assert set(PARAMS) - read == {"conf_digest"}  # checked by every stage against conf/, not a stage's input


def test_the_closure_finds_what_a_stage_imports():
    """The import reader is right on an example it must get: finetune loads tasks by name, so its
    static closure holds the registry and the splits loader but no family module."""
    code = {str(p.relative_to(SRC)) for p in closure(ROOT / "pipelines" / "finetune.py") if p.is_relative_to(SRC)}
    assert {"lmforge/tasks/__init__.py", "lmforge/tasks/splits.py", "lmforge/train/tasks.py"} <= code
    assert not code & {"lmforge/tasks/qa.py", "lmforge/train/lm.py", "lmforge/report/report.py"}


def test_params_yaml_is_conf_composed(tmp_path):
    """The committed params.yaml is what DVC composes from conf/ now (else every DVC stage refuses it)."""
    from lmforge.compat import dvc_compose_params

    dvc_compose_params(tmp_path / "params.yaml", ROOT / "conf", "params", ROOT, [])
    assert yaml.safe_load((tmp_path / "params.yaml").read_text()) == PARAMS, (
        "params.yaml is stale: recompose it with `make params` (python -m lmforge.params)"
    )


def test_the_committed_dvc_lock_is_current_for_commands_and_params():
    """dvc.lock (committed, of the default pipeline) records every stage with the command and the
    params.yaml values the checkout has: a change to them is committed with the `dvc.lock` of its
    re-run (`make repro`). Code and conf files may have moved since, as long as the results have
    not: tests/test_baseline.py holds that line."""
    repo = Repo(str(ROOT))
    locked = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    assert {s.addressing for s in repo.index.stages} <= set(locked)  # every stage of the default pipeline
    stale = {}
    for stage, items in repo.status().items():
        for item in items:
            if item == "changed command" or (isinstance(item, dict) and "params.yaml" in item.get("changed deps", {})):
                stale.setdefault(stage, []).append(
                    item if isinstance(item, str) else item["changed deps"]["params.yaml"]
                )
    assert not stale, f"dvc.lock is stale (run `make repro` and commit dvc.lock): {stale}"
