"""Hydra sweeps in MLflow: one parent run per sweep, one child run per job.

`MlflowSweep` is a Hydra callback (conf/config.yaml, `hydra.callbacks`). In the launching process,
before any job starts (`on_multirun_start`), it opens the sweep's parent run — named and tagged
after the sweep's overrides — and puts its id in $LMFORGE_PARENT_RUN_ID, which every launcher
hands on to its jobs (basic: the same process; joblib/submitit: child processes inherit the
environment; SLURM: sbatch exports it). Each job's StageRun becomes a child of it, named after
the job's values of the swept keys (`track.jobs.job_identity`). `on_multirun_end` logs the outcome
on the parent — jobs finished and failed, the best job and its params (by `optimized_metric`),
Optuna's `optimization_results.yaml`, a comparison table — and ends it. A sweep killed before its
end leaves its parent KILLED (an atexit hook), not RUNNING. A failed job never stops the sweep
(`track.run.run_job`).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lmforge.track.jobs import ENV_KEYS, override_key, swept_keys
from lmforge.track.run import OBJECTIVE
from lmforge.track.store import ENV_PARENT, KIND_TAG, connect, context_tags, experiment_id, read_params, run_rows

log = logging.getLogger("lmforge")

SWEEP_FILE = "mlflow_sweep.json"


def _client(tracking):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking.uri)


class MlflowSweep(Callback):
    """Opens the sweep's parent run before the jobs, logs the outcome and closes it after."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self._saved_env: dict[str, str | None] = {}
        self._uri: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import lmforge.config  # noqa: F401  (resolvers)
        from lmforge.errors import ConfigError

        if OmegaConf.is_missing(config, "optimized_metric"):
            raise ConfigError(
                "optimized_metric is not set: name the summary key the sweeper optimises, "
                "e.g. optimized_metric=val_loss"
            )
        # launchers that start fresh interpreters (submitit) unpickle the task function there:
        # the app's own folder (pipelines/, for `_app`) must be importable in them too
        app_dir = str(Path(sys.argv[0]).resolve().parent)
        self._set_env("PYTHONPATH", os.pathsep.join(filter(None, [app_dir, os.environ.get("PYTHONPATH")])))
        tracking = config.tracking
        if not tracking.enabled:
            return
        client = connect(tracking)
        exp_id = experiment_id(client, tracking)
        stage = str(config.hydra.job.name)
        overrides = [str(o) for o in config.hydra.overrides.task]
        keys = swept_keys(config)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_") or "").rsplit(".", 1)[-1]
        launcher = str(OmegaConf.select(config, "hydra.launcher._target_") or "").rsplit(".", 1)[-1]
        tags = {
            KIND_TAG: "sweep",
            "lmforge.stage": stage,
            "lmforge.sweep.overrides": " ".join(overrides),
            "lmforge.sweep.keys": ",".join(keys),
            "lmforge.sweep.dir": str(sweep_dir),
            "lmforge.sweep.sweeper": sweeper,
            "lmforge.sweep.launcher": launcher,
            **context_tags(Path(str(config.paths.root))),
        }
        if config.get("optimized_metric"):
            tags["lmforge.sweep.optimized_metric"] = str(config.optimized_metric)
            tags["lmforge.sweep.direction"] = str(config.optimized_direction)
        if outer := os.environ.get(ENV_PARENT):
            tags["mlflow.parentRunId"] = outer
        swept = [o for o in overrides if override_key(o) in keys]
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        swept += [f"{k}={v}" for k, v in params.items() if not any(override_key(o) == str(k) for o in swept)]
        name = f"sweep {stage} " + " ".join(swept)
        run = client.create_run(exp_id, run_name=name.strip(), tags=tags)
        self.run_id, self._uri = run.info.run_id, str(tracking.uri)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEEP_FILE).write_text(
            json.dumps(
                {"run_id": self.run_id, "tracking_uri": self._uri, "experiment_id": exp_id, "keys": keys}, indent=2
            )
        )
        self._set_env(ENV_PARENT, self.run_id)
        self._set_env(ENV_KEYS, json.dumps(keys))
        atexit.register(self._abandon)
        log.info("sweep tracked as MLflow run %s (%s)", self.run_id, name)

    def _set_env(self, var: str, value: str) -> None:
        self._saved_env.setdefault(var, os.environ.get(var))
        os.environ[var] = value

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        for var, value in self._saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        self._saved_env = {}
        if self.run_id is None:
            return
        run_id, self.run_id = self.run_id, None
        atexit.unregister(self._abandon)
        try:
            status = self._summarise(config, run_id)
        except Exception as e:  # a summary never fails the sweep
            log.warning("could not summarise the sweep in MLflow: %s", e)
            status = "FINISHED"
        _client(config.tracking).set_terminated(run_id, status)

    def _summarise(self, config: DictConfig, run_id: str) -> str:
        from mlflow.entities import Metric, Param, RunTag

        client = _client(config.tracking)
        parent = client.get_run(run_id)
        children = client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=10000
        )
        failed = [r for r in children if r.info.status == "FAILED"]
        ts = int(time.time() * 1000)
        metrics = [Metric("jobs", len(children), ts, 0), Metric("jobs_failed", len(failed), ts, 0)]
        tags, params = [], []
        metric = config.get("optimized_metric")
        scored = [
            r
            for r in children
            if r.info.status == "FINISHED" and OBJECTIVE in r.data.metrics and not math.isnan(r.data.metrics[OBJECTIVE])
        ]
        if metric and scored:
            pick = min if str(config.optimized_direction) == "minimize" else max
            best = pick(scored, key=lambda r: r.data.metrics[OBJECTIVE])
            metrics.append(Metric(f"best/{OBJECTIVE}", best.data.metrics[OBJECTIVE], ts, 0))
            tags += [
                RunTag("lmforge.sweep.best_run_id", best.info.run_id),
                RunTag("lmforge.sweep.best_run_name", best.info.run_name or ""),
            ]
            keys = [k for k in parent.data.tags.get("lmforge.sweep.keys", "").split(",") if k]
            best_params = read_params(best)
            params += [Param(f"best.{k}", best_params[k]) for k in keys if k in best_params]
            log.info("sweep best: %s = %s (%s)", metric, best.data.metrics[OBJECTIVE], best.info.run_name)
        client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        sweep_dir = Path(parent.data.tags.get("lmforge.sweep.dir", ""))
        results = sweep_dir / "optimization_results.yaml"  # written by the Optuna sweeper
        if results.is_file():
            client.log_artifact(run_id, str(results))
        try:
            from lmforge.report.compare import write

            table = write(run_rows(children), OBJECTIVE if metric else None, sweep_dir / "compare", "Sweep comparison")
            client.log_artifacts(run_id, str(sweep_dir / "compare"), "compare")
            log.info("sweep comparison: %s", table)
        except Exception as e:
            log.warning("sweep comparison failed: %s", e)
        return "FAILED" if children and len(failed) == len(children) else "FINISHED"

    def _abandon(self) -> None:
        """The process exits before the sweep ended (killed, aborted): the parent is KILLED."""
        if self.run_id and self._uri:
            try:
                from mlflow.tracking import MlflowClient

                MlflowClient(tracking_uri=self._uri).set_terminated(self.run_id, "KILLED")
            except Exception:
                pass
