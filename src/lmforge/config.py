"""Structured configuration: the schema Hydra composes `conf/` into, and its validation.

The dataclasses are registered as the schema of `conf/config.yaml`, so a misspelt key or a value
of the wrong type fails at composition time. `validate` then checks what types cannot express
(divisibility, positivity, compatible choices) and names the offending key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lmforge.errors import ConfigError


@dataclass
class PathsConfig:
    root: str = "${lmforge.root:}"
    artifacts: str = "${paths.root}/artifacts"
    reports: str = "${paths.root}/reports"
    checkpoints: str = "${paths.root}/.lmforge/checkpoints"


@dataclass
class SyntheticConfig:
    n_corpus_docs: int = 20000
    n_train: int = 400
    n_validation: int = 200
    n_test: int = 500
    tasks: list[str] = field(default_factory=lambda: ["topic", "sentiment"])


@dataclass
class TextFilesConfig:
    paths: list[str] = field(default_factory=list)
    text_column: str = "text"


@dataclass
class HubConfig:
    name: Optional[str] = None
    config: Optional[str] = None
    split: str = "train"
    text_column: str = "text"


@dataclass
class DataConfig:
    source: str = "synthetic"  # synthetic | text_files | hub
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    text_files: TextFilesConfig = field(default_factory=TextFilesConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    val_fraction: float = 0.05
    contamination_n: int = 13


@dataclass
class TokenizerConfig:
    kind: str = "bpe"  # bpe | wordpiece | char
    vocab_size: int = 4096
    min_frequency: int = 2


@dataclass
class ModelConfig:
    arch: str = "transformer"
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    max_len: int = 256
    dropout: float = 0.0


@dataclass
class ObjectiveConfig:
    name: str = "clm"  # clm
    mask_prob: float = 0.15


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "bf16-mixed"
    max_steps: int = 2000
    max_time: Optional[str] = None  # "DD:HH:MM:SS"
    batch_size: int = 16
    block_size: int = 128
    val_check_interval: int = 200
    limit_val_batches: int = 20
    log_every_n_steps: int = 10
    gradient_clip_val: float = 1.0
    accumulate_grad_batches: int = 1
    checkpoint_every_n_steps: int = 100
    enable_progress_bar: bool = True
    compile: bool = False


@dataclass
class TaskConfig:
    name: str = "topic"
    family: str = "classification"
    source: str = "builtin"  # builtin: the prepare stage's task splits
    max_length: int = 128
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    max_epochs: int = 10
    warmup_ratio: float = 0.1
    patience: int = 3
    dropout: float = 0.1
    n_predictions: int = 20


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = "sqlite:///${paths.root}/mlflow.db"
    experiment: str = "lmforge"
    artifact_location: str = "${paths.root}/mlartifacts"


@dataclass
class Config:
    seed: int = 1234
    init: str = "pretrained"  # finetune: pretrained | scratch
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def project_root() -> Path:
    """The project root: $LMFORGE_ROOT, else the nearest folder up from the cwd with dvc.yaml and conf/."""
    if env := os.environ.get("LMFORGE_ROOT"):
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "dvc.yaml").is_file() and (d / "conf").is_dir():
            return d
    return here


def register() -> None:
    """Register the schema and resolvers with Hydra/OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("lmforge.root"):
        OmegaConf.register_new_resolver("lmforge.root", lambda: str(project_root()))
    ConfigStore.instance().store(name="schema", node=Config)


register()

SPECIAL_TOKENS = 6  # <pad> <eos> <unk> <mask> <sep> <cls>
_KNOWN = {
    "data.source": {"synthetic", "text_files", "hub"},
    "tokenizer.kind": {"bpe", "wordpiece", "char"},
    "objective.name": {"clm"},
    "task.family": {"classification"},
    "task.source": {"builtin"},
    "init": {"pretrained", "scratch"},
    "trainer.precision": {"32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "64-true"},
}


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, throw_on_missing=True)


def validate(cfg: DictConfig) -> None:
    """Check what the schema's types cannot; raise ConfigError naming the key."""
    from lmforge.models import ARCHS

    for key, allowed in {**_KNOWN, "model.arch": set(ARCHS)}.items():
        value = _get(cfg, key)
        if str(value) not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {sorted(allowed)}")
    positive = [
        "model.d_model", "model.n_layers", "model.n_heads", "model.d_ff", "model.max_len",
        "tokenizer.vocab_size", "optim.lr", "trainer.max_steps", "trainer.batch_size",
        "trainer.block_size", "trainer.accumulate_grad_batches", "trainer.val_check_interval",
        "trainer.checkpoint_every_n_steps", "task.batch_size", "task.lr", "task.max_epochs",
        "task.max_length", "data.synthetic.n_corpus_docs", "data.synthetic.n_train",
        "data.synthetic.n_validation", "data.synthetic.n_test",
    ]
    for key in positive:
        value = _get(cfg, key)
        if not value > 0:
            raise ConfigError(f"{key}={value} must be positive")
    m = cfg.model
    if m.d_model % m.n_heads:
        raise ConfigError(
            f"model.d_model={m.d_model} is not divisible by model.n_heads={m.n_heads}"
        )
    if cfg.trainer.block_size > m.max_len:
        raise ConfigError(
            f"trainer.block_size={cfg.trainer.block_size} exceeds model.max_len={m.max_len}"
        )
    if cfg.task.max_length > m.max_len:
        raise ConfigError(f"task.max_length={cfg.task.max_length} exceeds model.max_len={m.max_len}")
    floor = SPECIAL_TOKENS + (256 if cfg.tokenizer.kind == "bpe" else 1)
    if cfg.tokenizer.vocab_size < floor:
        raise ConfigError(
            f"tokenizer.vocab_size={cfg.tokenizer.vocab_size} is smaller than the {SPECIAL_TOKENS} "
            f"special tokens plus the base alphabet of a {cfg.tokenizer.kind!r} tokenizer "
            f"(needs at least {floor})"
        )
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={cfg.data.val_fraction} must be in [0, 1)")
    if cfg.data.source == "text_files" and not cfg.data.text_files.paths:
        raise ConfigError("data.text_files.paths is empty: name at least one file")
    if cfg.data.source == "hub" and not cfg.data.hub.name:
        raise ConfigError("data.hub.name is not set: name a Hugging Face Hub dataset")


def to_container(cfg: DictConfig) -> dict:
    """The fully resolved config as plain Python objects."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def fingerprint(cfg: DictConfig | dict, *sections: str) -> str:
    """A short stable hash of the given config sections (all when none): names checkpoint dirs."""
    d = to_container(cfg) if isinstance(cfg, DictConfig) else cfg
    if sections:
        d = {s: d[s] for s in sections}
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
