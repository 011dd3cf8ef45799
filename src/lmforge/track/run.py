"""MLflow runs: one parent run per `dvc repro` (or sweep), one child run per stage.

Stages are separate processes launched by DVC, so they find their parent run through a key:
$LMFORGE_PARENT_RUN_ID when a caller provides one (a Hydra sweep does, see `track.sweep`), else
the `dvc` process that launched them (its pid and start time, from /proc). The first stage of a
`dvc repro` opens the parent run; the `report` stage, last in every pipeline, closes it.

Every run is tagged with the git commit, the process that opened it and, under DVC, the stage
($DVC_STAGE) and experiment ($DVC_EXP_NAME). Params are the flattened config the stage used,
losslessly (`store.split_params`). A run whose process died (killed) is closed as KILLED by the
run that resumes its work, tagged with the id of that run.

Tracking never costs the work: a backend unreachable or unusable at the start fails the stage at
once (ConfigError); one that fails later is reported once and then skipped, so training finishes
and the stage's outputs are written.

A run is created when the stage's work begins (`StageRun.begin`: the stage calls it once its inputs
have checked out; logging a metric or an artifact begins it too), not when the stage opens: a
stage refused for bad input (an `LmforgeError` before it began) leaves the store as it was. What
it logs before (its params, its config) waits for the run.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from lmforge.errors import LmforgeError
from lmforge.interrupt import Interrupted
from lmforge.track.jobs import in_multirun, job_identity
from lmforge.track.store import (
    ENV_PARENT,
    ERROR_TAG,
    KIND_TAG,
    MAX_PARAM_LEN,
    PARTS_TAG,
    PROCESS_TAG,
    SESSION_TAG,
    check_experiment,
    connect,
    context_tags,
    dvc_session,
    experiment_id,
    process_alive,
    process_key,
    split_params,
)

log = logging.getLogger("lmforge")

RESUME_TAG = "lmforge.resume_key"  # the work a run does (its checkpoint folder): a resumed run has the same
OBJECTIVE = "objective"  # the metric each sweep job logs: the value it returned to the sweeper

# run ids this process created, newest last (a sweep job checks whether its stage opened one)
STARTED: list[str] = []


class StageRun:
    """A context manager around one MLflow child run; a no-op when tracking is disabled."""

    def __init__(
        self,
        tracking: Any,
        name: str,
        params: dict[str, Any],
        tags: dict[str, str] | None = None,
        root: Path | None = None,
    ):
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
        self._texts: list[tuple[str, str]] = []  # logged before `begin`

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> "StageRun":
        """Connect (failing fast when the backend cannot be used); the run waits for `begin`."""
        if self.enabled:
            self.client = connect(self.cfg)
            check_experiment(self.client, self.cfg)
        return self

    def begin(self) -> None:
        """Create the MLflow run (once) with what was logged so far: the stage's work begins."""
        if not self.enabled or self.run_id is not None:
            return
        self.experiment_id = experiment_id(self.client, self.cfg)
        self.parent_id = self._parent_run()
        tags = {
            "lmforge.stage": self.name.split("/")[0],
            PROCESS_TAG: process_key(),
            **context_tags(self.root),
            **self.tags,
        }
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
        self.tags = tags
        STARTED.append(self.run_id)
        self._log_params(self.params)
        for text, artifact_file in self._texts:
            self.log_text(text, artifact_file)
        self._texts.clear()
        # runs of this stage whose process died without a word (SIGKILL, a lost machine) are closed
        # as KILLED; those of resumable work are closed by the run that resumes it (`resumes`)
        stage = tags["lmforge.stage"]
        self._guard("close killed runs", self._close_dead, f"tags.`lmforge.stage` = '{stage}'", unless=RESUME_TAG)

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled:
            return
        if self.run_id is None:
            if exc_type is not None and issubclass(exc_type, LmforgeError):
                return  # refused before any work: nothing to record
            self._guard("start the run", self.begin)
        if self.run_id is None:
            return
        if exc_type is not None:
            self.set_tags({ERROR_TAG: f"{exc_type.__name__}: {exc}"[:5000]})
        killed = exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, Interrupted))
        status = "FINISHED" if exc_type is None else "KILLED" if killed else "FAILED"
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
        self._close_dead(f"tags.`{KIND_TAG}` = 'pipeline'", tag=SESSION_TAG)
        tags = {SESSION_TAG: key, KIND_TAG: "pipeline", **context_tags(self.root)}
        tags.pop("lmforge.dvc.stage", None)
        exp = os.environ.get("DVC_EXP_NAME")
        name = f"dvc exp {exp}" if exp else f"dvc repro {time.strftime('%Y-%m-%d %H:%M:%S')}"
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def _close_dead(self, where: str, tag: str = PROCESS_TAG, unless: str | None = None) -> list[str]:
        """RUNNING runs matching `where` whose process (`tag`) is gone are ended as KILLED (not those
        tagged `unless`)."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"{where} and attributes.status = 'RUNNING'")
        closed = []
        for r in runs:
            key = r.data.tags.get(tag)
            if unless and unless in r.data.tags:
                continue
            if r.info.run_id != self.run_id and key and not process_alive(key):
                self.client.set_terminated(r.info.run_id, "KILLED")
                closed.append(r.info.run_id)
        return closed

    def resumes(self, key: str) -> None:
        """Name the work this run does (`key`: its checkpoint folder's). Runs of the same work whose
        process died are ended as KILLED and tagged with this run's id, and this run with theirs."""
        if not self.enabled:
            return
        self.begin()

        def close() -> None:
            self.client.set_tag(self.run_id, RESUME_TAG, key)
            dead = self._close_dead(f"tags.`{RESUME_TAG}` = '{key}'")
            for run_id in dead:
                self.client.set_tag(run_id, "lmforge.resumed_by", self.run_id)
            if dead:
                self.client.set_tag(self.run_id, "lmforge.resumes", ",".join(dead))
                log.info("closed the killed run(s) %s as KILLED: this run resumes their work", ", ".join(dead))

        self._guard("close killed runs", close)

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
                log.warning(
                    "MLflow tracking failed (%s: %s: %s)%s",
                    what,
                    type(e).__name__,
                    e,
                    "; the stage goes on without tracking" if lose else "",
                )
            self.lost = self.lost or lose
            return None

    # -- logging -------------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        """Params as they are, however long (see `split_params`); before `begin` they wait for it."""
        if not self.enabled:
            return
        if self.run_id is None:
            self.params = {**self.params, **params}
            return
        self._log_params(params)

    def _log_params(self, params: dict[str, Any]) -> None:
        """(raises: it runs as the run begins)"""
        from mlflow.entities import Param

        values, long = split_params(params)
        items = [Param(k, v) for k, v in values.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        for k, v in long.items():
            self.client.set_tag(self.run_id, PARTS_TAG + k, str(-(-len(v) // MAX_PARAM_LEN)))
            self.client.log_text(self.run_id, v, f"params/{k.replace('/', '_')}.txt")
            log.info(
                "param %s (%d characters) is split over %d params and kept whole in params/",
                k,
                len(v),
                -(-len(v) // MAX_PARAM_LEN),
            )

    def set_tags(self, tags: dict[str, str]) -> None:
        if not self.enabled:
            return
        if self.run_id is None:
            self.tags.update({k: str(v) for k, v in tags.items()})
            return
        from mlflow.entities import RunTag

        self._guard("set tags", self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self.enabled or not metrics:
            return
        from mlflow.entities import Metric

        self._guard("start the run", self.begin)
        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        self._guard("log metrics", self.client.log_batch, self.run_id, metrics=items)

    def log_text(self, text: str, artifact_file: str) -> None:
        if not self.enabled:
            return
        if self.run_id is None:
            self._texts.append((text, artifact_file))
            return
        self._guard(f"log {artifact_file}", self.client.log_text, self.run_id, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        self._guard("start the run", self.begin)
        path = Path(path)
        if path.is_dir():
            self._guard(f"log {path}", self.client.log_artifacts, self.run_id, str(path), artifact_path)
        else:
            self._guard(f"log {path}", self.client.log_artifact, self.run_id, str(path), artifact_path)

    def register_model(
        self,
        model_dir: str | Path,
        serving: str | None,
        signature: dict | None = None,
        task: str | None = None,
        init: str | None = None,
    ):
        """Log `model_dir` (as an MLflow pyfunc model when `serving` names one) and register a version."""
        if not (self.enabled and self.cfg.register_models):
            return None
        from lmforge.track.registry import register

        self._guard("start the run", self.begin)
        return self._guard(
            f"register {model_dir}", register, self, Path(model_dir), serving, signature, task, init, lose=False
        )


# -- sweep jobs ----------------------------------------------------------------------------------------
def metric_value(summary: Any, key: str) -> float:
    """summary["a"]["b"] for key "a.b" (also a literal "a.b" or "a/b" key); a `*` part matches the
    one key there is at that level (e.g. "*.pretrained.best_val_score" for one task's fine-tune)."""
    from lmforge.errors import ConfigError

    node = summary
    if isinstance(node, dict) and key in node:
        return float(node[key])
    for part in key.replace("/", ".").split("."):
        if part == "*" and isinstance(node, dict) and len(node) == 1:
            part = next(iter(node))
        if not isinstance(node, dict) or part not in node:
            here = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise ConfigError(f"optimized_metric={key!r} is not in the stage's summary (at {part!r}: {here})")
        node = node[part]
    return float(node)


def run_job(stage: Callable, cfg: Any) -> Any:
    """One sweep job: the stage's summary, or its optimized metric; None when it failed (the failure
    is recorded — its run FAILED with the error — and the sweep goes on)."""
    before = len(STARTED)
    try:
        result = stage(cfg)
        run_id = STARTED[-1] if len(STARTED) > before else None
        if not cfg.get("optimized_metric"):
            return result
        value = metric_value(result, cfg.optimized_metric)
        if run_id:
            connect(cfg.tracking).log_metric(run_id, OBJECTIVE, value)
        return value
    except (Exception, SystemExit) as e:
        if isinstance(e, LmforgeError) and os.environ.get("LMFORGE_DEBUG") != "1":
            log.error("job failed: %s", e)  # bad input: its one line, as a single run prints it
        else:
            log.error("job failed: %s: %s\n%s", type(e).__name__, e, traceback.format_exc())
        try:
            _record_failure(cfg, e, STARTED[before:] or None, _sections(stage))
        except Exception as e2:  # tracking itself is down: the sweep still goes on
            log.warning("could not record the failed job in MLflow: %s", e2)
        return None


def _sections(stage: Callable) -> tuple[str, ...]:
    """The hyperparameter sections `stage` reads (`PARAMS` of its module; all when it has none)."""
    import inspect

    from lmforge.config import HYPERPARAMETERS

    return tuple(getattr(inspect.getmodule(stage), "PARAMS", HYPERPARAMETERS))


def _record_failure(cfg: Any, exc: BaseException, run_ids: list[str] | None, sections: tuple[str, ...]) -> None:
    """Mark the job's run FAILED with the error; open one if the job failed before its stage did
    (an invalid config), so the sweep's parent lists every job — with the stage's `sections` as
    given (unchecked: checking them is what failed) as its params, as its siblings have them."""
    if not cfg.tracking.enabled:
        return
    from hydra.core.hydra_config import HydraConfig

    message = f"{type(exc).__name__}: {exc}"[:5000]
    if run_ids:
        client = connect(cfg.tracking)
        for run_id in run_ids:
            client.set_tag(run_id, ERROR_TAG, message)
            client.set_terminated(run_id, "FAILED")
        return
    params = {}
    try:
        from lmforge.config import flatten, narrow, to_container

        given = to_container(narrow(cfg, sections))
        params = flatten({name: given[name] for name in sections})
    except Exception:  # the config itself is what failed: record the run without params
        pass
    with StageRun(cfg.tracking, HydraConfig.get().job.name, params, {ERROR_TAG: message}) as run:
        pass
    run.client.set_terminated(run.run_id, "FAILED")


__all__ = ["StageRun", "run_job", "metric_value", "in_multirun", "STARTED", "OBJECTIVE", "RESUME_TAG"]
