"""DVC experiments: a queued seed grid runs in temporary copies (.dvc/tmp/exps/...), yet its MLflow
runs land in the workspace's store, tagged with the experiment's name; `dvc exp show` and
`python -m lmforge.compare --exps` list the experiments with the params that differ, and
`python -m lmforge.compare --seeds` aggregates them into mean ± std per task (error bars)."""

import json
from pathlib import Path

import pytest
from conftest import run_in, smoke_repo
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path) -> Path:
    """The working tree as it is (tracked and new files, not ignored ones), committed, smoke-sized."""
    return smoke_repo(tmp_path / "repo", lambda args, cwd: run_in(args, cwd))


def test_a_queued_seed_grid_tracks_into_the_workspace_and_aggregates(repo):
    run_in(["dvc", "exp", "run", "--queue", "-S", "seed=7,8", "-S", "task=[topic]"], repo)
    log = run_in(["dvc", "exp", "run", "--run-all"], repo).stdout

    shown = json.loads(run_in(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = {rev["name"]: rev for b in shown for e in b.get("experiments") or [] for rev in e["revs"][:1]}
    assert len(exps) == 2, log
    params = {name: e["data"]["params"]["params.yaml"]["data"] for name, e in exps.items()}
    assert sorted(p["seed"] for p in params.values()) == [7, 8]
    assert all(list(p["task"]) == ["topic"] for p in params.values())  # composed by DVC from conf/ + -S

    assert not (repo / "artifacts").exists()  # they ran in temporary copies, not here
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("lmforge").experiment_id], max_results=200)
    parents = {r.data.tags["lmforge.dvc.exp"]: r for r in runs if r.data.tags.get("lmforge.kind") == "pipeline"}
    assert set(parents) == set(exps)
    for name, parent in parents.items():
        assert parent.info.run_name == f"dvc exp {name}" and parent.info.status == "FINISHED"
        children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        assert set(children) == {
            "prepare",
            "pretrain",
            "finetune/topic/pretrained",
            "finetune/topic/scratch",
            "evaluate/topic",
            "report",
        }
        pre = children["pretrain"]
        assert pre.data.tags["lmforge.dvc.stage"] == "pretrain" and pre.data.tags["lmforge.dvc.exp"] == name
        assert pre.data.params["seed"] == str(params[name]["seed"])
        assert Path(pre.info.artifact_uri.removeprefix("file://")).is_relative_to(repo / "mlartifacts")
    assert not list((repo / ".dvc").rglob("mlflow.db"))

    run_in(["python", "-m", "lmforge.compare", "--exps", *exps], repo)
    table = (repo / "reports/compare/compare.md").read_text()
    assert "params that differ: seed" in table and all(name in table for name in exps)

    run_in(["python", "-m", "lmforge.compare", "--seeds", *exps], repo)
    seeds = (repo / "reports/compare/seeds.md").read_text()
    scores = [
        e["data"]["metrics"]["reports/metrics.json"]["data"]["tasks"]["topic"]["pretrained"]["accuracy"]
        for e in exps.values()
    ]
    mean = sum(scores) / 2
    assert "## seeds 7, 8" in seeds and f"| topic | accuracy | {mean:.3f} ± " in seeds

    # one still queued shows its baseline's metrics: not a seed of the spread until it has run
    run_in(["dvc", "exp", "run", "--queue", "-S", "seed=9", "-S", "task=[topic]"], repo)
    run_in(["python", "-m", "lmforge.compare", "--seeds"], repo)
    assert "## seeds 7, 8 (" in (repo / "reports/compare/seeds.md").read_text()
