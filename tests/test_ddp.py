"""Two processes through Lightning's DDP (CPU, gloo) at smoke size: pretrain and a fine-tune each
leave one MLflow run, one output and one registered model version, and end at the validation loss
of one process with the same global batch and seed (fp32; within 1e-4 — the gradient all-reduce
sums in another order)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, compose
from mlflow.tracking import MlflowClient
from servers import env

pytestmark = pytest.mark.slow

# a global batch both runs share: pretraining 8 windows (2 × 4), fine-tuning 2 batches of 20 of the
# 40 topic records (2 × 10); no dropout, so the two runs differ only in how the work is split
COMMON = [
    "experiment=smoke",
    "task=topic",
    "inits=[pretrained]",
    "trainer.precision=32-true",
    "progress=false",
    "trainer.accelerator=cpu",
    "task.topic.batch_size=20",
    "task.topic.dropout=0.0",
    "task.topic.max_epochs=2",
]
DDP = ["trainer.strategy=ddp", "trainer.devices=2"]


def stage(name: str, root, *extra: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / f"{name}.py"), *COMMON, f"paths.root={root}", *extra],
        cwd=root,
        env=env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from lmforge.stages import finetune, prepare, pretrain

    single, ddp = tmp_path_factory.mktemp("single"), tmp_path_factory.mktemp("ddp")
    for root in (single, ddp):
        prepare.run(compose([*COMMON, "tracking=none"], root=root))
    pretrain.run(compose([*COMMON, "tracking=none"], root=single))
    finetune.run(compose([*COMMON, "tracking=none"], root=single))
    stage("pretrain", ddp, *DDP)
    stage("finetune", ddp, *DDP)
    return single, ddp


def summary(root, path: str) -> dict:
    return json.loads((root / path).read_text())


def test_ddp_ends_where_one_process_does(runs):
    single, ddp = runs
    one, two = summary(single, "artifacts/pretrain/summary.json"), summary(ddp, "artifacts/pretrain/summary.json")
    assert two["steps"] == one["steps"] == 20
    assert two["val_loss"] == pytest.approx(one["val_loss"], abs=1e-4)
    path = "artifacts/finetune/topic/pretrained/summary.json"
    assert summary(ddp, path)["best_val_score"] == pytest.approx(summary(single, path)["best_val_score"], abs=1e-6)
    one_curve, two_curve = (
        (r / "artifacts/finetune/topic/pretrained/curves/val.csv").read_text().splitlines()[1:] for r in runs
    )
    assert len(one_curve) == len(two_curve) == 2  # a validation per epoch
    for a, b in zip(one_curve, two_curve):
        (step_a, loss_a, _), (step_b, loss_b, _) = a.split(","), b.split(",")
        assert step_a == step_b and float(loss_a) == pytest.approx(float(loss_b), abs=1e-4)


def test_one_run_one_output_one_model_version(runs):
    _, ddp = runs
    client = MlflowClient(tracking_uri=f"sqlite:///{ddp}/mlflow.db")
    exp = client.get_experiment_by_name("lmforge")
    found = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in found) == ["finetune/topic/pretrained", "pretrain"]
    assert all(r.info.status == "FINISHED" for r in found)
    assert [int(v.version) for v in client.search_model_versions("name='lmforge-lm'")] == [1]
    assert [int(v.version) for v in client.search_model_versions("name='lmforge-topic'")] == [1]
    assert not list(ddp.joinpath("artifacts").rglob(".*.tmp-*"))  # no second writer's leftovers
