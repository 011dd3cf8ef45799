"""Shared fixtures: the repo root, composed configs, offline Hugging Face."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.pop("LMFORGE_TRACKING_URI", None)  # tests choose their store; a shell's server must not receive them
# Tiny models run as fast on one thread, and one thread per process keeps every result the same
# whatever else runs beside it: `make test` runs one pytest worker per core, and lmforge would
# otherwise choose a stage's threads by the load it finds (lmforge.host). Processes the tests
# start inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption(
        "--update-baseline",
        action="store_true",
        help="rewrite tests/smoke_baseline.json from this checkout's smoke run (`make baseline`)",
    )


def pytest_collection_modifyitems(items):
    """The smoke pipeline's build first, the tests that read it last: under `pytest -n N` one worker
    builds it from the start while the others run every test that does not need it, instead of
    waiting on its lock whenever they reach a reader first (each group in its own order)."""
    reads = [item for item in items if "smoke_pipeline" in getattr(item, "fixturenames", ())]
    builds = [item for item in reads if item.name == "test_the_smoke_pipeline_gives_the_baseline_results"]
    items[:] = builds + [item for item in items if item not in reads] + [item for item in reads if item not in builds]


def compose(overrides: list[str] | None = None, root: Path | None = None, config_name: str = "config"):
    """The real config composed by Hydra (as a stage app would), rooted at `root`: `config` (a stage
    run by hand) or `stage` (as DVC runs one: every hyperparameter from `root`/params.yaml)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import lmforge.config  # noqa: F401  (registers the schema and resolvers)

    overrides = list(overrides or [])
    if root is not None:
        overrides.append(f"paths.root={root}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def smoke_repo(dst: Path, run) -> Path:
    """Copy the working tree (tracked and new files, not ignored outputs) into `dst`, make the
    smoke preset the default experiment (conf/pipeline.yaml, so that every `dvc exp run` composes
    it too), compose params.yaml and commit: a fresh, smoke-sized clone to run DVC in.
    `run(args, cwd)` runs a command there (each test module brings its own environment)."""
    import shutil
    import subprocess
    import sys

    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for rel in filter(None, files.stdout.split("\0")):
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
    pipeline = dst / "conf" / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("  - experiment: default", "  - experiment: smoke"))
    # fp32 on the CPU on every host (`auto` picks bf16 on a GPU or an AVX512-BF16 CPU): the smoke
    # results are compared exactly with tests/smoke_baseline.json
    smoke = dst / "conf" / "experiment" / "smoke.yaml"
    smoke.write_text(smoke.read_text().replace("trainer:\n", "trainer:\n  accelerator: cpu\n  precision: 32-true\n", 1))
    run(["git", "init", "-q"], dst)
    run([sys.executable, "-m", "lmforge.params"], dst)
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        run(cmd, dst)
    return dst


def run_in(args: list[str], cwd: Path, timeout: float = 900, check: bool = True):
    """A command in `cwd` with the project's tools on PATH and no inherited tracking/DVC context."""
    import subprocess

    from servers import env

    out = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"{' '.join(map(str, args))} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def ran_stages(log: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` log says it ran."""
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory):
    """One real `dvc repro` of the whole smoke-sized pipeline, shared by the tests that read its
    results: (repo, the repro's log). Tests work on a copy (`copy_repo`) when they run anything in
    it. Under `pytest -n N` (`make test`) the first worker that needs it builds it, under a lock, in
    the session's temporary folder, and the others read that one."""
    from filelock import FileLock

    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent  # this session's, common to its workers
    else:
        shared = tmp_path_factory.mktemp("smoke")
    repo, log = shared / "pipeline", shared / "pipeline.log"
    with FileLock(shared / "pipeline.lock"):
        if not log.is_file():
            smoke_repo(repo, lambda args, cwd: run_in(args, cwd))
            out = run_in(["dvc", "repro"], repo)
            log.write_text(out.stdout + out.stderr)
    return repo, log.read_text()


def copy_repo(src: Path, dst: Path) -> Path:
    """A copy of a repo with its outputs, DVC cache and MLflow store (to change without touching
    the shared one)."""
    import shutil

    shutil.copytree(src, dst, symlinks=True)
    return dst


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster, and immune to a busy machine's oversubscription."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
