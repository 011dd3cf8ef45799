"""SIGTERM and SIGINT to the stages that do not train (prepare, evaluate, report): the work stops at
once, the stage's MLflow run ends KILLED with the signal named, one line says to run the same
command again, the exit status is 128 + the signal, and the outputs are as they were. (Training
stages stop at a step's end instead: tests/test_resume.py, tests/test_finetune_resume.py.)

The signal is real and comes from outside the stage's code, sent by a hook around
`StageRun.begin` in the stage's own process (the moment its work has begun), so that even
`report`, whose work takes a fraction of a second, is caught in the middle of it."""

from __future__ import annotations

import hashlib
import re
import signal
import sqlite3
from pathlib import Path

import pytest
from conftest import copy_repo
from servers import stage_process

pytestmark = pytest.mark.slow

SIGNAL_ONCE_BEGUN = """
import os, signal
from lmforge.track.run import StageRun
_begin = StageRun.begin
def begin(self):
    _begin(self)
    os.kill(os.getpid(), signal.{name})
StageRun.begin = begin
"""


def outputs(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in ("artifacts", "reports")
        for p in sorted((root / top).rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("stage", ["prepare", "evaluate", "report"])
def test_a_signal_stops_a_stage_at_once_and_closes_its_run(smoke_pipeline, tmp_path, stage, signum):
    root = copy_repo(smoke_pipeline[0], tmp_path / "repo")
    before = outputs(root)
    db = root / "mlflow.db"
    with sqlite3.connect(db) as con:
        known = {r for (r,) in con.execute("select run_uuid from runs")}
    name = signal.Signals(signum).name
    log = tmp_path / "stage.log"
    proc = stage_process(stage, ["progress=false"], root, log, SIGNAL_ONCE_BEGUN.format(name=name))
    status = proc.wait(timeout=300)
    text = log.read_text()
    assert status == 128 + signum, text[-3000:]
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(rf"{stage}: stopped by {name} .*; run the same command to resume", last), last
    assert outputs(root) == before  # nothing half-written, nothing replaced
    with sqlite3.connect(db) as con:
        new = [r for r in con.execute("select run_uuid, status from runs") if r[0] not in known]
        errors = dict(con.execute("select run_uuid, value from tags where key = 'lmforge.error'"))
    assert new and all(status == "KILLED" for _, status in new), new
    assert all(name in errors.get(run, "") for run, _ in new)
