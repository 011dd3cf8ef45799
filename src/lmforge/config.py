"""The configuration: the schema Hydra composes `conf/` into, the sections each stage reads, and
params.yaml (what DVC runs) loaded into a stage's config.

Two kinds of keys:

- **hyperparameters** (`HYPERPARAMETERS`: seed, data, tokenizer, model, objective, optim, trainer,
  task) shape what a stage produces. `conf/pipeline.yaml` composes them; DVC writes that
  composition to params.yaml on every `dvc exp run` (Hydra composition, `.dvc/config`), and a stage
  run by DVC (`--config-name=stage`) takes every hyperparameter from params.yaml and nothing from
  conf/. Each stage declares the sections it reads (`PARAMS` in its module) and receives only
  those; dvc.yaml lists the same sections as the stage's params (a test keeps them equal).
- **app settings** (paths, tracking, inits, only_task, progress, …) say where and how a stage runs,
  never what it computes; they are not DVC params.

`model` and `task` are open here (a backbone or a task family brings its own settings class:
`lmforge.models`, `lmforge.tasks`); every other section is a dataclass whose fields state their
ranges (`lmforge.schema.setting`), checked by `section`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lmforge.errors import ConfigError, DataError
from lmforge.schema import build, setting, unknown_key


@dataclass
class PathsConfig:
    root: str = "${lmforge.root:}"
    artifacts: str = "${paths.root}/artifacts"
    reports: str = "${paths.root}/reports"
    checkpoints: str = "${paths.root}/.lmforge/checkpoints"


@dataclass
class SyntheticConfig:
    n_corpus_docs: int = setting(20000, gt=0)


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
    num_proc: Optional[int] = setting(None, gt=0)  # processes that prepare the Arrow cache (streaming: false)


@dataclass
class DataConfig:
    source: str = setting("synthetic", choices=("synthetic", "text_files", "hub"))
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    text_files: TextFilesConfig = field(default_factory=TextFilesConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    val_fraction: float = setting(0.05, ge=0, lt=1)
    contamination_n: int = setting(13, gt=0)

    def check(self, key: str) -> None:
        if self.source == "text_files" and not self.text_files.paths:
            raise ConfigError(f"{key}.text_files.paths is empty: name at least one file")
        if self.source == "hub" and not self.hub.name:
            raise ConfigError(f"{key}.hub.name is not set: name a Hugging Face Hub dataset")


SPECIAL_TOKENS = 6  # <pad> <eos> <unk> <mask> <sep> <cls>


@dataclass
class TokenizerConfig:
    kind: str = setting("bpe", choices=("bpe", "wordpiece", "char"))
    vocab_size: int = setting(4096, gt=0)
    min_frequency: int = setting(2, ge=0)
    # trained on the training split's first N characters (null: all): tokenizer memory stays flat
    max_train_chars: Optional[int] = setting(50_000_000, gt=0)

    def check(self, key: str) -> None:
        floor = SPECIAL_TOKENS + (256 if self.kind == "bpe" else 1)
        if self.vocab_size < floor:
            raise ConfigError(
                f"{key}.vocab_size={self.vocab_size} is smaller than the {SPECIAL_TOKENS} special tokens "
                f"plus the base alphabet of a {self.kind!r} tokenizer (needs at least {floor})"
            )


@dataclass
class ObjectiveConfig:
    name: str = setting("clm", choices=("clm", "mlm"))
    mask_prob: float = setting(0.15, gt=0, lt=1)


@dataclass
class OptimConfig:
    lr: float = setting(1e-3, gt=0)
    weight_decay: float = setting(0.1, ge=0)
    beta1: float = setting(0.9, ge=0, lt=1)
    beta2: float = setting(0.95, ge=0, lt=1)
    warmup_steps: int = setting(100, ge=0)
    min_lr_ratio: float = setting(0.1, ge=0, le=1)


PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")


@dataclass
class TrainerConfig:
    accelerator: str = setting("auto", choices=("auto", "cpu", "gpu", "cuda", "mps"))
    devices: Any = 1  # per node: a count, "auto", or a list of device indices
    num_nodes: int = setting(1, gt=0)
    strategy: str = "auto"  # auto | ddp | fsdp | any Lightning strategy name
    precision: str = setting("auto", choices=PRECISIONS)  # auto: lmforge.host.auto_precision
    max_steps: int = setting(2000, gt=0)
    max_time: Optional[str] = None  # "DD:HH:MM:SS"
    batch_size: int = setting(16, gt=0)  # global: split evenly over devices × nodes
    block_size: int = setting(128, gt=0)
    val_check_interval: int = setting(200, gt=0)
    limit_val_batches: int = setting(20, gt=0)
    log_every_n_steps: int = setting(10, gt=0)
    gradient_clip_val: float = setting(1.0, ge=0)
    accumulate_grad_batches: int = setting(1, gt=0)
    checkpoint_every_n_steps: int = setting(100, gt=0)
    keep_checkpoints: bool = False  # after success (checkpoints exist to resume a killed run)
    compile: bool = False


# where MLflow can keep runs: a folder, a database (SQLAlchemy's dialects, `dialect+driver://`) or a
# tracking server
TRACKING_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


@dataclass
class TrackingConfig:
    enabled: bool = True
    # lmforge.workspace: the DVC workspace even inside a queued experiment's temporary copy
    uri: str = "sqlite:///${lmforge.workspace:${paths.root}}/mlflow.db"
    experiment: str = "lmforge"
    artifact_location: str = "${lmforge.workspace:${paths.root}}/mlartifacts"
    register_models: bool = True  # model registry: <model_prefix>-lm, <model_prefix>-<task>
    model_prefix: str = "lmforge"
    connect_timeout_s: float = setting(5.0, gt=0)  # an http(s) tracking server must answer /health within this
    busy_timeout_s: float = setting(30.0, ge=0)  # how long a stage waits for another writer's lock on a SQLite store
    http_retries: int = setting(
        2, ge=0
    )  # MLflow's HTTP retries after the start (its default, 7, backs off for minutes)

    def check(self, key: str) -> None:
        from urllib.parse import urlparse

        scheme = urlparse(self.uri).scheme.split("+", 1)[0].lower()
        if len(scheme) > 1 and scheme not in TRACKING_SCHEMES:  # (none, or a drive letter: a folder)
            source = " (from $LMFORGE_TRACKING_URI)" if os.environ.get("LMFORGE_TRACKING_URI") == self.uri else ""
            raise ConfigError(
                f"{key}.uri={self.uri}{source}: MLflow cannot keep runs at a '{scheme}:' address; use "
                "sqlite:///<file>, postgresql://<user>@<host>/<db>, http(s)://<host>:<port> or a folder "
                "(tracking=none runs without tracking)"
            )


INITS = ("pretrained", "scratch")  # a fine-tune starts from the pretrained backbone or from scratch


@dataclass
class PipelineConfig:
    """The hyperparameters: conf/pipeline.yaml's schema, so params.yaml holds every setting of these
    sections, defaults included (a backbone's and a task's settings are complete in their files)."""

    seed: int = 1234
    # the seed of the task stages (fine-tune and evaluate: task data, head, batch order, dropout);
    # null: `seed`. Varying it alone re-runs only them, on the same pretrained model (`make seeds`)
    finetune_seed: Optional[int] = None
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: dict[str, Any] = field(default_factory=dict)  # arch + that backbone's settings (lmforge.models)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    task: dict[str, Any] = field(default_factory=dict)  # task name -> its family's settings (lmforge.tasks)
    # every built-in task split holds at most this many records (the smoke preset's size); null: the
    # sizes each task asks for (task.<name>.data.n_train / n_validation / n_test)
    max_task_records: Optional[int] = None
    conf_digest: Optional[str] = None  # a digest of the conf/ it was composed from (lmforge.params)


@dataclass
class Config(PipelineConfig):
    """What a stage app composes: the hyperparameters and the app settings."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    inits: list[str] = field(default_factory=lambda: list(INITS))  # finetune/evaluate: which inits
    only_task: Optional[str] = None  # finetune/evaluate: run this one of the configured tasks
    params_file: Optional[str] = None  # a stage run by DVC: every hyperparameter from this file
    progress: bool = True  # progress bars
    # what a stage app returns to a sweeper (Optuna): a key of the stage's summary, dotted for
    # nested values ("val_loss", "topic.pretrained.best_val_score"); null returns the whole summary
    optimized_metric: Optional[str] = None
    optimized_direction: str = "minimize"  # minimize | maximize


HYPERPARAMETERS = (
    "seed",
    "finetune_seed",
    "data",
    "tokenizer",
    "model",
    "objective",
    "optim",
    "trainer",
    "task",
    "max_task_records",
)
# the top-level numbers: (the least value, whether null is allowed, what they must be)
SCALARS = {
    "seed": (0, False, "a non-negative integer"),
    "finetune_seed": (0, True, "a non-negative integer or null (null: seed)"),
    "max_task_records": (1, True, "a positive integer or null"),
}
SECTIONS = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "objective": ObjectiveConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
}
# the conf/ entries that compose params.yaml (their digest is params.yaml's conf_digest)
PIPELINE_CONF = (
    "params.yaml",
    "pipeline.yaml",
    "data",
    "tokenizer",
    "model",
    "objective",
    "trainer",
    "task",
    "task_defaults",
    "finetune",
    "experiment",
)


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
    ConfigStore.instance().store(name="pipeline_schema", node=PipelineConfig)


def task_seed(cfg) -> int:
    """The task stages' seed: `finetune_seed`, else `seed`."""
    return cfg["seed"] if cfg.get("finetune_seed") is None else cfg["finetune_seed"]


# -- sections ----------------------------------------------------------------------------------------
def section(cfg: DictConfig, name: str) -> Any:
    """A checked hyperparameter section as its dataclass (the top-level numbers as themselves)."""
    value = OmegaConf.select(cfg, name)
    if name in SCALARS:
        least, nullable, must = SCALARS[name]
        if not (value is None and nullable) and (
            not isinstance(value, int) or isinstance(value, bool) or value < least
        ):
            raise ConfigError(f"{name}={value!r} must be {must}")
        return value
    return build(SECTIONS[name], value, name)


def check_composed(cfg: DictConfig) -> None:
    """Check what a composed config holds apart from `model` and `task` (which only their backbone or
    task family can check, in the stage): no unknown top-level key, every other section and number
    in range, the tracking settings. Needs neither torch nor any other heavy library, so a typo on
    the command line is answered before a stage imports them."""
    narrow(cfg, tuple(s for s in HYPERPARAMETERS if s != "task"))
    for name in (*SCALARS, *SECTIONS):
        section(cfg, name)
    if cfg.tracking.enabled:
        build(TrackingConfig, cfg.tracking, "tracking")


def conf_digest(conf_dir: str | Path) -> str:
    """A digest of the conf/ files that compose params.yaml (`PIPELINE_CONF`)."""
    conf_dir = Path(conf_dir)
    h = hashlib.sha256()
    for entry in PIPELINE_CONF:
        path = conf_dir / entry
        files = sorted(p for p in path.rglob("*.yaml")) if path.is_dir() else [path] if path.is_file() else []
        for f in files:
            h.update(str(f.relative_to(conf_dir)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def check_composed_from(params: dict, path: Path, conf_dir: Path) -> None:
    """params.yaml (`params`, read from `path`) was composed from conf/ as it is now: `dvc repro`
    never recomposes it, so a stage would silently ignore edits to conf/ (dvc.yaml's first stage,
    `conf`, checks this before any other runs; each stage again)."""
    current = conf_digest(conf_dir)
    if params.get("conf_digest") != current:
        raise ConfigError(
            f"{path} was composed from another conf/ (conf_digest {params.get('conf_digest')}, conf/ is now "
            f"{current}): `dvc repro` runs params.yaml as it is, so edits to conf/ would be ignored. "
            "Recompose it: `make params` (python -m lmforge.params), then `dvc repro`; or `dvc exp run`, which "
            "recomposes it and runs"
        )


def load_params(cfg: DictConfig, sections: tuple[str, ...]) -> DictConfig:
    """The stage config of a DVC run: the app settings of `cfg` plus, from `cfg.params_file`, the
    hyperparameter `sections` the stage reads (nothing from conf/). Refuses a params.yaml composed
    from another conf/: `dvc repro` never recomposes it, so the stage would silently ignore edits."""
    from lmforge.fileio import read_yaml

    path = Path(cfg.params_file)
    recompose = "recompose it: `python -m lmforge.params` (or `dvc exp run`)"
    try:
        params = read_yaml(path)
    except DataError as e:
        raise DataError(f"{e}; {recompose}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: not a mapping of parameters; {recompose}")
    unknown = sorted(set(params) - set(HYPERPARAMETERS) - {"conf_digest"})
    if unknown:
        raise ConfigError(
            f"{path}: {unknown[0]!r} is not a parameter lmforge knows (parameters: "
            f"{', '.join(HYPERPARAMETERS)}); recompose it with `python -m lmforge.params`"
        )
    check_composed_from(params, path, Path(cfg.paths.root) / "conf")
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(out, False)
    for name in sections:
        if name not in params:
            raise ConfigError(f"{path} has no {name!r}: recompose it with `python -m lmforge.params`")
        out[name] = params[name]
    return out


def narrow(cfg: DictConfig, sections: tuple[str, ...]) -> DictConfig:
    """`cfg` with only the hyperparameter `sections` a stage reads (the others set to None, so that
    reading one fails at once instead of using a value DVC never tracked for this stage) and, for
    `task`, only `cfg.only_task` when it is set."""
    known = [f.name for f in fields(Config)]
    for key in cfg:
        if key not in known:  # added with Hydra's `+`: nothing would read it
            raise unknown_key("", str(key), known)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(out, False)
    for name in HYPERPARAMETERS:
        if name not in sections:
            out[name] = None
    if "task" in sections:
        tasks = OmegaConf.select(out, "task") or {}
        if cfg.only_task is not None:
            if cfg.only_task not in tasks:
                raise ConfigError(
                    f"only_task={cfg.only_task!r} is not one of the configured tasks "
                    f"{sorted(tasks)} (choose tasks with task=[...])"
                )
            out.task = {cfg.only_task: tasks[cfg.only_task]}
        elif not tasks:
            raise ConfigError("no task is configured: choose one or more, e.g. task=topic or 'task=[topic,ner]'")
    return out


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


def fingerprint(data: Any, inputs: str = "") -> str:
    """A short stable hash of JSON-able `data` (a stage's settings) and a digest of what the stage
    reads (`fileio.content_digest`): names resumable checkpoint folders."""
    import json

    blob = json.dumps(data, sort_keys=True, default=str).encode() + inputs.encode()
    return hashlib.sha256(blob).hexdigest()[:16]


register()


def composition_error(e: BaseException) -> str:
    """Hydra's multi-line report of an override that does not compose, in one line: what failed,
    why (the cause Hydra keeps apart), and the options a group has — not its search path."""
    text = str(e).split("\nConfig search path:")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    missing = re.search(r"Could not load '([^'/]+)/([^']+)'", text)
    conf = project_root() / "conf"
    if missing and "Available options" not in text and (conf / missing[1]).is_dir():  # a list entry (task=[a,b])
        group, name = missing[1], missing[2]
        options = ", ".join(sorted(f.stem for f in (conf / group).glob("*.yaml")))
        path = "/" in name or name.endswith(".yaml")
        what = f"a {group} is named, not given as a path" if path else f"no such {group}"
        return f"{group}={name}: {what} (conf/{group}/<name>.yaml); the {group}s are: {options}"
    options = next((i for i, line in enumerate(lines) if line.startswith("Available options")), None)
    if options is not None:
        lines = lines[:options] + [f"{lines[options].rstrip(':')}: {', '.join(lines[options + 1 :])}"]
    cause = e.__cause__ or e.__context__
    if cause is not None and str(cause).strip() and str(cause).strip().splitlines()[0] not in lines:
        lines.append(str(cause).strip().splitlines()[0])
    return "; ".join(lines[:4]) or type(e).__name__


def check_map_overrides(overrides: list[str], cfg: DictConfig) -> None:
    """`key={}` on a map that has entries changes nothing (Hydra merges a map into the configured
    one) while the user believes it emptied: refuse it, naming the way that does (`~key`)."""
    for override in overrides:
        m = re.fullmatch(r"\+{0,2}([\w.]+)=\{\s*\}", override.strip())
        if m and isinstance(old := OmegaConf.select(cfg, m[1]), DictConfig) and len(old):
            raise ConfigError(
                f"{m[1]}={{}}: Hydra merges a map into the configured one, so this keeps "
                f"{OmegaConf.to_container(old)}; to empty it, delete it: '~{m[1]}'"
            )
