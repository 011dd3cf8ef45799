"""A killed pretraining run resumes from its last checkpoint and ends where an uninterrupted
run ends; a checkpoint of another model shape is refused before training."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, compose
from lmforge.errors import ConfigError
from lmforge.stages import prepare, pretrain

ARGS = ["experiment=smoke", "data=text_files", "tracking=none", "trainer.max_steps=150",
        "trainer.checkpoint_every_n_steps=10", "trainer.val_check_interval=50", "trainer.precision=32-true",
        "model.d_model=64", "model.d_ff=256", "trainer.block_size=64", "trainer.batch_size=16"]


def corpus(path):
    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    path.write_text("\n\n".join(" ".join(rng.choices(words, k=60)) for _ in range(400)))
    return path


def setup_root(root, text):
    root.mkdir()
    args = ARGS + [f"data.text_files.paths=[{text}]"]
    prepare.run(compose(args, root=root))
    return args


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    text = corpus(tmp_path / "corpus.txt")
    a, b = tmp_path / "a", tmp_path / "b"
    args = setup_root(a, text)
    setup_root(b, text)

    pretrain.run(compose(args, root=a))  # uninterrupted
    reference = load_file(str(a / "artifacts/pretrain/model/model.safetensors"))

    # kill -9 a run once it has written a checkpoint, then run again
    cmd = [sys.executable, str(ROOT / "pipelines/pretrain.py"), *args]
    env = {**os.environ, "LMFORGE_ROOT": str(b)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = b / ".lmforge/checkpoints/pretrain"
    deadline = time.time() + 120
    while time.time() < deadline and not list(ckpts.glob("*/step=*.ckpt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (b / "artifacts/pretrain").exists()  # nothing half-written for DVC to cache

    summary = pretrain.run(compose(args, root=b))
    assert 0 < summary["resumed_from_step"] < 150
    assert summary["steps"] == 150
    resumed = load_file(str(b / "artifacts/pretrain/model/model.safetensors"))
    for k, v in reference.items():
        torch.testing.assert_close(resumed[k], v, rtol=0, atol=1e-5, msg=k)


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    text = corpus(tmp_path / "corpus.txt")
    root = tmp_path / "r"
    args = setup_root(root, text)
    args = [a for a in args if not a.startswith("trainer.max_steps")] + ["trainer.max_steps=10",
                                                                           "trainer.keep_checkpoints=true"]
    pretrain.run(compose(args, root=root))
    ckpt_dir = next((root / ".lmforge/checkpoints/pretrain").iterdir())
    # the same run, now configured wider: plant the old checkpoint where it would resume from
    wide = args + ["model.d_model=96", "model.n_heads=4"]
    from lmforge.stages.common import Paths

    wide_cfg = compose(wide, root=root)
    p = Paths(wide_cfg)
    target = pretrain.checkpoint_dir(wide_cfg, p, p.tokens, p.tokenizer)
    target.mkdir(parents=True)
    (target / "last.ckpt").write_bytes((ckpt_dir / "last.ckpt").read_bytes())
    with pytest.raises(ConfigError, match=r"last\.ckpt.*different model shape"):
        pretrain.run(compose(wide, root=root))


def test_finished_run_leaves_no_checkpoint_and_changed_inputs_never_resume(tmp_path):
    """Checkpoints exist to resume a killed run: a finished stage deletes them, and a checkpoint
    left behind (keep_checkpoints) is only resumed on the same inputs."""
    from lmforge.config import fingerprint
    from lmforge.fileio import content_digest

    text = corpus(tmp_path / "corpus.txt")
    root = tmp_path / "r"
    args = [a for a in setup_root(root, text) if not a.startswith("trainer.max_steps")] + ["trainer.max_steps=10"]
    pretrain.run(compose(args, root=root))
    assert not any((root / ".lmforge/checkpoints/pretrain").rglob("*.ckpt"))

    kept = pretrain.run(compose(args + ["trainer.keep_checkpoints=true"], root=root))
    assert kept["resumed_from_step"] == 0 and list((root / ".lmforge/checkpoints/pretrain").rglob("last.ckpt"))
    tokens = root / "artifacts/prepare/tokens"
    before = content_digest(tokens)
    val = (tokens / "val.bin").read_bytes()
    (tokens / "val.bin").write_bytes(val[2:4] + val[2:])  # the inputs change: one token, same size
    assert content_digest(tokens) != before
    again = pretrain.run(compose(args + ["trainer.keep_checkpoints=true"], root=root))
    assert again["resumed_from_step"] == 0  # a fresh run, not the finished checkpoint
    assert fingerprint({"a": 1}, inputs="x") != fingerprint({"a": 1}, inputs="y")
