"""A config mistake is answered before any heavy library loads: the stage apps compose and check
the command line (`pipelines/_app.check_command_line`) with Hydra alone, and import their stage —
torch, Lightning, MLflow — only once it checks out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

HEAVY = ("torch", "lightning", "transformers", "mlflow", "datasets")

PROBE = """
import sys
sys.path.insert(0, {pipelines!r})
import _app
try:
    _app.check_command_line({argv!r})
except SystemExit as e:
    print("exit", e.code)
print("loaded", sorted(m for m in {heavy!r} if m in sys.modules))
"""


def check(argv: list[str]) -> subprocess.CompletedProcess:
    code = PROBE.format(pipelines=str(ROOT / "pipelines"), argv=argv, heavy=HEAVY)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(
    "argv, error",
    [
        ([], None),
        (["optim.lr=3e-4", "model=lstm", "task=[ner,qa]"], None),
        (["--config-name=stage"], None),
        (["optim.lr=abc"], "optim.lr=abc"),
        (["optim.lr=-1"], "optim.lr=-1.0 must be positive"),
        (["trainer.max_steps=0"], "trainer.max_steps=0 must be positive"),
        (["+trainer.max_stepz=3"], "max_stepz"),
        (["tokenizer=bytes"], "Available options"),
        (["tracking.uri=ftp://store"], "tracking.uri=ftp://store: MLflow cannot keep runs at a 'ftp:' address"),
        (["tracking.uri=postgresql+psycopg2://u@h/db"], None),
        (["task=[topic,nope]"], "task=nope: no such task (conf/task/<name>.yaml); the tasks are: ag_news,"),
        (["task=[topic,conf/task/sst2.yaml]"], "task=conf/task/sst2.yaml: a task is named, not given as a path"),
        (["task=sst2_local", "task.sst2_local.data.label_map={}"], "to empty it, delete it: '~task.sst2_local"),
        (["task=sst2_local", "~task.sst2_local.data.label_map"], None),
    ],
)
def test_checking_a_command_line_imports_no_heavy_library(argv, error):
    out = check(argv)
    assert out.returncode == 0, out.stderr
    assert "loaded []" in out.stdout, f"checking {argv} imported {out.stdout}"
    if error is None:
        assert "exit" not in out.stdout, out.stderr
    else:
        assert "exit 2" in out.stdout
        assert error in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_a_tracking_uri_from_the_environment_is_checked_and_named():
    code = PROBE.format(pipelines=str(ROOT / "pipelines"), argv=[], heavy=HEAVY)
    env = {**os.environ, "LMFORGE_TRACKING_URI": "mlflow.example.org:5000"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert "exit 2" in out.stdout and "loaded []" in out.stdout
    assert out.stderr.startswith("error: tracking.uri=mlflow.example.org:5000 (from $LMFORGE_TRACKING_URI): ")
    assert "http(s)://<host>:<port>" in out.stderr and out.stderr.count("\n") == 1, out.stderr


@pytest.mark.parametrize(
    "stage, overrides, says, loaded",
    [
        ("pretrain", ["optim.lr=-1"], "optim.lr=-1.0 must be positive", []),
        # a backbone's and a task family's settings need their plug-in, so torch, but not Lightning or MLflow
        ("pretrain", ["model.d_model=-1"], "model.d_model", ["torch"]),
        ("finetune", ["task=topic", "task.topic.lr=-1"], "task.topic.lr", ["torch"]),
    ],
)
def test_a_stage_app_answers_a_typo_with_one_line_before_the_heavy_imports(stage, overrides, says, loaded):
    """The whole process, as a user runs it: exit status 2, one line, nothing heavy imported."""
    code = (
        f"import runpy, sys; sys.argv = ['pipelines/{stage}.py', *{overrides!r}]; sys.path.insert(0, 'pipelines')\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        f"finally:\n    print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and says in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert out.stdout.strip() == str(loaded)


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], ["hydra.job.name=x"]),
        (["a=1"], ["a=1", "hydra.job.name=x"]),
        (["a=1", "--cfg", "job"], ["a=1", "hydra.job.name=x", "--cfg", "job"]),
        (["--config-name=stage", "only_task=qa"], ["--config-name=stage", "only_task=qa", "hydra.job.name=x"]),
        (["--cfg", "job"], ["--cfg", "job", "hydra.job.name=x"]),
    ],
)
def test_the_job_name_joins_the_overrides_hydra_reads_as_one_run(argv, expected):
    """Hydra takes one run of overrides: `a=1 --cfg job b=2` is refused, so the app's own override
    goes beside the user's, not after a flag."""
    sys.path.insert(0, str(ROOT / "pipelines"))
    try:
        import _app
    finally:
        sys.path.remove(str(ROOT / "pipelines"))
    assert _app.with_override(argv, "hydra.job.name=x") == expected
