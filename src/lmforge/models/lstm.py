"""The LSTM language model: token embedding → multi-layer LSTM → LM head tied to the embedding.

The recurrent LM of the seed article (Zaremba et al. 2014; tied weights as in Press & Wolf
2017). It reads left to right only, so it is a causal backbone: with right padding its hidden
states at real positions never depend on the padding, and the mean-pooling classifier head works
on it as on the causal Transformer. The LSTM's hidden size is `d_model` so the head can be tied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError
from lmforge.models import Backbone, BackboneConfig, Capabilities, register
from lmforge.models.lm_loss import linear_cross_entropy
from lmforge.schema import setting


@dataclass
class LSTMConfig(BackboneConfig):
    # max_len: no positional table; it only bounds the sequences (like the Transformer's)
    d_model: int = setting(256, gt=0)
    n_layers: int = setting(2, gt=0)

    @property
    def padded_vocab_size(self) -> int:
        return ((self.vocab_size + 63) // 64) * 64

    def check(self, key: str) -> None:
        if not self.causal:
            raise ConfigError("an LSTM reads left to right: it cannot be trained bidirectionally (objective=mlm)")


@register("lstm")
class LSTM(Backbone):
    """Token ids [B, T] → hidden states [B, T, d_model]; `lm_logits` applies the tied head."""

    config_class = LSTMConfig

    @classmethod
    def capabilities(cls, config: LSTMConfig) -> Capabilities:
        return Capabilities(causal=True, bidirectional=False, generation="recompute")

    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        cfg.check("model")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = nn.LSTM(
            cfg.d_model,
            cfg.d_model,
            num_layers=cfg.n_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0,
        )
        # std 1 (the default) explodes when tied; the Transformer's 0.02 starves the LSTM's gates
        # (measured: 5x slower start). d^-1/2 keeps the tied logits h·E (|h| ≤ 1) at std ≤ 1.
        nn.init.normal_(self.wte.weight, std=cfg.d_model**-0.5)
        for name, p in self.rnn.named_parameters():
            if name.startswith("bias"):
                nn.init.zeros_(p)
                n = p.numel() // 4
                p.data[n : 2 * n] = 1.0  # forget-gate bias 1: remember by default

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # attention_mask is accepted for the common interface; left-to-right reading never lets
        # (right) padding reach a real position, so it needs no masking.
        if ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds model max_len {self.cfg.max_len}")
        out, _ = self.rnn(self.drop(self.wte(ids)))
        return self.drop(out)

    def input_embeddings(self) -> nn.Embedding:
        return self.wte

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.wte.weight)[..., : self.cfg.vocab_size]

    def lm_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(hidden, self.wte.weight[: self.cfg.vocab_size], targets)

    def num_params(self, non_embedding: bool = True) -> int:
        # the embedding is also the LM head, so it is counted (as the Transformer counts wte)
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6 per weight (forward + backward), recurrence included."""
        return 6 * self.num_params()
