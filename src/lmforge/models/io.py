"""Model directories: `config.json` + `model.safetensors` + tokenizer files. Never a pickle."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lmforge.errors import ConfigError, DataError
from lmforge.fileio import read_json, write_json

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def write_model_dir(directory: Path, model: nn.Module, config: dict, tokenizer_dir: Path) -> None:
    """Write weights, config and tokenizer into `directory` (callers make it atomic)."""
    directory.mkdir(parents=True, exist_ok=True)
    state, seen = {}, set()
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu").contiguous()
        # tied weights (e.g. a Hugging Face LM head) share storage, which safetensors refuses: copy
        if v.numel() and v.untyped_storage().data_ptr() in seen:
            v = v.clone()
        seen.add(v.untyped_storage().data_ptr())
        state[k] = v
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    write_json(directory / CONFIG, config)
    for name in TOKENIZER_FILES:
        src = Path(tokenizer_dir) / name
        if src.exists():
            shutil.copy2(src, directory / name)


def read_model_dir(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    directory = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise DataError(f"{directory / name} is missing: not an lmforge model directory")
    return read_json(directory / CONFIG), load_file(str(directory / WEIGHTS))


def load_state(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Strict load that names the file and the first mismatched tensor."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ConfigError(
            f"{source}: weights do not fit the configured model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ConfigError(
                f"{source}: tensor {k!r} has shape {tuple(v.shape)} but the configured model "
                f"expects {tuple(own[k].shape)}: the checkpoint is from a different model shape"
            )
    module.load_state_dict(state)


def load_backbone(directory: str | Path) -> tuple[nn.Module, dict]:
    """The pretrained backbone (weights loaded) and the directory's config.json."""
    from lmforge.models import build_backbone

    config, state = read_model_dir(directory)
    backbone = build_backbone(config["backbone"])
    prefix = "backbone."
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    load_state(backbone, state, Path(directory) / WEIGHTS)
    return backbone, config


def load_classifier(directory: str | Path):
    """A fine-tuned sequence classifier and its config.json (labels, max_length, …)."""
    from lmforge.tasks import load_model

    model, _, config = load_model(directory)
    return model, config
