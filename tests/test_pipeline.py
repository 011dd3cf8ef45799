"""End to end: a copy of the repo runs the real `dvc repro` at smoke size, tracked in a real
MLflow store; a second repro does nothing; editing one task's config re-runs only its stages."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import smoke_repo

pytestmark = pytest.mark.slow

TASKS = ("topic", "sentiment", "ner", "qa", "summarization", "translation")
PRIMARY = {"topic": ("accuracy", 1), "sentiment": ("accuracy", 1), "ner": ("f1", 1), "qa": ("f1", 100),
           "summarization": ("rougeL", 100), "translation": ("bleu", 100)}


def sh(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("LMFORGE_ROOT", None)
    env.pop("LMFORGE_PARENT_RUN_ID", None)
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git clone of the working tree (tracked files as they are now), smoke-sized."""
    return smoke_repo(tmp_path_factory.mktemp("repo"), sh)


def ran_stages(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")}


def mlflow_runs(repo: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("lmforge")
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_repro_runs_every_stage_and_tracks_it(repo):
    log = sh(["dvc", "repro"], repo)
    expected = {"prepare", "pretrain", "report",
                *(f"finetune@{t}" for t in TASKS),
                *(f"evaluate@{t}" for t in TASKS)}
    assert ran_stages(log) == expected

    metrics = json.loads((repo / "reports/metrics.json").read_text())
    p = metrics["pretrain"]
    assert 0 < p["val_loss"] < math.log(400) + 0.5 and p["val_ppl"] == pytest.approx(math.exp(p["val_loss"]), rel=1e-6)
    assert p["tokens_per_s"] > 0 and 0 < p["mfu"] < 1
    assert set(metrics["tasks"]) == set(TASKS)
    for task, m in metrics["tasks"].items():
        key, scale = PRIMARY[task]
        assert m["metric"] == key and m["scale"] == scale
        for who in ("pretrained", "scratch", "baseline"):
            assert all(0.0 <= v <= scale for v in m[who].values()), (task, who, m[who])
    # the majority baseline of a balanced task is near chance; the lead sentence shares words
    assert metrics["tasks"]["topic"]["baseline"]["accuracy"] < 0.75
    assert metrics["tasks"]["summarization"]["baseline"]["rouge1"] > 10
    assert set(metrics["tasks"]["translation"]["pretrained"]) == {"bleu", "chrf"}
    assert set(metrics["tasks"]["qa"]["baseline"]) == {"exact_match", "f1"}
    report = (repo / "reports/report.md").read_text()
    assert "perplexity" in report and "| topic | accuracy | 0–1 |" in report and "Contamination" in report
    assert "| translation | bleu | 0–100 |" in report and "| ner | f1 | 0–1 |" in report
    for task in TASKS:
        assert (repo / f"reports/plots/scores/{task}.csv").read_text().startswith("system,score\npretrained,")
        assert (repo / f"reports/plots/confusion/{task}-scratch.csv").stat().st_size > 20
    assert (repo / "reports/figures/tasks.png").stat().st_size > 1000
    stats = json.loads((repo / "artifacts/prepare/stats.json").read_text())
    assert stats["contamination"]["sentiment/test"]["docs"] == 64
    model_dir = repo / "artifacts/pretrain/model"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {f.name for f in model_dir.iterdir()}
    assert not list(repo.rglob("*.pt")) and not list(repo.rglob("*.pkl"))

    # dvc sees the metrics and plots
    shown = sh(["dvc", "metrics", "show", "--json"], repo)
    assert "val_ppl" in shown
    # MLflow: one finished parent for the repro, one child per stage, params = the resolved config
    runs = mlflow_runs(repo)
    parents = [r for r in runs if r.data.tags.get("lmforge.kind") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(
        ["prepare", "pretrain", "report",
         *(f"finetune/{t}/{i}" for t in TASKS for i in ("pretrained", "scratch")),
         *(f"evaluate/{t}" for t in TASKS)])
    assert len(runs) == len(children) + 1
    pre = next(r for r in children if r.info.run_name == "pretrain")
    assert pre.data.params["model.d_model"] == "32" and pre.data.params["seed"] == "1234"
    assert {"train/loss", "val/loss", "perf/tokens_per_s", "perf/mfu", "train/lr"} <= set(pre.data.metrics)
    assert all(r.info.status == "FINISHED" for r in children)
    # every fine-tuned model is registered, one registered model per task (a pyfunc where lmforge
    # has one for the kind, else the model directory), the pipeline's alias on the pretrained init
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    for task in TASKS:
        current = client.get_model_version_by_alias(f"lmforge-{task}", "current")
        assert current.tags["init"] == "pretrained", task
        assert client.get_model_version_by_alias(f"lmforge-{task}", "current-scratch").tags["init"] == "scratch"


def test_second_repro_does_nothing(repo):
    before = len(mlflow_runs(repo))
    log = sh(["dvc", "repro"], repo)
    assert ran_stages(log) == set()
    assert len(mlflow_runs(repo)) == before


def test_editing_one_task_config_reruns_only_its_stages(repo):
    cfg = repo / "conf/task/sentiment.yaml"
    cfg.write_text(cfg.read_text().replace("lr: 1.0e-3", "lr: 2.0e-3"))
    status = sh(["dvc", "status"], repo)
    log = sh(["dvc", "repro"], repo)
    assert ran_stages(log) == {"finetune@sentiment", "evaluate@sentiment", "report"}, status
    runs = mlflow_runs(repo)
    parents = [r for r in runs if r.data.tags.get("lmforge.kind") == "pipeline"]
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in parents)
