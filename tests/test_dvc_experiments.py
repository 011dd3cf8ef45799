"""DVC experiments: queued experiments run in temporary copies (.dvc/tmp/exps/...), yet their
MLflow runs land in the workspace's store, tagged with the experiment's name; `dvc exp show`
and `python -m lmforge.compare --exps` list them with the params that differ."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import smoke_repo
from servers import env

pytestmark = pytest.mark.slow


def sh(args: list[str], cwd: Path, timeout: float = 600) -> str:
    out = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout + out.stderr


@pytest.fixture
def repo(tmp_path) -> Path:
    """The working tree as it is (tracked and new files, not ignored ones), committed, smoke-sized."""
    return smoke_repo(tmp_path / "repo", sh)


def test_queued_experiments_track_into_the_workspace_store(repo):
    dvc = str(Path(sys.executable).parent / "dvc")
    sh([dvc, "exp", "run", "prepare", "--queue", "-S", "seed=7,8"], repo)
    log = sh([dvc, "exp", "run", "--run-all"], repo)

    shown = json.loads(sh([dvc, "exp", "show", "--json"], repo))
    exps = {rev["name"]: rev for b in shown for e in b.get("experiments") or [] for rev in e["revs"][:1]}
    assert len(exps) == 2, log
    seeds = {name: e["data"]["params"]["params.yaml"]["data"]["seed"] for name, e in exps.items()}
    assert sorted(seeds.values()) == [7, 8]

    assert not (repo / "artifacts").exists()  # they ran in temporary copies, not here
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("lmforge")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = {r.data.tags["lmforge.dvc.exp"]: r for r in runs if r.data.tags.get("lmforge.kind") == "pipeline"}
    assert set(parents) == set(exps)
    for name, parent in parents.items():
        assert parent.info.run_name == f"dvc exp {name}"
        (child,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert child.info.run_name == "prepare" and child.info.status == "FINISHED"
        assert child.data.tags["lmforge.dvc.stage"] == "prepare" and child.data.tags["lmforge.dvc.exp"] == name
        assert child.data.params["seed"] == str(seeds[name])
        assert child.data.params["paths.root"] != str(repo)  # the copy, yet the workspace's store
        assert Path(child.info.artifact_uri.removeprefix("file://")).is_relative_to(repo / "mlartifacts")
    assert not list((repo / ".dvc").rglob("mlflow.db"))

    out = subprocess.run([sys.executable, "-m", "lmforge.compare", "--exps", *exps],
                         cwd=repo, env=env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    table = (repo / "reports/compare/compare.md").read_text()
    assert "params that differ: seed" in table and all(name in table for name in exps)
