"""How a fine-tune trains a backbone (`task.<t>.method`): every weight (`full`), the head alone on a
fixed backbone (`frozen`, a linear probe), or low-rank adapters beside the backbone's projections
(`lora`, with Hugging Face `peft` for every backbone: it wraps any `nn.Linear` by module name; an
`nn.Linear` gets `lora_linear.InPlaceLoraLinear`, peft's layer with its adapters added in place). A
LoRA model is saved merged — the adapters folded into the weights they adapt — so it is saved,
evaluated, served and exported as any task model is."""

from __future__ import annotations

from torch import nn

from lmforge.errors import ConfigError


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def add_lora(backbone: nn.Module, rank: int, alpha: float, dropout: float, targets: list[str], key: str) -> list[str]:
    """Low-rank adapters (rank `rank`, scale alpha / rank) beside each linear layer whose name is or
    ends with one of `targets` (the backbone's own defaults when empty); every other weight of the
    backbone is frozen. Returns the names of the adapted modules."""
    targets = list(targets) or list(backbone.lora_targets())
    if not targets:
        raise ConfigError(
            f"{key}.method=lora: backbone {backbone.arch!r} has no projections LoRA adapts by default; "
            f"name them in {key}.lora_targets, or use method=full or frozen"
        )
    # (nn.Linear, or the Conv1D that GPT-2's Hugging Face port uses instead: peft adapts both)
    linear = [n for n, m in backbone.named_modules() if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"]
    matched = [n for n in linear if any(n == t or n.endswith(f".{t}") for t in targets)]
    unmatched = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in linear)]
    if unmatched:
        sample = ", ".join(sorted({n.split(".")[-1] for n in linear})[:12])
        raise ConfigError(
            f"{key}.lora_targets: {unmatched} name no linear layer of backbone {backbone.arch!r} "
            f"(its linear layers end in: {sample})"
        )
    from peft import LoraConfig
    from peft.functional import inject_adapter_in_model

    from lmforge.models.lora_linear import InPlaceLoraLinear

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    config._register_custom_module({nn.Linear: InPlaceLoraLinear})
    inject_adapter_in_model(config, backbone)
    return matched


def merge_lora(backbone: nn.Module) -> int:
    """Fold every adapter into the weight it adapts and put the plain layer back (the backbone's
    state dict is then the one a full fine-tune saves). Returns how many were merged."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(backbone.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(backbone.get_submodule(parent) if parent else backbone, child, module.get_base_layer())
            merged += 1
    return merged
