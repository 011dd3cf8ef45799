"""finetune@<task>: a task model on the pretrained backbone (`init=pretrained`), on the same
architecture from scratch (`init=scratch`, the ablation), or both in turn (`init=both`, what
`dvc repro` runs: one process, one MLflow child run each), for any task family
(`lmforge.tasks`). Keeps the checkpoint best on validation accuracy (the family's cheap
per-token/per-example accuracy)."""

from __future__ import annotations

import math
import shutil

import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig

from lmforge import __version__
from lmforge.config import fingerprint, to_container
from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.fileio import atomic_dir, content_digest, write_json
from lmforge.models import build_backbone
from lmforge.models.io import load_backbone, write_model_dir
from lmforge.stages.common import INITS, log, stage
from lmforge.tasks import check_config, family, load_splits
from lmforge.tasks.base import loader
from lmforge.train.callbacks import History
from lmforge.train.tasks import TaskModule
from lmforge.train.trainer import check_checkpoint, latest_checkpoint, make_trainer


def run(cfg: DictConfig) -> dict:
    """The summary of the fine-tune, or with `init=both` {init: summary} of both."""
    if cfg.init != "both":
        return finetune(cfg)
    out = {}
    for init in INITS:
        one = cfg.copy()
        one.init = init
        out[init] = finetune(one)
    return out


def finetune(cfg: DictConfig) -> dict:
    task, init = cfg.task, cfg.init
    check_config(task, cfg.model.max_len)
    fam = family(task.family)
    with stage(cfg, f"finetune/{task.name}/{init}", tags={"lmforge.task": task.name, "lmforge.init": init}) as run:
        p = run.paths
        splits, labels, skipped = load_splits(task, p.tasks, cfg.seed)
        tok = load_tokenizer(p.pretrained_model)
        pad_id = special_ids(tok)["pad"]

        backbone, pretrained_cfg = load_backbone(p.pretrained_model)
        if init == "scratch":  # the same architecture, freshly initialised (seeded)
            backbone = build_backbone(pretrained_cfg["backbone"])
        meta = fam.meta(splits, labels, backbone, task)
        model = fam.build(backbone, meta, task.dropout)

        feats = {s: fam.features(splits[s], tok, meta, task, train=True) for s in ("train", "validation")}
        train_dl = loader(feats["train"], task.batch_size, pad_id, shuffle=True, seed=cfg.seed)
        by_length = sorted(feats["validation"], key=lambda f: len(f["input_ids"]))  # less padding
        val_dl = loader(by_length, task.batch_size, pad_id, shuffle=False)
        total = task.max_epochs * math.ceil(len(feats["train"]) / task.batch_size) // cfg.trainer.accumulate_grad_batches
        module = TaskModule(fam, model, task.lr, task.weight_decay, int(task.warmup_ratio * total), max(total, 1))

        ckpt_dir = p.checkpoints / "finetune" / task.name / init / fingerprint(
            cfg, "seed", "data", "tokenizer", "model", "objective", "optim", "trainer", "task", "init",
            inputs=content_digest(p.pretrained_model, data=splits))
        resume = latest_checkpoint(ckpt_dir)
        if resume:
            log.info("resuming from %s (step %d)", resume, check_checkpoint(resume, module))
        best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/accuracy", mode="max",
                               save_last=True, save_top_k=1, enable_version_counter=False)
        history = History()
        callbacks = [best, history, EarlyStopping(monitor="val/accuracy", mode="max", patience=task.patience)]
        trainer = make_trainer(cfg.trainer, callbacks=callbacks, logger=run.lightning_logger(),
                               max_epochs=task.max_epochs, log_every_n_steps=min(cfg.trainer.log_every_n_steps, len(train_dl)))
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(resume) if resume else None)

        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        summary = {
            "task": task.name, "family": fam.name, "init": init, "best_val_accuracy": float(best.best_model_score),
            "epochs": trainer.current_epoch, "steps": trainer.global_step, "n_train": len(splits["train"]),
            "n_train_features": len(feats["train"]), "skipped": skipped,
        }
        with atomic_dir(p.finetuned(task.name, init)) as tmp:
            write_model_dir(tmp / "model", module.model, {
                "lmforge_version": __version__, "kind": fam.kind, "family": fam.name, "task": task.name,
                "init": init, "meta": meta, "labels": meta.get("labels"), "max_length": task.max_length,
                "task_config": to_container(cfg)["task"], "backbone": pretrained_cfg["backbone"],
            }, p.pretrained_model)
            history.write_csv(tmp / "curves" / "train.csv", "train/loss")
            history.write_csv(tmp / "curves" / "val.csv", "val/accuracy")
            summary["wall_s"] = run.elapsed()
            write_json(tmp / "summary.json", summary)
        if not cfg.trainer.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        run.log_metrics({"final/best_val_accuracy": summary["best_val_accuracy"]})
        run.log_artifact(p.finetuned(task.name, init) / "model", "model")
        run.log_artifact(p.finetuned(task.name, init) / "curves", "curves")
        run.register_model(p.finetuned(task.name, init) / "model", task=task.name, init=init)  # pyfunc: text → label
        log.info("finetune %s/%s: best val accuracy %.3f", task.name, init, summary["best_val_accuracy"])
    return summary
