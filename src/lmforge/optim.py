"""AdamW with decay on matrices only, run as one fused kernel where it can be, and a
linear-warmup + cosine schedule.

torch's default AdamW on CPU steps one tensor at a time, six passes over memory per tensor: on
MiniLM (22.7M parameters, half of them the embedding matrix) that was a third of a fine-tuning
step. The fused kernel (CPU and GPU) makes one pass; `benchmarks/optimizer_step.py` measures it.
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch import nn


def adamw(
    model: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.95), fused: bool = False
) -> torch.optim.AdamW:
    """Decay only ≥2-D weights (matmuls, embeddings); biases and LayerNorms are left alone.
    `fused`: torch's single-kernel step (see `fused_ok` for when a Trainer allows it)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)


def fused_ok(precision: str, strategy) -> bool:
    """Whether AdamW may be fused under a Trainer's precision and strategy. Not under fp16 autocast ("16-mixed"): its
    GradScaler leaves the unscaling to a fused step, so gradients would be clipped scaled; not
    under FSDP, whose gradient norm spans every rank's shard (Lightning clips it there)."""
    return precision != "16-mixed" and not isinstance(strategy, FSDPStrategy)


class FusedClipping:
    """A LightningModule mix-in: clips the gradients of a fused optimizer itself. Lightning refuses
    to clip under mixed precision when the optimizer is fused (for fp16's sake, see `fused_ok`);
    under bf16 and fp32 there is no scaler and the gradients are the true ones."""

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if not optimizer.defaults.get("fused"):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        if not gradient_clip_val:
            return None
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
        return None


def warmup_cosine(warmup: int, total: int, min_ratio: float):
    """LambdaLR factor: linear 0→1 over `warmup` steps, cosine 1→min_ratio until `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def scheduled(optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float) -> dict:
    """Lightning's optimizer config with a per-step schedule."""
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total, min_ratio))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
