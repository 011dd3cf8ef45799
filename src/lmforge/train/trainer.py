"""The Lightning Trainer from config, and checkpoint-based resume."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import torch

from lmforge.errors import ConfigError

if TYPE_CHECKING:  # keep omegaconf out of the import path of benchmarks run on bare machines
    from omegaconf import DictConfig


def make_trainer(t: "DictConfig", *, callbacks: list, logger=None, **overrides) -> L.Trainer:
    kwargs = dict(
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=t.precision,
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=False,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        use_distributed_sampler=False,  # our samplers shard by rank themselves
        num_sanity_val_steps=0,
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint to resume from: `last.ckpt` if present."""
    last = Path(ckpt_dir) / "last.ckpt"
    return last if last.is_file() else None


def check_checkpoint(ckpt: Path, module: torch.nn.Module) -> int:
    """Fail before training if a checkpoint's tensors do not fit `module` (a different shape);
    return the checkpoint's global step."""
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = saved["state_dict"]
    own = module.state_dict()
    for k, v in state.items():
        if k not in own:
            raise ConfigError(f"{ckpt}: tensor {k!r} is not in the configured model: the checkpoint is from another model")
        if own[k].shape != v.shape:
            raise ConfigError(
                f"{ckpt}: tensor {k!r} has shape {tuple(v.shape)} but the configured model expects "
                f"{tuple(own[k].shape)}: the checkpoint is from a different model shape"
            )
    return int(saved["global_step"])
