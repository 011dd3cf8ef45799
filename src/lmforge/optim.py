"""AdamW with decay on matrices only, and a linear-warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn


def adamw(model: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.95)) -> torch.optim.AdamW:
    """Decay only ≥2-D weights (matmuls, embeddings); biases and LayerNorms are left alone."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


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
