"""A fine-tune stopped in the middle of an epoch (SIGINT: its checkpoint at that step) or killed
after an epoch's checkpoint (SIGKILL) resumes to the curves and weights of an uninterrupted run,
byte for byte, with every weight trained or with LoRA adapters: the resumed epoch leaves out the
batches it already trained on, and dropout draws where the uninterrupted run would
(`train.tasks.EpochPosition`)."""

import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import compose
from safetensors.torch import load_file
from servers import stage_process

from lmforge.stages import finetune, prepare, pretrain

# 40 training records in batches of 4: 10 steps an epoch, dropout 0.1 in the head
ARGS = [
    "experiment=smoke",
    "tracking=none",
    "progress=false",
    "task=topic",
    "inits=[pretrained]",
    "task.topic.batch_size=4",
    "task.topic.max_epochs=4",
    "task.topic.patience=4",
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
    """method -> the uninterrupted fine-tune's weights and curves (each made once)."""
    made: dict[str, dict] = {}

    def get(method: str) -> dict:
        if method not in made:
            root = tmp_path_factory.mktemp(f"uninterrupted-{method}")
            shutil.copytree(pretrained, root, dirs_exist_ok=True)
            summary = finetune.run(compose([*ARGS, f"task.topic.method={method}"], root=root))
            assert summary["topic"]["pretrained"]["steps"] == 4 * STEPS_PER_EPOCH  # (no early stop)
            made[method] = {"weights": load_file(str(root / MODEL)), "curves": curves(root)}
        return made[method]

    return get


def curves(root: Path) -> dict[str, str]:
    """Every step's training loss and every epoch's validation (the saved model is the best epoch's:
    the curves show the steps after it too)."""
    return {name: (root / MODEL.parent.parent / "curves" / name).read_text() for name in ("train.csv", "val.csv")}


@pytest.mark.parametrize(
    "signum, after, method",
    [
        (signal.SIGINT, "first_step", "full"),
        (signal.SIGKILL, "best.ckpt", "full"),
        (signal.SIGINT, "first_step", "lora"),
    ],
    ids=["SIGINT mid-epoch", "SIGKILL after an epoch", "LoRA, SIGINT mid-epoch"],
)
def test_a_stopped_fine_tune_resumes_to_the_same_weights(pretrained, uninterrupted, tmp_path, signum, after, method):
    args, reference = [*ARGS, f"task.topic.method={method}"], uninterrupted(method)
    root = tmp_path / "r"
    shutil.copytree(pretrained, root)
    ckpts = root / ".lmforge/checkpoints/finetune/topic/pretrained"
    log = tmp_path / "stopped.log"
    proc = stage_process("finetune", args, root, log)
    # SIGINT once training has begun (its threads are pinned just before; the first epoch then runs
    # 10 steps); SIGKILL once the first epoch's checkpoint is complete
    marker = "threads" if after == "first_step" else "best.ckpt"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not list(ckpts.glob(f"*/{marker}")):
        time.sleep(0.01)
    time.sleep(0.3 if after == "first_step" else 0)
    assert proc.poll() is None, f"the fine-tune ended before it could be stopped:\n{log.read_text()[-3000:]}"
    proc.send_signal(signum)
    status = proc.wait(timeout=60)
    text = log.read_text()
    assert status == (130 if signum == signal.SIGINT else -signal.SIGKILL), text[-3000:]
    assert not (root / MODEL).exists()
    if signum == signal.SIGINT:
        stopped_at = int(re.search(r"finetune: stopped by SIGINT at step (\d+) ", text)[1])
        assert 0 < stopped_at < 4 * STEPS_PER_EPOCH

    summary = finetune.run(compose(args, root=root))["topic"]["pretrained"]
    assert summary["steps"] == 4 * STEPS_PER_EPOCH
    assert curves(root) == reference["curves"]
    assert len(reference["curves"]["train.csv"].splitlines()) > 4 * STEPS_PER_EPOCH // 2  # (logged often)
    resumed = load_file(str(root / MODEL))
    assert resumed.keys() == reference["weights"].keys()
    for k, v in reference["weights"].items():
        assert torch.equal(resumed[k], v), k
