"""What every stage shares: paths, the MLflow child run, the resolved config, timing."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig, OmegaConf

from lmforge.config import flatten, to_container, validate
from lmforge.track.mlflow import StageRun

log = logging.getLogger("lmforge")

INITS = ("pretrained", "scratch")  # a fine-tune starts from the pretrained backbone or from scratch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (without importing Lightning: stages start faster)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Paths:
    """Where each stage reads and writes (DVC outs), from `cfg.paths`."""

    def __init__(self, cfg: DictConfig):
        self.root = Path(cfg.paths.root)
        art, rep = Path(cfg.paths.artifacts), Path(cfg.paths.reports)
        self.prepare = art / "prepare"
        self.tokens = self.prepare / "tokens"
        self.tokenizer = self.prepare / "tokenizer"
        self.tasks = self.prepare / "tasks"
        self.pretrain = art / "pretrain"
        self.pretrained_model = self.pretrain / "model"
        self.finetune = art / "finetune"
        self.reports = rep
        self.checkpoints = Path(cfg.paths.checkpoints)

    def finetuned(self, task: str, init: str) -> Path:
        return self.finetune / task / init


@contextmanager
def stage(cfg: DictConfig, name: str, tags: dict | None = None) -> Iterator[StageRun]:
    """Validate, seed, open the MLflow child run (params = the flattened resolved config),
    log the resolved config, and time the stage (`elapsed()` inside the body)."""
    validate(cfg)
    seed_everything(cfg.seed)
    resolved = to_container(cfg)
    paths = Paths(cfg)
    with StageRun(cfg.tracking, name, flatten(resolved), tags, root=paths.root) as run:
        run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        t0 = time.perf_counter()
        run.paths = paths
        run.elapsed = lambda: time.perf_counter() - t0
        yield run
        run.log_metrics({"wall_s": run.elapsed()})
        log.info("%s done in %.1f s", name, run.elapsed())
