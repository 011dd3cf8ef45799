"""Backbones by name. A backbone maps token ids [B, T] (+ attention mask) to hidden states
[B, T, cfg.d_model], has `lm_logits(hidden)`, `num_params()` and `flops_per_token(T)`.
A new backbone is one module here plus an entry in ARCHS and a conf/model/ file."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from torch import nn

from lmforge.errors import ConfigError
from lmforge.models.hf import HFBackbone, HFConfig
from lmforge.models.lstm import LSTM, LSTMConfig
from lmforge.models.transformer import Transformer, TransformerConfig

ARCHS: dict[str, tuple[type[nn.Module], type]] = {
    "transformer": (Transformer, TransformerConfig),
    "lstm": (LSTM, LSTMConfig),
    "hf": (HFBackbone, HFConfig),
}


def _arch(name: str) -> tuple[type[nn.Module], type]:
    if name not in ARCHS:
        raise ConfigError(f"model.arch={name!r} is not one of {sorted(ARCHS)}")
    return ARCHS[name]


def backbone_spec(model_cfg: dict[str, Any], **derived: Any) -> dict[str, Any]:
    """The saved description of a backbone: its arch plus the fields its config class takes,
    from the `model` config group and from `derived` values (vocab_size, pad_id, causal…)."""
    arch = model_cfg.get("arch", "transformer")
    _, cfg_cls = _arch(arch)
    names = {f.name for f in fields(cfg_cls)}
    merged = {**model_cfg, **derived}
    return {"arch": arch, **{k: v for k, v in merged.items() if k in names}}


def build_backbone(spec: dict[str, Any]) -> nn.Module:
    """A freshly initialised backbone from its spec (see `backbone_spec`)."""
    spec = dict(spec)
    cls, cfg_cls = _arch(spec.pop("arch", "transformer"))
    return cls(cfg_cls(**spec))
