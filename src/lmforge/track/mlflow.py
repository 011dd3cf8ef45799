"""MLflow tracking: one parent run per `dvc repro` (or sweep), one child run per stage.

Stages are separate processes launched by DVC, so they find their parent run through a key:
$LMFORGE_PARENT_RUN_ID when a caller provides one, else the `dvc` process that launched them
(its pid and start time, from /proc). The first stage of a `dvc repro` opens the parent run;
the `report` stage, last in every pipeline, closes it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

MAX_PARAM_LEN = 6000  # MLflow's limit on a param value
SESSION_TAG = "lmforge.session"
KIND_TAG = "lmforge.kind"


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, from /proc; None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[19]


def dvc_session() -> str | None:
    """A key for the `dvc` process this stage runs under (host, pid, start time), or None."""
    pid = os.getppid()
    for _ in range(10):
        if pid <= 1:
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        names = [Path(a.decode(errors="replace")).name for a in argv[:3]]
        if "dvc" in names:
            st = _proc_stat(pid)
            return f"{socket.gethostname()}:{pid}:{st[1] if st else 0}"
        st = _proc_stat(pid)
        if st is None:
            return None
        pid = st[0]
    return None


def _session_alive(key: str) -> bool:
    host, pid, start = key.rsplit(":", 2)
    if host != socket.gethostname():
        return True  # cannot tell: leave it
    st = _proc_stat(int(pid))
    return st is not None and st[1] == start


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


class StageRun:
    """A context manager around one MLflow child run; a no-op when tracking is disabled."""

    def __init__(self, tracking: Any, name: str, params: dict[str, Any], tags: dict[str, str] | None = None,
                 root: Path | None = None):
        self.enabled = bool(tracking.enabled)
        self.cfg = tracking
        self.name = name
        self.params = params
        self.tags = dict(tags or {})
        self.root = Path(root) if root else Path.cwd()
        self.run_id: str | None = None
        self.parent_id: str | None = None
        self.client = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> "StageRun":
        if not self.enabled:
            return self
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.cfg.uri)
        try:
            exp = self.client.get_experiment_by_name(self.cfg.experiment)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(
                self.cfg.experiment, artifact_location=Path(self.cfg.artifact_location).as_uri() if self.cfg.artifact_location else None
            )
        except Exception as e:  # the backend is unreachable or broken: fail before any work
            raise ConfigError(f"tracking.uri={self.cfg.uri}: cannot reach the MLflow tracking backend ({e})") from e
        self.experiment_id = exp_id
        self.parent_id = self._parent_run()
        tags = {"lmforge.stage": self.name.split("/")[0], **self.tags}
        if commit := git_commit(self.root):
            tags["mlflow.source.git.commit"] = commit
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        run = self.client.create_run(exp_id, run_name=self.name, tags=tags)
        self.run_id = run.info.run_id
        self.log_params(self.params)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.enabled and self.run_id:
            status = "FINISHED" if exc_type is None else "FAILED"
            self.client.set_terminated(self.run_id, status)

    def _parent_run(self) -> str | None:
        if env := os.environ.get("LMFORGE_PARENT_RUN_ID"):
            return env
        key = dvc_session()
        if key is None:
            return None
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{SESSION_TAG}` = '{key}' and attributes.status = 'RUNNING'",
            max_results=1,
        )
        if runs:
            return runs[0].info.run_id
        self._close_stale_parents()
        tags = {SESSION_TAG: key, KIND_TAG: "pipeline"}
        if commit := git_commit(self.root):
            tags["mlflow.source.git.commit"] = commit
        name = f"dvc repro {time.strftime('%Y-%m-%d %H:%M:%S')}"
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def _close_stale_parents(self) -> None:
        """Parents whose `dvc repro` died before its report stage are marked FAILED."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = 'pipeline' and attributes.status = 'RUNNING'",
        )
        for r in runs:
            key = r.data.tags.get(SESSION_TAG)
            if key and not _session_alive(key):
                self.client.set_terminated(r.info.run_id, "FAILED")

    def close_parent(self) -> None:
        """End the pipeline's parent run (the report stage does this); not one a caller gave."""
        if self.enabled and self.parent_id and not os.environ.get("LMFORGE_PARENT_RUN_ID"):
            self.client.set_terminated(self.parent_id, "FINISHED")

    # -- logging -------------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        items = []
        for k, v in params.items():
            s = str(v)
            if len(s) > MAX_PARAM_LEN:
                log.warning("param %s is %d characters long: logged in full in config.yaml only", k, len(s))
                s = s[: MAX_PARAM_LEN - 40] + " …[truncated: see config.yaml]"
            items.append(Param(k, s))
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def lightning_logger(self):
        """A Lightning MLFlowLogger writing into this run (None when tracking is off)."""
        if not self.enabled:
            return None
        from lightning.pytorch.loggers import MLFlowLogger

        return MLFlowLogger(tracking_uri=self.cfg.uri, run_id=self.run_id, experiment_name=self.cfg.experiment)
