"""Shared fixtures: the repo root, composed configs, offline Hugging Face."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def compose(overrides: list[str] | None = None, root: Path | None = None):
    """The real config composed by Hydra (as a stage app would), rooted at `root`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import lmforge.config  # noqa: F401  (registers the schema and resolvers)

    overrides = list(overrides or [])
    if root is not None:
        overrides.append(f"paths.root={root}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
