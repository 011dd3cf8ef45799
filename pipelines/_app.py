"""Shared wiring of the stage apps: logging and clean exits on user errors."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from omegaconf import DictConfig

from lmforge.errors import LmforgeError


def main(stage: Callable[[DictConfig], dict], cfg: DictConfig) -> dict:
    logging.getLogger("lmforge").setLevel(logging.INFO)
    try:
        return stage(cfg)
    except LmforgeError as e:
        logging.getLogger("lmforge").error("%s", e)
        sys.exit(2)
