"""MLflow tracking: one parent run per `dvc repro` (or sweep), one child run per stage.

Stages are separate processes launched by DVC, so they find their parent run through a key:
$LMFORGE_PARENT_RUN_ID when a caller provides one (a Hydra sweep does, see `track.sweep`), else
the `dvc` process that launched them (its pid and start time, from /proc). The first stage of a
`dvc repro` opens the parent run; the `report` stage, last in every pipeline, closes it.

Every run is tagged with the git commit and, under DVC, the stage ($DVC_STAGE) and experiment
($DVC_EXP_NAME). Params are the flattened resolved config, losslessly: a value longer than
MLflow's limit is split over `<key>`, `<key>/part-2`, … (`read_params` joins them) and also kept
whole as the artifact `params/<key>.txt`.

Tracking never costs the work: a backend unreachable at the start fails the stage at once
(ConfigError); one that fails later is reported once and then skipped, so training finishes and
the stage's outputs are written.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

MAX_PARAM_LEN = 6000  # MLflow's limit on a param value
PART = "/part-"  # continuation keys of a long param: "<key>/part-2", "<key>/part-3", …
PARTS_TAG = "lmforge.param_parts."  # + key: how many parts a long param was split into
SESSION_TAG = "lmforge.session"
KIND_TAG = "lmforge.kind"
ERROR_TAG = "lmforge.error"
ENV_PARENT = "LMFORGE_PARENT_RUN_ID"

# run ids this process created, newest last (a sweep job checks whether its stage opened one)
STARTED: list[str] = []


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


def context_tags(root: Path) -> dict[str, str]:
    """Tags every run gets: git commit, and the DVC stage / experiment when DVC runs it."""
    tags = {}
    if commit := git_commit(root):
        tags["mlflow.source.git.commit"] = commit
    for env, tag in (("DVC_STAGE", "lmforge.dvc.stage"), ("DVC_EXP_NAME", "lmforge.dvc.exp"),
                     ("DVC_EXP_BASELINE_REV", "lmforge.dvc.baseline")):
        if value := os.environ.get(env):
            tags[tag] = value
    return tags


# -- connecting ------------------------------------------------------------------------------------
def connect(tracking: Any):
    """An MlflowClient for `tracking` (the config group), failing fast with a ConfigError when
    the backend cannot be reached. MLflow retries HTTP calls with backoff for minutes by default:
    an http(s) server must answer /health within tracking.connect_timeout_s, and later calls
    retry tracking.http_retries times (unless MLFLOW_HTTP_REQUEST_* are set in the environment)."""
    from mlflow.tracking import MlflowClient

    uri = str(tracking.uri)
    if uri.startswith(("http://", "https://")):
        import requests

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(tracking.http_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        try:
            r = requests.get(uri.rstrip("/") + "/health", timeout=float(tracking.connect_timeout_s))
            r.raise_for_status()
        except Exception as e:
            raise ConfigError(
                f"tracking.uri={uri}: the MLflow tracking server does not answer ({type(e).__name__}: {e}). "
                "Start it (`make server`), point tracking.uri at a running one, or use tracking=embedded."
            ) from None
    return MlflowClient(tracking_uri=uri)


def experiment_id(client, tracking: Any) -> str:
    """The id of tracking.experiment, created on first use (safe when processes race to create it)."""
    try:
        exp = client.get_experiment_by_name(tracking.experiment)
        if exp:
            return exp.experiment_id
        location = Path(tracking.artifact_location).as_uri() if tracking.artifact_location else None
        try:
            return client.create_experiment(tracking.experiment, artifact_location=location)
        except Exception:  # another process created it meanwhile
            exp = client.get_experiment_by_name(tracking.experiment)
            if exp is None:
                raise
            return exp.experiment_id
    except Exception as e:  # the backend is unreachable or broken: fail before any work
        raise ConfigError(f"tracking.uri={tracking.uri}: cannot reach the MLflow tracking backend ({e})") from e


# -- params ------------------------------------------------------------------------------------
def split_params(params: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(params as MLflow strings, {key: full value} of those split over continuation keys)."""
    out, long = {}, {}
    for k, v in params.items():
        s = str(v)
        if len(s) <= MAX_PARAM_LEN:
            out[k] = s
            continue
        long[k] = s
        chunks = [s[i : i + MAX_PARAM_LEN] for i in range(0, len(s), MAX_PARAM_LEN)]
        out[k] = chunks[0]
        for i, chunk in enumerate(chunks[1:], 2):
            out[f"{k}{PART}{i}"] = chunk
    return out, long


def read_params(run) -> dict[str, str]:
    """A run's params with long values joined back (the inverse of `split_params`)."""
    params, tags = dict(run.data.params), run.data.tags
    for tag, n in tags.items():
        if tag.startswith(PARTS_TAG):
            key = tag[len(PARTS_TAG):]
            parts = [params.pop(f"{key}{PART}{i}") for i in range(2, int(n) + 1)]
            params[key] = params[key] + "".join(parts)
    return params


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
        self.lost = False  # the backend failed mid-run: further tracking calls are skipped
        self.sweep_job = False

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> "StageRun":
        if not self.enabled:
            return self
        from lmforge.track.sweep import job_identity

        self.client = connect(self.cfg)
        self.experiment_id = experiment_id(self.client, self.cfg)
        self.parent_id = self._parent_run()
        tags = {"lmforge.stage": self.name.split("/")[0], **context_tags(self.root), **self.tags}
        name = self.name
        if job := job_identity():  # a job of a Hydra sweep: named after its overrides
            suffix, job_tags = job
            name = f"{self.name} #{job_tags['lmforge.sweep.job']} {suffix}".strip()
            tags.update(job_tags)
            self.sweep_job = True
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.run_id = run.info.run_id
        STARTED.append(self.run_id)
        self.log_params(self.params)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.enabled and self.run_id:
            if exc_type is not None:
                self.set_tags({ERROR_TAG: f"{exc_type.__name__}: {exc}"[:5000]})
            status = "FINISHED" if exc_type is None else "FAILED"
            self._guard("end the run", self.client.set_terminated, self.run_id, status, force=True)

    def _parent_run(self) -> str | None:
        if env := os.environ.get(ENV_PARENT):
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
        tags = {SESSION_TAG: key, KIND_TAG: "pipeline", **context_tags(self.root)}
        tags.pop("lmforge.dvc.stage", None)
        exp = os.environ.get("DVC_EXP_NAME")
        name = f"dvc exp {exp}" if exp else f"dvc repro {time.strftime('%Y-%m-%d %H:%M:%S')}"
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
        if self.enabled and self.parent_id and not os.environ.get(ENV_PARENT):
            self._guard("end the pipeline run", self.client.set_terminated, self.parent_id, "FINISHED")

    def _guard(self, what: str, fn: Callable, *args, force: bool = False, lose: bool = True, **kwargs) -> Any:
        """Call a tracking function after the start; a failure is reported, never raised. With
        `lose`, tracking is given up after it (the backend is gone: no more minutes of retries)."""
        if self.lost and not force:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not self.lost:
                log.warning("MLflow tracking failed (%s: %s: %s)%s", what, type(e).__name__, e,
                            "; the stage goes on without tracking" if lose else "")
            self.lost = self.lost or lose
            return None

    # -- logging -------------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        """Params as they are, however long (see `split_params`); raises (it runs at the start)."""
        if not self.enabled:
            return
        from mlflow.entities import Param

        values, long = split_params(params)
        items = [Param(k, v) for k, v in values.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        for k, v in long.items():
            self.client.set_tag(self.run_id, PARTS_TAG + k, str(-(-len(v) // MAX_PARAM_LEN)))
            self.client.log_text(self.run_id, v, f"params/{k.replace('/', '_')}.txt")
            log.info("param %s (%d characters) is split over %d params and kept whole in params/",
                     k, len(v), -(-len(v) // MAX_PARAM_LEN))

    def set_tags(self, tags: dict[str, str]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import RunTag

        self._guard("set tags", self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        self._guard("log metrics", self.client.log_batch, self.run_id, metrics=items)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.enabled:
            self._guard(f"log {artifact_file}", self.client.log_text, self.run_id, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        path = Path(path)
        if path.is_dir():
            self._guard(f"log {path}", self.client.log_artifacts, self.run_id, str(path), artifact_path)
        else:
            self._guard(f"log {path}", self.client.log_artifact, self.run_id, str(path), artifact_path)

    def register_model(self, model_dir: str | Path, task: str | None = None, init: str | None = None):
        """Log `model_dir` as an MLflow pyfunc model and register it (see `track.registry`)."""
        if not (self.enabled and self.cfg.register_models):
            return None
        from lmforge.track.registry import register

        return self._guard(f"register {model_dir}", register, self, Path(model_dir), task, init, lose=False)

    def lightning_logger(self):
        """A Lightning MLFlowLogger writing into this run (None when tracking is off); it shares
        this run's failure handling, so a backend lost mid-training never stops training."""
        if not self.enabled:
            return None
        from lmforge.track.lightning import ResilientMLFlowLogger

        return ResilientMLFlowLogger(self, tracking_uri=self.cfg.uri, run_id=self.run_id,
                                     experiment_name=self.cfg.experiment)
