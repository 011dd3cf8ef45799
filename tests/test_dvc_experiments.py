"""DVC experiments: `make seeds` runs one experiment per seed, each in a temporary copy
(`dvc exp run --temp`, .dvc/tmp/exps/...), yet their MLflow runs land in the workspace's store,
tagged with the experiment's name; `dvc exp show` and `python -m lmforge.compare --exps` list the
experiments with the params that differ, and `python -m lmforge.compare --seeds` (the target's last
step) aggregates them into mean ± std per task (error bars).

The seeds are fine-tune seeds on the committed pretrained model, run in a copy of the session's
smoke pipeline: each temporary copy checks the committed outputs out of the DVC cache and re-runs
only the stages the seed reaches. (A whole-pipeline grid, `-S seed=<n>`, runs the same way;
tests/test_seeds.py aggregates one.)"""

import json
import sys
from pathlib import Path

import pytest
from conftest import copy_repo, run_in
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(smoke_pipeline, tmp_path) -> Path:
    """A copy of the smoke pipeline's repo, its results committed (an experiment in a temporary copy
    starts from the commit, its outputs checked out of the DVC cache)."""
    repo = copy_repo(smoke_pipeline[0], tmp_path / "repo")
    run_in(["git", "add", "reports/metrics.json", "dvc.lock"], repo)
    run_in(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results"], repo)
    return repo


def test_make_seeds_tracks_into_the_workspace_and_aggregates(repo):
    ours = [repo / "reports/metrics.json", repo / "artifacts/finetune/topic/pretrained/summary.json"]
    before = [path.read_bytes() for path in ours]
    venv = Path(sys.prefix)  # this environment: nothing to install (-o: never remade)
    make = ["make", f"VENV={venv}", "-o", f"{venv}/.installed", "seeds", "SEEDS=7,8", "ARGS=-S 'task=[topic]'"]
    log = run_in(make, repo).stdout

    shown = json.loads(run_in(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = {rev["name"]: rev for b in shown for e in b.get("experiments") or [] for rev in e["revs"][:1]}
    assert len(exps) == 2, log
    params = {name: e["data"]["params"]["params.yaml"]["data"] for name, e in exps.items()}
    assert sorted(p["finetune_seed"] for p in params.values()) == [7, 8]
    assert all(list(p["task"]) == ["topic"] for p in params.values())  # composed by DVC from conf/ + -S

    assert [path.read_bytes() for path in ours] == before  # they ran in temporary copies, not here
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("lmforge").experiment_id], max_results=200)
    parents = {
        r.data.tags["lmforge.dvc.exp"]: r
        for r in runs
        if r.data.tags.get("lmforge.kind") == "pipeline" and "lmforge.dvc.exp" in r.data.tags
    }
    assert set(parents) == set(exps)
    for name, parent in parents.items():
        assert parent.info.run_name == f"dvc exp {name}" and parent.info.status == "FINISHED"
        children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        # the seed reaches the task stages alone: prepare and pretrain came out of the cache
        assert set(children) == {"finetune/topic/pretrained", "finetune/topic/scratch", "evaluate/topic", "report"}
        ft = children["finetune/topic/pretrained"]
        assert ft.data.tags["lmforge.dvc.stage"] == "finetune@topic" and ft.data.tags["lmforge.dvc.exp"] == name
        assert ft.data.params["finetune_seed"] == str(params[name]["finetune_seed"])
        assert Path(ft.info.artifact_uri.removeprefix("file://")).is_relative_to(repo / "mlartifacts")
    assert not list((repo / ".dvc").rglob("mlflow.db"))

    run_in(["python", "-m", "lmforge.compare", "--exps", *exps], repo)
    table = (repo / "reports/compare/compare.md").read_text()
    assert "params that differ: finetune_seed" in table and all(name in table for name in exps)

    seeds = (repo / "reports/compare/seeds.md").read_text()  # make seeds' table of every finished seed
    scores = [
        e["data"]["metrics"]["reports/metrics.json"]["data"]["tasks"]["topic"]["pretrained"]["accuracy"]
        for e in exps.values()
    ]
    mean = sum(scores) / 2
    assert "## fine-tune seeds 7, 8 (pretraining seed 1234)" in seeds and f"| topic | accuracy | {mean:.3f} ± " in seeds

    # one still queued shows its baseline's metrics: not a seed of the spread until it has run
    run_in(["dvc", "exp", "run", "--queue", "-S", "finetune_seed=9", "-S", "task=[topic]"], repo)
    run_in(["python", "-m", "lmforge.compare", "--seeds"], repo)
    assert "## fine-tune seeds 7, 8 (pretraining seed 1234)" in (repo / "reports/compare/seeds.md").read_text()
