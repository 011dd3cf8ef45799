"""The private APIs of the libraries lmforge builds on, each used here and nowhere else, where no
public API does the job; `tests/test_compat.py` fails naming the library and the member when an
upgrade moves one. (Lightning's private checkpoint members are used by `train.trainer.StepCheckpoint`
alone, and checked by the same test.)"""

from __future__ import annotations

import argparse
from pathlib import Path


def hydra_args_parser() -> argparse.ArgumentParser:
    """The parser of a Hydra app's command line (its overrides and flags), to check an override
    before `hydra.main` starts the app. Hydra has no public way to parse its command line."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def dvc_compose_params(out: Path, config_dir: Path, config_name: str, plugins_path: Path, overrides: list[str]) -> None:
    """Write `out` (params.yaml) composed from `config_dir` exactly as `dvc exp run -S` does — the
    same search path, plugins and dump — so that the file and DVC's agree to the byte."""
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(out, str(config_dir), None, config_name, str(plugins_path), overrides)
