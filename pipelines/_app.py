"""Shared wiring of the stage apps: logging and clean exits on user errors."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from omegaconf import DictConfig

from lmforge.errors import LmforgeError
from lmforge.track import sweep


def _no_adverts(record: logging.LogRecord) -> bool:
    return "Tip:" not in str(record.msg)


def main(stage: Callable[[DictConfig], dict], cfg: DictConfig) -> dict:
    logging.getLogger("lmforge").setLevel(logging.INFO)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_adverts)
    if sweep.in_multirun():  # a failed job is recorded and the sweep goes on; returns the
        return sweep.run_job(stage, cfg)  # optimized metric when cfg.optimized_metric is set
    try:
        return stage(cfg)
    except LmforgeError as e:
        logging.getLogger("lmforge").error("%s", e)
        sys.exit(2)
