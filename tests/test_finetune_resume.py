"""A fine-tune stopped by a signal (its checkpoint at that step's end: mid-epoch, or after the
validation of an epoch's last step) or killed after an epoch's checkpoint (SIGKILL) resumes to the
steps, curves and weights of an uninterrupted run, byte for byte, with every weight trained or with
LoRA adapters, and stops where early stopping stopped it: the resumed epoch leaves out the batches
it already trained on, and dropout draws where the uninterrupted run would
(`train.tasks.EpochPosition`)."""

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import compose
from safetensors.torch import load_file
from servers import signal_at_step, stage_process

from lmforge.stages import finetune, prepare, pretrain

# 40 training records in batches of 4: 10 steps an epoch, dropout 0.1 in the head
ARGS = [
    "experiment=smoke",
    "tracking=none",
    "progress=false",
    "task=topic",
    "inits=[pretrained]",
    "task.topic.data.max_train=40",
    "task.topic.batch_size=4",
    "task.topic.max_epochs=4",
]
STEPS_PER_EPOCH = 10
MODEL = Path("artifacts/finetune/topic/pretrained/model/model.safetensors")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pretrained")
    prepare.run(compose(ARGS, root=root))
    pretrain.run(compose(ARGS, root=root))
    return root


@pytest.fixture(scope="module")
def uninterrupted(pretrained, tmp_path_factory):
    """args -> the uninterrupted fine-tune's weights, curves, steps and epochs (each made once)."""
    made: dict[tuple, dict] = {}

    def get(args: list[str]) -> dict:
        if tuple(args) not in made:
            root = tmp_path_factory.mktemp("uninterrupted")
            shutil.copytree(pretrained, root, dirs_exist_ok=True)
            summary = finetune.run(compose(args, root=root))["topic"]["pretrained"]
            made[tuple(args)] = {
                "weights": load_file(str(root / MODEL)),
                "curves": curves(root),
                "steps": summary["steps"],
                "epochs": summary["epochs"],
            }
        return made[tuple(args)]

    return get


def curves(root: Path) -> dict[str, str]:
    """Every step's training loss and every epoch's validation (the saved model is the best epoch's:
    the curves show the steps after it too)."""
    return {name: (root / MODEL.parent.parent / "curves" / name).read_text() for name in ("train.csv", "val.csv")}


# the smoke model's validation accuracy stays flat on this task: with patience 1, early stopping
# ends the fine-tune after its second epoch (the test checks it does)
EARLY_STOP = 2 * STEPS_PER_EPOCH


@pytest.mark.parametrize(
    "signum, at, settings",
    [
        (signal.SIGINT, 5, []),
        (signal.SIGTERM, 2 * STEPS_PER_EPOCH, []),
        (signal.SIGKILL, "best.ckpt", []),
        (signal.SIGINT, 13, ["task.topic.method=lora"]),
        (signal.SIGTERM, EARLY_STOP, ["task.topic.patience=1"]),
        (signal.SIGTERM, ("validation", 4 * STEPS_PER_EPOCH), []),
    ],
    ids=[
        "SIGINT mid-epoch",
        "SIGTERM at an epoch's last step",
        "SIGKILL after an epoch",
        "LoRA, SIGINT mid-epoch",
        "SIGTERM in the epoch early stopping ends",
        "SIGTERM during the last validation",
    ],
)
def test_a_stopped_fine_tune_resumes_to_the_same_weights(pretrained, uninterrupted, tmp_path, signum, at, settings):
    args = [*ARGS, "task.topic.patience=4", *settings]  # (the last of a key wins)
    reference = uninterrupted(args)
    assert reference["steps"] == (EARLY_STOP if "task.topic.patience=1" in settings else 4 * STEPS_PER_EPOCH)
    root = tmp_path / "r"
    shutil.copytree(pretrained, root)
    log = tmp_path / "stopped.log"
    if signum == signal.SIGKILL:  # once the first epoch's checkpoint is complete
        proc = stage_process("finetune", args, root, log)
        ckpts = root / ".lmforge/checkpoints/finetune/topic/pretrained"
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and not list(ckpts.glob(f"*/{at}")):
            time.sleep(0.01)
        assert proc.poll() is None, f"the fine-tune ended before it could be stopped:\n{log.read_text()[-3000:]}"
        proc.send_signal(signum)
    else:
        during, at = at if isinstance(at, tuple) else ("step", at)
        proc = stage_process("finetune", args, root, log, signal_at_step(at, signum, during))
    status = proc.wait(timeout=60)
    text = log.read_text()
    assert status == (-signum if signum == signal.SIGKILL else 128 + signum), text[-3000:]
    assert not (root / MODEL).exists()
    if signum != signal.SIGKILL:  # at the step's end (after the epoch's validation, when it has one)
        assert f"finetune: stopped by {signal.Signals(signum).name} at step {at} " in text, text[-3000:]

    summary = finetune.run(compose(args, root=root))["topic"]["pretrained"]
    assert (summary["steps"], summary["epochs"]) == (reference["steps"], reference["epochs"])
    if signum != signal.SIGKILL:  # what was trained and validated is not done again
        runtime = json.loads((root / "reports/runtime/finetune/topic/pretrained.json").read_text())
        assert runtime["resumed_from_step"] == at
    assert curves(root) == reference["curves"]
    assert len(reference["curves"]["train.csv"].splitlines()) > reference["steps"] // 2  # (logged often)
    resumed = load_file(str(root / MODEL))
    assert resumed.keys() == reference["weights"].keys()
    for k, v in reference["weights"].items():
        assert torch.equal(resumed[k], v), k
