"""finetune@<task>: a task model on the pretrained backbone (`pretrained`) and on the same
architecture from scratch (`scratch`, the ablation) — each task of `cfg.task`, each init of
`cfg.inits`, one MLflow run each — for any task family (`lmforge.tasks`): setup → fit → save.

The backbone comes from the pretrain stage's model directory, and the stage refuses to run when the
config describes another model or objective than the one that directory was built from (so a run
never records `model=minilm` while fine-tuning something else). Keeps the checkpoint best on the
family's validation score.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig, OmegaConf

from lmforge import interrupt
from lmforge.config import fingerprint, task_seed, to_container
from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.errors import ConfigError, DataError
from lmforge.fileio import atomic_dir, content_digest, write_json
from lmforge.host import peak_memory_mb, reset_peak_memory
from lmforge.models import build_backbone, load_backbone
from lmforge.models.adapters import add_lora, freeze, merge_lora
from lmforge.saved_model import MANIFEST, SavedModel
from lmforge.stages.common import StageContext, log, stage, task_names
from lmforge.tasks import Family, configure, configure_all
from lmforge.tasks.base import training_settings
from lmforge.tasks.splits import Splits, load_splits

# Lightning (lmforge.train) is imported where the training starts, once the tasks' settings have
# checked out (`run`): a mistake in them is answered before its seconds of imports. Here, for annotations only:
if TYPE_CHECKING:
    from lmforge.train.callbacks import History
    from lmforge.train.tasks import TaskData, TaskModule

PARAMS = ("seed", "finetune_seed", "max_task_records", "model", "objective", "trainer", "task")
# what the run measured about the machine: reports/runtime/finetune/<task>/<init>.json, not the out
RUNTIME = ("peak_memory_mb", "threads", "resumed_from_step")


def check_pretrained(cfg: DictConfig, pretrained: SavedModel, where: Path) -> None:
    """The config must describe the model the pretrained directory holds (model and objective)."""
    want = to_container(cfg)["model"]
    name = lambda m: m.get("name") or m.get("arch")  # noqa: E731
    if want != pretrained.model or cfg.objective.name != pretrained.objective:
        diff = sorted(k for k in {*want, *pretrained.model} if want.get(k) != pretrained.model.get(k))
        raise ConfigError(
            f"model={name(want)} objective={cfg.objective.name} is not what {where} holds (model="
            f"{name(pretrained.model)} objective={pretrained.objective}; differing: "
            f"{', '.join(f'model.{k}' for k in diff) or 'objective'}): pretrain it first "
            f"(`python pipelines/pretrain.py model={name(want)} objective={cfg.objective.name}`, or `dvc repro`)"
        )


@dataclass
class Setup:
    family: Family
    splits: Splits
    module: TaskModule
    head: dict
    tok: object
    pretrained: SavedModel
    data: TaskData
    params: dict  # trainable_params, total_params (the saved model's)


def setup(ctx: StageContext, task: str, init: str) -> Setup:
    from lmforge.train.tasks import TaskData, TaskModule

    paths, cfg = ctx.paths, ctx.cfg
    family = configure(task, cfg.task[task])
    ctx.record(f"task.{task}", family.config)
    if not paths.pretrained_model.is_dir():
        raise DataError(
            f"{paths.pretrained_model}: no pretrained model yet; make it first: "
            "`python pipelines/pretrain.py` "
            "(or `dvc repro pretrain`)"
        )
    pretrained = SavedModel.load(paths.pretrained_model)
    check_pretrained(cfg, pretrained, paths.pretrained_model)
    splits = load_splits(family, task_seed(cfg), cfg.max_task_records, paths.corpus_index, paths.root, cfg.seed)
    tok = load_tokenizer(paths.pretrained_model)
    backbone, _ = load_backbone(paths.pretrained_model)
    if init == "scratch":  # the same architecture, freshly initialised (seeded)
        backbone = build_backbone(pretrained.backbone, paths.pretrained_model / MANIFEST)
    family.check_backbone(
        backbone.cfg, type(backbone).capabilities(backbone.cfg), f"the pretrained model ({paths.pretrained_model})"
    )
    head = family.head_config(splits.records, splits.labels, backbone)
    model = family.build(backbone, head)

    task_cfg = family.config
    n_params = sum(p.numel() for p in model.parameters())
    if task_cfg.method == "frozen":
        freeze(model.backbone)
    elif task_cfg.method == "lora":
        add_lora(
            model.backbone,
            task_cfg.lora_rank,
            task_cfg.lora_alpha,
            task_cfg.lora_dropout,
            task_cfg.lora_targets,
            f"task.{task}",
        )
    if task_cfg.freeze_embeddings:
        table = backbone.input_embeddings()
        if table is None:
            raise ConfigError(
                f"task.{task}.freeze_embeddings: backbone {backbone.arch!r} names no token embeddings "
                "to freeze; set it to false"
            )
        table.weight.requires_grad_(False)  # tied backbones (gpt_tiny, lstm): their LM output projection too
    feats = {s: family.features(splits[s], tok, head, train=True) for s in ("train", "validation")}
    data = TaskData(
        feats["train"],
        feats["validation"],
        task_cfg.batch_size,
        special_ids(tok)["pad"],
        task_seed(cfg),
        f"task.{task}.batch_size",
    )
    steps_per_epoch = math.ceil(len(feats["train"]) / task_cfg.batch_size)
    total = task_cfg.max_epochs * steps_per_epoch // cfg.trainer.accumulate_grad_batches
    module = TaskModule(family, model, head, int(task_cfg.warmup_ratio * total), max(total, 1))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "finetune %s/%s: %d training records (%d features); method %s trains %s of %s parameters",
        task,
        init,
        len(splits["train"]),
        len(feats["train"]),
        task_cfg.method,
        f"{trainable:,}",
        f"{n_params:,}",
    )
    counts = {"trainable_params": trainable, "total_params": n_params}
    return Setup(family, splits, module, head, tok, pretrained, data, counts)


@dataclass
class Fitted:
    summary: dict
    history: History
    checkpoint_dir: Path


def fit(ctx: StageContext, s: Setup, init: str) -> Fitted:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lmforge.train.callbacks import History
    from lmforge.train.tasks import EpochPosition, ResumableEarlyStopping
    from lmforge.train.trainer import StopOnSignal, check_checkpoint, latest_checkpoint, make_trainer, pin_threads

    family, task_cfg, trainer_cfg = s.family, s.family.config, ctx.cfg.trainer
    settings = {
        "seed": task_seed(ctx.cfg),
        "trainer": to_container(ctx.cfg)["trainer"],
        "init": init,
        "task": training_settings(task_cfg),
    }
    ckpt_dir = (
        ctx.paths.checkpoints
        / "finetune"
        / family.task
        / init
        / fingerprint(settings, content_digest(ctx.paths.pretrained_model, data=s.splits.records))
    )
    resume = latest_checkpoint(ckpt_dir)
    resumed_step = check_checkpoint(resume, s.module) if resume else 0
    ctx.run.begin()  # the inputs checked out: the work (and its MLflow run) begins
    ctx.run.resumes(f"finetune/{family.task}/{init}/{ckpt_dir.name}")
    threads = pin_threads(ckpt_dir, resuming=resume is not None)
    if resume:
        log.info("resuming from %s (step %d)", resume, resumed_step)
    score = s.module.score_key
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=score,
        mode="max",
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
    )
    history = History(sink=ctx.run.log_metrics)
    callbacks = [
        best,
        history,
        ResumableEarlyStopping(monitor=score, mode="max", patience=task_cfg.patience),
        EpochPosition(),
        StopOnSignal(ckpt_dir),
    ]
    steps_per_epoch = max(len(s.data.train) // task_cfg.batch_size, 1)
    trainer = make_trainer(
        trainer_cfg,
        callbacks=callbacks,
        progress=ctx.cfg.progress,
        max_epochs=task_cfg.max_epochs,
        log_every_n_steps=min(trainer_cfg.log_every_n_steps, steps_per_epoch),
    )
    reset_peak_memory()
    with interrupt.stop_at_step_end():
        trainer.fit(s.module, datamodule=s.data, ckpt_path=str(resume) if resume else None)
    peak = peak_memory_mb()
    state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    s.module.load_state_dict(state)
    if task_cfg.method == "lora":
        merge_lora(s.module.model.backbone)  # saved as a full model (adapters folded into their weights)
    summary = {
        "task": family.task,
        "family": family.name,
        "init": init,
        "method": task_cfg.method,
        **s.params,
        "peak_memory_mb": peak,
        "val_metric": family.val_metric,
        "best_val_score": float(best.best_model_score),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "n_train": len(s.splits["train"]),
        "n_train_features": len(s.data.train),
        "skipped": s.splits.skipped,
        "precision": trainer.precision,  # `auto` resolved for this device
        "threads": threads,
        "resumed_from_step": resumed_step,
    }
    return Fitted(summary, history, ckpt_dir)


def save(ctx: StageContext, s: Setup, fitted: Fitted, init: str) -> None:
    family, out = s.family, ctx.paths.finetuned(s.family.task, init)
    with atomic_dir(out) as tmp:
        SavedModel(
            kind="task_model",
            backbone=s.module.model.backbone.spec(),
            objective=s.pretrained.objective,
            model=s.pretrained.model,
            task=family.task,
            family=family.name,
            task_config=asdict(family.config),
            head=s.head,
            init=init,
            pretrained_digest=s.pretrained.weights_digest,
        ).save(tmp / "model", s.module.model.state_dict(), ctx.paths.pretrained_model)
        fitted.history.write_csv(tmp / "curves" / "train.csv", "train/loss")
        fitted.history.write_csv(tmp / "curves" / "val.csv", "val/loss", s.module.score_key)
        fitted.summary["saved_mb"] = round(sum(f.stat().st_size for f in (tmp / "model").iterdir()) / 2**20, 2)
        write_json(tmp / "summary.json", {k: v for k, v in fitted.summary.items() if k not in RUNTIME})
        # tracked from what this process wrote, before it is renamed into place
        ctx.run.log_artifact(tmp / "model", "model")
        ctx.run.log_artifact(tmp / "curves", "curves")
        ctx.run.register_model(
            tmp / "model", "TaskModel" if family.serves else None, family.serves, task=family.task, init=init
        )
    if not ctx.cfg.trainer.keep_checkpoints:
        shutil.rmtree(fitted.checkpoint_dir, ignore_errors=True)
    fitted.summary["wall_s"] = ctx.elapsed()
    ctx.record_runtime(f"finetune/{family.task}/{init}", **{k: fitted.summary[k] for k in RUNTIME})
    ctx.run.log_metrics(
        {
            "final/best_val_score": fitted.summary["best_val_score"],
            **{
                f"final/{k}": fitted.summary[k]
                for k in ("trainable_params", "total_params", "saved_mb", "peak_memory_mb", "wall_s")
                if fitted.summary.get(k) is not None
            },
        }
    )


def finetune(cfg: DictConfig, task: str, init: str) -> dict:
    """One task, one init: its own MLflow run."""
    one = OmegaConf.merge(cfg, {"only_task": task})
    with stage(one, f"finetune/{task}/{init}", PARAMS, tags={"lmforge.task": task, "lmforge.init": init}) as ctx:
        s = setup(ctx, task, init)
        fitted = fit(ctx, s, init)
        if ctx.is_main:
            save(ctx, s, fitted, init)
            log.info(
                "finetune %s/%s: best validation %s %.3f",
                task,
                init,
                s.family.val_metric,
                fitted.summary["best_val_score"],
            )
    return fitted.summary


def run(cfg: DictConfig) -> dict:
    """{task: {init: summary}} for every task of `cfg.task` (or `cfg.only_task`) and init of `cfg.inits`."""
    tasks = task_names(cfg)
    unknown = sorted(set(cfg.inits) - {"pretrained", "scratch"})
    if unknown or not cfg.inits:
        raise ConfigError(f"inits={list(cfg.inits)}: each must be pretrained or scratch (e.g. inits=[scratch])")
    if not cfg.get("params_file"):  # every task's settings before the first one's work (DVC runs one task)
        configure_all(cfg.task, tasks)
    return {task: {init: finetune(cfg, task, init) for init in cfg.inits} for task in tasks}
