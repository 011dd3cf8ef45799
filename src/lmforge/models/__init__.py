"""Backbones: token ids [B, T] (+ attention mask) → hidden states [B, T, d_model], with a tied LM head.

A backbone is one module plus one `conf/model/*.yaml`. The module defines its settings (a subclass
of `BackboneConfig`: the fields of the model group, plus those lmforge derives: vocabulary, padding
id, reading direction) and a `Backbone` subclass registered under its `arch` name:

    @register("lstm")
    class LSTM(Backbone):
        config_class = LSTMConfig

        @classmethod
        def capabilities(cls, config): return Capabilities(causal=True, bidirectional=False, ...)

Nothing outside the module branches on its name: checks ask `capabilities` (can it be pretrained
left to right? both ways? how does it generate? what standard class does it export as?).
`model.arch` is a registered name — found by importing `lmforge.models.<arch>` the first time — or
a module path (`my_package.my_backbone`) for a backbone that lives outside lmforge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError, DataError
from lmforge.plugins import Registry
from lmforge.saved_model import MANIFEST, REMAKE, SavedModel
from lmforge.schema import build, check_values, setting


@dataclass(frozen=True)
class Capabilities:
    causal: bool  # can read left to right: next-token pretraining (objective=clm) and generation
    bidirectional: bool  # can read both ways: masked-LM pretraining (objective=mlm)
    # how a causal backbone decodes: "kv_cache" (incremental, lmforge's beam search), "transformers"
    # (its own `generate`), "recompute" (the whole sequence again per token); None: it cannot
    generation: Optional[str] = None
    exports_as: Optional[str] = None  # "gpt2" (GPT-2's exact layout), "transformers" (its own class), None
    brings_tokenizer: bool = False  # a checkpoint with its own tokenizer (the corpus is re-tokenized)


@dataclass
class BackboneConfig:
    """What every backbone has: the fields of its `conf/model/*.yaml`, plus derived ones."""

    max_len: int = setting(256, gt=0)
    dropout: float = setting(0.0, ge=0, lt=1)
    vocab_size: int = setting(0, ge=0, derived=True)
    pad_id: int = setting(0, ge=0, derived=True)
    causal: bool = setting(True, derived=True)  # how it was (or will be) trained: left to right or not

    # settings added after models were saved without them, with what those models were trained with
    # (not the default, where that has changed since): a manifest that lacks the key loads so
    SAVED_WITHOUT: ClassVar[dict[str, Any]] = {}


class Backbone(nn.Module):
    """The interface heads, objectives and stages use. Subclasses set `config_class` and implement
    `forward`, `lm_logits`, `num_params`, `flops_per_token` and `capabilities`."""

    arch: ClassVar[str] = ""
    config_class: ClassVar[type] = BackboneConfig

    cfg: Any

    @classmethod
    def capabilities(cls, config: Any) -> Capabilities:
        raise NotImplementedError

    @classmethod
    def create(cls, config: Any) -> "Backbone":
        """The backbone to pretrain: freshly initialised from `config` (a checkpoint backbone loads
        its weights here)."""
        return cls(config)

    @classmethod
    def tokenizer_dir(cls, config: Any) -> Optional[Path]:
        """The tokenizer a checkpoint brings (None: the one the prepare stage trains)."""
        return None

    @classmethod
    def trains(cls, config: Any) -> bool:
        """Whether the pretrain stage trains it (False: a checkpoint taken as it is)."""
        return True

    def spec(self) -> dict:
        """What `build_backbone` needs to rebuild this architecture (saved with the model)."""
        return {"arch": self.arch, **asdict(self.cfg)}

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def lm_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the LM head at `hidden` [N, D] against `targets` [N] (every one
        counts). A backbone whose head is a plain matrix computes it without the logits."""
        return F.cross_entropy(self.lm_logits(hidden).float(), targets)

    def input_embeddings(self) -> nn.Embedding | None:
        """The token embedding table (what `task.<t>.freeze_embeddings` freezes); None: none to name."""
        return None

    def lora_targets(self) -> tuple[str, ...]:
        """The linear layers LoRA adapts by default (`task.<t>.method=lora`: module names or their
        last parts); none: LoRA needs them named (`task.<t>.lora_targets`)."""
        return ()

    def num_params(self, non_embedding: bool = True) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int) -> float:
        return 6 * self.num_params()


BACKBONES: Registry[type[Backbone]] = Registry("models", "backbone", "arch", "model.arch={name}", ("heads",))
register = BACKBONES.register  # class decorator: a Backbone subclass as `model.arch=<arch>`
backbone_class = BACKBONES.get  # the registered backbone `arch`, importing the module that registers it


def settings(model: Any) -> tuple[type[Backbone], Any]:
    """(the backbone class, its checked settings) of the `model` config section (`arch`, and the
    settings of that backbone; `name` is the config's own name, kept for the record)."""
    from omegaconf import DictConfig, OmegaConf

    data = OmegaConf.to_container(model, resolve=True) if isinstance(model, DictConfig) else dict(model or {})
    data.pop("name", None)
    arch = data.pop("arch", None)
    if not arch:
        raise ConfigError("model.arch is not set: choose a model, e.g. model=gpt_tiny")
    cls = backbone_class(str(arch))
    return cls, build(cls.config_class, data, "model")


def check_objective(cls: type[Backbone], config: Any, objective: str, what: str = "") -> None:
    """Refuse a pretraining objective the backbone cannot be trained with, saying what would work."""
    can = cls.capabilities(config)
    what = what or f"model.arch={cls.arch!r}"
    if objective == "clm" and not can.causal:
        raise ConfigError(
            f"objective=clm with {what} cannot work: that backbone does not read left to right (an "
            "encoder); pretrain it with objective=mlm, or choose a decoder (model=gpt_tiny, gpt_small, "
            "lstm, or model=hf model.hf_model_type=gpt2)"
        )
    if objective == "mlm" and not can.bidirectional:
        raise ConfigError(
            f"objective=mlm with {what} cannot work: masked-LM pretraining needs a backbone that reads "
            "both ways, and this one reads left to right. Use objective=clm, or objective=mlm with a "
            "Transformer (model=gpt_tiny/gpt_small) or an encoder (model=minilm, model=hf "
            "model.hf_model_type=bert)"
        )


def from_spec(spec: dict[str, Any], source: str | Path = "the saved model") -> tuple[type[Backbone], Any]:
    """(backbone class, its settings) of a saved spec (see `Backbone.spec`), checked as a config
    is: a damaged or edited manifest (`source`) fails here, naming it, not in the middle of training."""
    spec = dict(spec)
    cls = backbone_class(spec.pop("arch"))
    names = {f.name for f in fields(cls.config_class)}
    config = cls.config_class(**{**cls.config_class.SAVED_WITHOUT, **{k: v for k, v in spec.items() if k in names}})
    try:
        check_values(config, "backbone")
    except ConfigError as e:
        raise DataError(f"{source}: {e}: the file is damaged or was edited; {REMAKE}") from None
    return cls, config


def build_backbone(spec: dict[str, Any], source: str | Path = "the saved model") -> Backbone:
    """A freshly initialised backbone from a saved spec (`source`: the manifest it came from)."""
    cls, config = from_spec(spec, source)
    return cls(config)


def check_state(
    own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str | Path, remedy: str = REMAKE
) -> None:
    """Fail, naming the file and the first tensor, when weights do not fit a model (missing or extra
    tensors, another shape) and saying what would mend it (`remedy`): the one check for model
    directories and training checkpoints alike."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ConfigError(
            f"{source}: weights do not fit the configured model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}): it is from another model; {remedy}"
        )
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ConfigError(
                f"{source}: tensor {k!r} has shape {tuple(v.shape)} but the configured model "
                f"expects {tuple(own[k].shape)}: it is from a different model shape; {remedy}"
            )


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    check_state(module.state_dict(), state, source)
    module.load_state_dict(state)


def load_backbone(directory: str | Path):
    """(backbone with its weights, SavedModel) of a model directory (pretrained or fine-tuned)."""
    saved = SavedModel.load(directory)
    backbone = build_backbone(saved.backbone, Path(directory) / MANIFEST)
    prefix = "backbone."
    state = {k[len(prefix) :]: v for k, v in saved.weights(directory).items() if k.startswith(prefix)}
    if not state:
        raise DataError(f"{Path(directory) / 'model.safetensors'}: holds no backbone weights; {REMAKE}")
    load_weights(backbone, state, Path(directory) / "model.safetensors")
    return backbone, saved


__all__ = [
    "Backbone",
    "BackboneConfig",
    "Capabilities",
    "register",
    "backbone_class",
    "settings",
    "check_objective",
    "from_spec",
    "build_backbone",
    "check_state",
    "load_weights",
    "load_backbone",
]
