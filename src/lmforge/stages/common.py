"""What every stage shares: its context (config, paths, MLflow run, clock), opened by `stage()`.

    with stage(cfg, "pretrain", PARAMS) as ctx:   # PARAMS: the hyperparameter sections it reads
        ...setup → fit → save, writing under ctx.paths, logging to ctx.run

`stage()` takes the stage's sections from params.yaml when DVC runs it (`cfg.params_file`), keeps
only those sections (reading another fails at once), checks them and the tracking settings, seeds,
and — on the main process only (global rank 0; the others of a multi-process run neither track nor
write) — connects to the MLflow store. The stage's MLflow run is created when its work begins
(`ctx.run.begin()`, once its inputs have checked out): a stage refused for bad input leaves the
store as it was.

What a run measured about the machine — wall time, threads, peak memory, throughput, where it
resumed — goes to `reports/runtime/` (`StageContext.record_runtime`), not into the stage's DVC outs:
the same work then gives the same outs, and the same `dvc.lock`, on any machine and after a resume.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from lmforge.config import INITS, SCALARS, SECTIONS, TrackingConfig, flatten, load_params, narrow, section, task_seed
from lmforge.errors import ConfigError
from lmforge.fileio import write_json
from lmforge.host import METER, choose_threads, process_age
from lmforge.schema import build
from lmforge.track.run import StageRun

log = logging.getLogger("lmforge")

__all__ = ["INITS", "Paths", "StageContext", "stage", "task_names", "is_main_process", "seed_everything", "log"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and — when the stage uses it (its module imports it) — torch, without
    importing torch for a stage that does not (prepare, report) or Lightning for one that does."""
    import random
    import sys

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def is_main_process() -> bool:
    """Global rank 0 of a multi-process run (Lightning's DDP children, SLURM tasks, other nodes
    carry a non-zero rank in their environment); a single process is always the main one."""
    return all(
        os.environ.get(var, "0") == "0"
        for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
    )


def task_names(cfg: DictConfig) -> list[str]:
    """The tasks a finetune/evaluate run covers: `only_task`, else every configured task."""
    if cfg.get("only_task"):
        return [cfg.only_task]
    tasks = load_params(cfg, ("task",)).task if cfg.get("params_file") else cfg.task
    if not tasks:
        raise ConfigError("no task is configured: choose one or more, e.g. task=topic or 'task=[topic,ner]'")
    return list(tasks)


class Paths:
    """Where each stage reads and writes (DVC outs), from `cfg.paths`."""

    def __init__(self, cfg: DictConfig):
        self.root = Path(cfg.paths.root)
        art, rep = Path(cfg.paths.artifacts), Path(cfg.paths.reports)
        self.prepare = art / "prepare"
        self.tokens = self.prepare / "tokens"
        self.tokenizer = self.prepare / "tokenizer"
        self.corpus_index = self.prepare / "index"
        self.pretrain = art / "pretrain"
        self.pretrained_model = self.pretrain / "model"
        self.finetune = art / "finetune"
        self.reports = rep
        self.runtime = rep / "runtime"  # how each run went on this machine (not a DVC out)
        self.checkpoints = Path(cfg.paths.checkpoints)
        self.cache = self.checkpoints.parent  # .lmforge/: checkpoints, re-tokenized corpora

    def finetuned(self, task: str, init: str) -> Path:
        return self.finetune / task / init


@dataclass
class StageContext:
    cfg: DictConfig  # the stage's config: its hyperparameter sections and the app settings
    paths: Paths
    run: StageRun
    is_main: bool  # the one process that writes outputs and tracks
    started: float

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def record_runtime(self, name: str, **measured: Any) -> None:
        """`reports/runtime/<name>.json`: this run's wall time and what else it measured about the
        machine (kept out of the DVC outs, see the module docstring; the report gathers them)."""
        write_json(self.paths.runtime / f"{name}.json", {"wall_s": round(self.elapsed(), 2), **measured})

    def record(self, name: str, settings: Any) -> None:
        """Log a checked section (a dataclass, e.g. a task family's settings) as params `name.*`."""
        data = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
        self.run.log_params(flatten({name: data}))


_OPENED: list[str] = []  # the stages this process has opened (the first one reports the start-up)


@contextmanager
def stage(cfg: DictConfig, name: str, sections: tuple[str, ...], tags: dict | None = None) -> Iterator[StageContext]:
    """Open a stage (see the module docstring); `model` and `task`, which only a backbone or a
    family can check, the stage checks and records itself (`StageContext.record`)."""
    if cfg.get("params_file"):
        cfg = load_params(cfg, sections)
    cfg = narrow(cfg, sections)
    checked = {s: section(cfg, s) for s in sections if s in SECTIONS or s in SCALARS}
    if "model" in sections:  # checked by the backbone, in the stage; recorded as configured
        checked["model"] = OmegaConf.to_container(cfg.model, resolve=True)
    if cfg.tracking.enabled:
        build(TrackingConfig, cfg.tracking, "tracking")
    first = not _OPENED
    _OPENED.append(name)
    seed_everything(task_seed(checked) if "finetune_seed" in checked else checked.get("seed", 0))
    choose_threads(METER)  # torch's threads for the cores free now (lmforge.host)
    main = is_main_process()
    tracking = cfg.tracking if main else OmegaConf.create({"enabled": False})
    params = flatten({s: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for s, v in checked.items()})
    paths = Paths(cfg)
    with StageRun(tracking, name, params, tags, root=paths.root) as run:
        run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")  # what the stage was given
        ctx = StageContext(cfg, paths, run, main, time.perf_counter())
        startup = process_age() if first else None  # the fixed cost: process start to this stage's work
        yield ctx
        run.log_metrics({"wall_s": ctx.elapsed()})
        if main:
            log.info(
                "%s done in %.1f s%s",
                name,
                ctx.elapsed(),
                f" (after {startup:.1f} s of process start-up)" if startup is not None else "",
            )
