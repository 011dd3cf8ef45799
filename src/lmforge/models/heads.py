"""What heads over a backbone share: pooling, the output layer's initialisation, the LM heads of
the pretraining objectives, and the label of positions no loss is taken at."""

from __future__ import annotations

import torch
from torch import nn

IGNORE_INDEX = -100  # the label of positions a loss skips (torch's cross_entropy default)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden [B, T, D] over the positions where mask [B, T] is 1."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, D] at each row's last position where mask [B, T] is 1 (right padding)."""
    last = mask.long().cumsum(1).argmax(1)  # index of the last 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def linear_head(d_model: int, n_out: int) -> nn.Linear:
    """A task head's output layer: small normal weights, zero bias."""
    head = nn.Linear(d_model, n_out)
    nn.init.normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)
    return head


class CausalLM(nn.Module):
    """Backbone + its tied LM head: ids [B, T] → next-token logits [B, T, vocab]."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.backbone.lm_logits(self.backbone(ids))


class MaskedLM(nn.Module):
    """Bidirectional backbone + its tied LM head: (masked) ids [B, T] → logits [B, T, vocab]."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone.lm_logits(self.backbone(ids, attention_mask))
