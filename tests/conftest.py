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


def smoke_repo(dst: Path, git) -> Path:
    """Copy the working tree (tracked and new files, not ignored outputs) into `dst`, set
    `experiment: smoke` in params.yaml and commit it: a fresh, smoke-sized clone to run DVC in.
    `git(args, cwd)` runs a command there (each test module brings its own environment)."""
    import shutil
    import subprocess

    import yaml

    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True)
    for rel in filter(None, files.stdout.split("\0")):
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["experiment"] = "smoke"
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        git(cmd, dst)
    return dst


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster, and immune to a busy machine's oversubscription."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
