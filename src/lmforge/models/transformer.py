"""The native Transformer backbone: GPT-2-shaped, readable in one sitting.

Pre-LayerNorm blocks, learned absolute positions, fused QKV projection, a GELU MLP (the exact one
by default, or GPT-2's tanh approximation: `activation`), `scaled_dot_product_attention` (causal,
or bidirectional with a padding mask), a final LayerNorm, and an LM head tied to the token
embedding. The parameter layout mirrors GPT-2's so that the weights map one-to-one onto
`transformers.GPT2LMHeadModel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError
from lmforge.models import Backbone, BackboneConfig, Capabilities, register
from lmforge.models.lm_loss import linear_cross_entropy
from lmforge.schema import setting

# the MLP's activation → `F.gelu`'s `approximate`
GELU_APPROXIMATE = {"gelu_tanh": "tanh", "gelu": "none"}


@dataclass
class TransformerConfig(BackboneConfig):
    d_model: int = setting(128, gt=0)
    n_layers: int = setting(4, gt=0)
    n_heads: int = setting(4, gt=0)
    d_ff: int = setting(512, gt=0)
    layer_norm_eps: float = setting(1e-5, gt=0)
    activation: str = setting("gelu", choices=tuple(GELU_APPROXIMATE))

    # the tanh GELU was the only one, then the default, until the exact one measured 0.92x the step
    SAVED_WITHOUT = {"activation": "gelu_tanh"}

    @property
    def padded_vocab_size(self) -> int:
        """Embedding rows, rounded up to a multiple of 64 (faster matmuls)."""
        return ((self.vocab_size + 63) // 64) * 64

    def check(self, key: str) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"{key}.d_model={self.d_model} is not divisible by {key}.n_heads={self.n_heads}")


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.causal = cfg.causal
        self.dropout = cfg.dropout
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ):
        """With `use_cache` (incremental decoding) it returns (output, (keys, values)): `past` holds
        the earlier positions' keys/values [B, H, T_past, d_head] and `key_padding_mask` then covers
        past + new positions (left padding is masked; causality is kept)."""
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        if use_cache:
            return self._cached(q, k, v, key_padding_mask, past)
        mask = None
        if not self.causal and key_padding_mask is not None:
            mask = key_padding_mask[:, None, None, :]  # True = attend
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=self.causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.resid_drop(self.c_proj(y.transpose(1, 2).reshape(b, t, d)))

    def _cached(self, q, k, v, key_padding_mask, past):
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        b, _, t, hd = q.shape
        t_all = k.shape[2]
        mask = None
        if self.causal:  # query i sits at absolute position t_all - t + i
            rows = torch.arange(t_all - t, t_all, device=q.device)[:, None]
            mask = rows >= torch.arange(t_all, device=q.device)[None, :]
        if key_padding_mask is not None:
            keys = key_padding_mask.bool()[:, None, None, :]
            mask = keys if mask is None else mask[None, None] & keys
            # a padding query that may see nothing attends to itself (its output is never used)
            mask = mask | (
                torch.arange(t_all - t, t_all, device=q.device)[:, None]
                == torch.arange(t_all, device=q.device)[None, :]
            )
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.resid_drop(self.c_proj(y.transpose(1, 2).reshape(b, t, hd * self.n_heads))), (k, v)


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.c_proj = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.approximate = GELU_APPROXIMATE[cfg.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ):
        if use_cache:
            a, present = self.attn(self.ln_1(x), key_padding_mask, past, use_cache=True)
            x = x + a
            return x + self.mlp(self.ln_2(x)), present
        x = x + self.attn(self.ln_1(x), key_padding_mask)
        return x + self.mlp(self.ln_2(x))


@register("transformer")
class Transformer(Backbone):
    """Token ids [B, T] → hidden states [B, T, d_model]; `lm_logits` applies the tied head.
    Causal or bidirectional (`cfg.causal`, set by the pretraining objective); GPT-2's exact layout
    when causal, so it exports to `GPT2LMHeadModel`."""

    config_class = TransformerConfig

    @classmethod
    def capabilities(cls, config: TransformerConfig) -> Capabilities:
        return Capabilities(
            causal=True,
            bidirectional=True,
            generation="kv_cache" if config.causal else None,
            exports_as="gpt2" if config.causal else None,
        )

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        cfg.check("model")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by the depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)  # std 1 (the default) explodes when tied
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: list | None = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,
    ):
        """Hidden states [B, T, d_model]. With `use_cache=True` (incremental decoding) it returns
        (hidden, past_key_values): a list of per-layer (keys, values) to pass back with the next
        tokens; `attention_mask` [B, T_past + T] then masks (left) padding among all positions,
        and `position_ids` [B, T] places the new tokens (default: right after the past ones)."""
        if use_cache or past_key_values is not None:
            return self._forward_cached(ids, attention_mask, past_key_values, position_ids)
        t = ids.shape[1]
        if t > self.cfg.max_len:
            raise ValueError(f"sequence length {t} exceeds model max_len {self.cfg.max_len}")
        pos = torch.arange(t, device=ids.device)
        x = self.drop(self.wte(ids) + self.wpe(pos))
        mask = attention_mask.bool() if attention_mask is not None else None
        for block in self.h:
            x = block(x, mask)
        return self.ln_f(x)

    def _forward_cached(self, ids, attention_mask, past_key_values, position_ids):
        past_len = past_key_values[0][0].shape[2] if past_key_values else 0
        t = ids.shape[1]
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + t, device=ids.device)[None].expand(ids.shape[0], t)
        if int(position_ids.max()) >= self.cfg.max_len:
            raise ValueError(f"position {int(position_ids.max())} exceeds model max_len {self.cfg.max_len}")
        x = self.drop(self.wte(ids) + self.wpe(position_ids))
        presents = []
        for i, block in enumerate(self.h):
            x, present = block(x, attention_mask, past_key_values[i] if past_key_values else None, use_cache=True)
            presents.append(present)
        return self.ln_f(x), presents

    def input_embeddings(self) -> nn.Embedding:
        return self.wte

    def lora_targets(self) -> tuple[str, ...]:
        return ("attn.c_attn", "attn.c_proj")  # the attention's projections (q, k, v together; out)

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied LM head, cut back to the real vocabulary."""
        return F.linear(hidden, self.wte.weight)[..., : self.cfg.vocab_size]

    def lm_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(hidden, self.wte.weight[: self.cfg.vocab_size], targets)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6N (N counts the tied head once) + attention's 12·L·d·T."""
        return 6 * self.num_params() + 12 * self.cfg.n_layers * self.cfg.d_model * seq_len
