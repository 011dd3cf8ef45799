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
    n_train_per_task: dict[str, int] = field(default_factory=dict)  # task -> its own n_train


@dataclass
class TextFilesConfig:
    paths: list[str] = field(default_factory=list)
    text_column: str = "text"
    encoding: str = "utf-8"  # of plain-text files


@dataclass
class HubConfig:
    name: Optional[str] = None
    config: Optional[str] = None
    split: str = "train"
    text_column: str = "text"
    streaming: bool = False  # read the dataset as a stream (no Arrow cache) at every pass
    num_proc: Optional[int] = None  # processes that prepare the Arrow cache (streaming: false)


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
    max_train_chars: Optional[int] = 50_000_000  # trained on the corpus's first N characters (null: all)


@dataclass
class ModelConfig:
    arch: str = "transformer"
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    max_len: int = 256
    dropout: float = 0.0
    # arch=hf: a transformers model type built from the fields above, or a checkpoint to start
    # from (a local directory, a Hub id, or pkg:<python package> that ships one)
    hf_model_type: str = "gpt2"
    pretrained: Optional[str] = None


@dataclass
class ObjectiveConfig:
    name: str = "clm"  # clm | mlm
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
    keep_checkpoints: bool = False  # after success (checkpoints exist to resume a killed run)
    enable_progress_bar: bool = True
    compile: bool = False


@dataclass
class TaskDataConfig:
    """Where a task's labelled splits come from when `task.source` is `local` or `hub`
    (readers: lmforge/tasks/formats.py)."""

    # local: glue_tsv | csv | jsonl | conll | squad | parallel; hub: the dataset's own columns
    format: str = "jsonl"
    train: Optional[str] = None  # local: a file (parallel: the path without the language suffix)
    validation: Optional[str] = None  # null: carved from train (validation_fraction)
    test: Optional[str] = None  # null: the validation file is the test split (and validation is carved)
    validation_fraction: float = 0.1
    hub_name: Optional[str] = None  # task.source=hub: `datasets.load_dataset(hub_name, hub_config)`
    hub_config: Optional[str] = None
    hub_splits: dict[str, str] = field(default_factory=dict)  # train/validation/test -> the Hub split
    columns: dict[str, str] = field(default_factory=dict)  # record field (text, label, ...) -> column
    label_map: dict[str, str] = field(default_factory=dict)  # raw label -> label name
    header: bool = True  # csv/tsv: the first row names the columns
    scheme: str = "iob2"  # conll tags: iob1 | iob2 (converted to IOB2)
    tag_column: int = -1  # conll: the column holding the NER tag
    source_lang: str = "en"  # parallel / hub translation: file suffixes or dict keys
    target_lang: str = "de"
    max_train: Optional[int] = None  # keep the first N training records (after a seeded shuffle)
    max_eval: Optional[int] = None  # keep the first N validation / test records
    skip_malformed: bool = False  # count and report malformed lines instead of failing


@dataclass
class TaskConfig:
    name: str = "topic"
    family: str = "classification"  # classification | tagging | qa | summarization | translation
    source: str = "builtin"  # builtin: the prepare stage's task splits; local | hub: task.data
    max_length: int = 128
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    max_epochs: int = 10
    warmup_ratio: float = 0.1
    patience: int = 3
    dropout: float = 0.1
    # classification: the text's representation, the mean of its token states or the last real
    # token's (a causal backbone's reading of the whole text; exports to GPT2ForSequenceClassification)
    pooling: str = "mean"
    n_predictions: int = 20
    # qa: question + context windows of max_length tokens, overlapping by doc_stride
    doc_stride: int = 64
    max_answer_length: int = 30  # tokens
    n_best: int = 20
    # summarization / translation (prefix LM: source <sep> target <eos>)
    max_source_length: int = 96
    max_target_length: int = 32
    beam_size: int = 1  # 1: greedy decoding at evaluation
    length_penalty: float = 1.0  # beam search: score / length**length_penalty
    baseline: Optional[str] = None  # translation: lexicon (built-in world) | copy
    data: TaskDataConfig = field(default_factory=TaskDataConfig)


@dataclass
class TrackingConfig:
    enabled: bool = True
    # lmforge.workspace: the DVC workspace even inside a queued experiment's temporary copy
    uri: str = "sqlite:///${lmforge.workspace:${paths.root}}/mlflow.db"
    experiment: str = "lmforge"
    artifact_location: str = "${lmforge.workspace:${paths.root}}/mlartifacts"
    register_models: bool = True  # model registry: <model_prefix>-lm, <model_prefix>-<task>
    model_prefix: str = "lmforge"
    connect_timeout_s: float = 5.0  # an http(s) tracking server must answer /health within this
    http_retries: int = 2  # MLflow's HTTP retries after the start (its default, 7, backs off for minutes)


@dataclass
class Config:
    seed: int = 1234
    init: str = "pretrained"  # finetune: pretrained | scratch | both (in turn; what dvc repro runs)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # what a stage app returns to a sweeper (Optuna): a key of the stage's summary, dotted for
    # nested values ("val_loss", "pretrained.accuracy"); null returns the whole summary
    optimized_metric: Optional[str] = None
    optimized_direction: str = "minimize"  # minimize | maximize


def project_root() -> Path:
    """The project root: $LMFORGE_ROOT, else the nearest folder up from the cwd with dvc.yaml and conf/."""
    if env := os.environ.get("LMFORGE_ROOT"):
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "dvc.yaml").is_file() and (d / "conf").is_dir():
            return d
    return here


def workspace_root(root: str) -> str:
    """The DVC workspace that `root` belongs to: a queued `dvc exp run` runs the stages in a
    temporary copy under `<workspace>/.dvc/tmp/exps/`; anything else is its own workspace."""
    parts = Path(root).parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return str(Path(*parts[:i]))
    return str(root)


_UNIQUE = iter(range(1 << 62))


def unique_suffix() -> str:
    """Distinct per process and per config (cached by OmegaConf, so one sweep's jobs share it)."""
    n = next(_UNIQUE)
    return f"{os.getpid()}" + (f".{n}" if n else "")


def register() -> None:
    """Register the schema and resolvers with Hydra/OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("lmforge.root"):
        OmegaConf.register_new_resolver("lmforge.root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("lmforge.workspace"):
        OmegaConf.register_new_resolver("lmforge.workspace", workspace_root)
    if not OmegaConf.has_resolver("lmforge.unique"):
        OmegaConf.register_new_resolver("lmforge.unique", unique_suffix, use_cache=True)
    ConfigStore.instance().store(name="schema", node=Config)


register()

SPECIAL_TOKENS = 6  # <pad> <eos> <unk> <mask> <sep> <cls>
_KNOWN = {
    "data.source": {"synthetic", "text_files", "hub"},
    "tokenizer.kind": {"bpe", "wordpiece", "char"},
    "objective.name": {"clm", "mlm"},
    "task.family": {"classification", "tagging", "qa", "summarization", "translation"},
    "task.source": {"builtin", "local", "hub"},
    "task.pooling": {"mean", "last"},
    "init": {"pretrained", "scratch", "both"},
    "trainer.precision": {"32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "64-true"},
    "optimized_direction": {"minimize", "maximize"},
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
    check_combination(cfg)
    if m.d_model % m.n_heads and m.arch != "lstm" and not m.pretrained:
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


# task families that generate text: they need a causal (decoder) language model
GENERATIVE_FAMILIES = {"summarization", "translation"}


def backbone_kind(cfg: DictConfig) -> str:
    """'causal' (left to right) or 'bidirectional' (an encoder), from model and objective."""
    m = cfg.model
    if m.arch == "hf":
        from lmforge.models.hf import configured_kind

        return "causal" if configured_kind(m.pretrained, m.hf_model_type) == "causal" else "bidirectional"
    if m.arch == "lstm":
        return "causal"
    return "bidirectional" if cfg.objective.name == "mlm" else "causal"


def check_combination(cfg: DictConfig) -> None:
    """Reject model × objective × task choices that cannot work, saying what would."""
    m, objective, task = cfg.model, cfg.objective.name, cfg.task
    if m.pretrained and m.arch != "hf":
        raise ConfigError(f"model.pretrained={m.pretrained!r} is read only by model.arch=hf (got model.arch={m.arch!r})")
    if objective == "mlm" and m.arch == "lstm":
        raise ConfigError(
            "objective=mlm with model.arch=lstm cannot work: masked-LM pretraining needs a bidirectional "
            "backbone and an LSTM reads left to right. Use objective=clm with model=lstm, or objective=mlm "
            "with a Transformer (model=gpt_tiny/gpt_small, then trained bidirectionally) or model=hf with an encoder"
        )
    kind = backbone_kind(cfg)
    what = f"model.pretrained={m.pretrained!r}" if m.pretrained else f"model.hf_model_type={m.hf_model_type!r}"
    if m.arch == "hf" and objective == "clm" and kind != "causal":
        raise ConfigError(
            f"objective=clm with model.arch=hf {what} cannot work: that is an encoder (bidirectional) "
            f"model; pretrain it with objective=mlm, or choose a decoder (model.hf_model_type=gpt2)"
        )
    if m.arch == "hf" and objective == "mlm" and kind == "causal":
        raise ConfigError(
            f"objective=mlm with model.arch=hf {what} cannot work: that is a decoder (causal) model; "
            f"pretrain it with objective=clm, or choose an encoder (model.hf_model_type=bert)"
        )
    if task.family in GENERATIVE_FAMILIES and kind != "causal":
        backbone = f"model.arch=hf {what}" if m.arch == "hf" else f"model.arch={m.arch!r} with objective={objective}"
        raise ConfigError(
            f"task={task.name!r} (family {task.family!r}) generates text, which needs a causal decoder, but "
            f"{backbone} is an encoder-only (bidirectional) model. Use objective=clm with model=gpt_tiny, "
            f"gpt_small or lstm, or model=hf with a decoder (model.hf_model_type=gpt2); encoder models do "
            f"classification, NER and QA"
        )


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


def fingerprint(cfg: DictConfig | dict, *sections: str, inputs: str = "") -> str:
    """A short stable hash of the given config sections (all when none) and of a digest of the
    stage's `inputs` (`fileio.content_digest`): names checkpoint dirs."""
    d = to_container(cfg) if isinstance(cfg, DictConfig) else cfg
    if sections:
        d = {s: d[s] for s in sections}
    blob = json.dumps(d, sort_keys=True, default=str).encode() + inputs.encode()
    return hashlib.sha256(blob).hexdigest()[:16]
