"""Two processes through Lightning's DDP (CPU, gloo) at smoke size: pretrain and a fine-tune each
leave one MLflow run, one output and one registered model version, and end at the validation loss
of one process with the same global batch and seed (fp32; within 1e-4 — the gradient all-reduce
sums in another order); a LoRA fine-tune too. Stopped by SIGTERM, a DDP pretrain stops every rank
at one step with one checkpoint, and its re-run ends with the uninterrupted DDP run's weights."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, compose
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file
from servers import env, stage_process

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
    "task.topic.data.max_train=40",
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


def same_validation_curves(roots) -> int:
    """Assert the topic fine-tunes of both roots validated at the same steps with the same loss (to
    1e-4); returns how many validations each made."""
    one, two = ((r / "artifacts/finetune/topic/pretrained/curves/val.csv").read_text().splitlines()[1:] for r in roots)
    for a, b in zip(one, two, strict=True):
        (step_a, loss_a, _), (step_b, loss_b, _) = a.split(","), b.split(",")
        assert step_a == step_b and float(loss_a) == pytest.approx(float(loss_b), abs=1e-4)
    return len(one)


def test_ddp_ends_where_one_process_does(runs):
    single, ddp = runs
    one, two = summary(single, "artifacts/pretrain/summary.json"), summary(ddp, "artifacts/pretrain/summary.json")
    assert two["steps"] == one["steps"] == 20
    assert two["val_loss"] == pytest.approx(one["val_loss"], abs=1e-4)
    path = "artifacts/finetune/topic/pretrained/summary.json"
    assert summary(ddp, path)["best_val_score"] == pytest.approx(summary(single, path)["best_val_score"], abs=1e-6)
    assert same_validation_curves(runs) == 2  # a validation per epoch


@pytest.fixture(scope="module")
def lora_runs(runs, tmp_path_factory):
    """A LoRA fine-tune of each run's pretrained model: in one process, and under DDP."""
    from lmforge.stages import finetune

    lora = ["task.topic.method=lora", "task.topic.lr=0.005", "tracking=none"]
    roots = tmp_path_factory.mktemp("single-lora"), tmp_path_factory.mktemp("ddp-lora")
    for src, root in zip(runs, roots):
        for stage_dir in ("prepare", "pretrain"):
            shutil.copytree(src / "artifacts" / stage_dir, root / "artifacts" / stage_dir)
    finetune.run(compose([*COMMON, *lora], root=roots[0]))
    stage("finetune", roots[1], *DDP, *lora)
    return roots


def test_lora_under_ddp_ends_where_one_process_does(lora_runs):
    """Only the adapters and the head train, on both ranks alike: the DDP run's curve, best score and
    merged weights are the single process's."""
    single, ddp = lora_runs
    path = "artifacts/finetune/topic/pretrained/summary.json"
    one, two = summary(single, path), summary(ddp, path)
    assert one["method"] == two["method"] == "lora"
    assert 0 < two["trainable_params"] == one["trainable_params"] < one["total_params"] / 5
    assert two["best_val_score"] == pytest.approx(one["best_val_score"], abs=1e-6)
    same_validation_curves(lora_runs)
    weights = [load_file(str(r / "artifacts/finetune/topic/pretrained/model/model.safetensors")) for r in lora_runs]
    assert weights[0].keys() == weights[1].keys() and not any("lora" in k for k in weights[0])
    for k, v in weights[0].items():
        assert torch.allclose(weights[1][k], v, atol=1e-5), k
    pretrained = load_file(str(single / "artifacts/pretrain/model/model.safetensors"))
    moved = {k for k in pretrained.keys() & weights[0].keys() if not torch.equal(pretrained[k], weights[0][k])}
    # the adapters, merged into the attention projections they adapt; every other backbone weight kept
    assert moved and all(k.endswith(("c_attn.weight", "c_proj.weight")) for k in moved), sorted(moved)


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


def test_a_stopped_ddp_run_resumes_to_the_same_weights(runs, tmp_path):
    """SIGTERM to the process a user started (rank 0; Lightning started rank 1): the ranks agree to
    stop at the end of one step, save one checkpoint there and exit 143 without hanging."""
    _, ddp = runs
    root = tmp_path / "r"
    shutil.copytree(ddp / "artifacts/prepare", root / "artifacts/prepare")
    args = [*DDP, "trainer.checkpoint_every_n_steps=5", "tracking=none"]
    log = tmp_path / "stopped.log"
    proc = stage_process("pretrain", [*COMMON, *args], root, log)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(root.glob(".lmforge/checkpoints/*/*/last.ckpt")):
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be stopped:\n{log.read_text()[-3000:]}"
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=120)
    finally:
        proc.kill()
    text = log.read_text()
    assert status == 128 + signal.SIGTERM and "Traceback" not in text, text[-3000:]
    steps = set(re.findall(r"pretrain: stopped by SIGTERM at step (\d+) ", text))
    assert len(steps) == 1, text[-3000:]  # every rank at the same step
    assert not (root / "artifacts/pretrain").exists()

    stage("pretrain", root, *args)
    assert summary(root, "reports/runtime/pretrain.json")["resumed_from_step"] == int(steps.pop())
    resumed, reference = (load_file(str(r / "artifacts/pretrain/model/model.safetensors")) for r in (root, ddp))
    assert resumed.keys() == reference.keys()
    for k, v in reference.items():
        assert torch.equal(resumed[k], v), k
