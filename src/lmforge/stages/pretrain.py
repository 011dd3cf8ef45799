"""pretrain: a language model on the packed corpus — setup → fit → save; resumes from its last
checkpoint after a kill.

The backbone is the `model` group's (`lmforge.models`): trained from scratch, or — a checkpoint
that brings its own tokenizer (`model=hf model.pretrained=…`, `model=minilm`) — trained further on
the corpus re-tokenized with it (`data.retokenize`). The objective is `objective.name`: `clm`
(next token) or `mlm` (BERT masking; the native Transformer then runs bidirectionally); the
backbone says which it can do.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from lmforge import interrupt
from lmforge.config import fingerprint, to_container
from lmforge.data.packing import read_meta
from lmforge.data.retokenize import retokenized
from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.errors import ConfigError
from lmforge.fileio import atomic_dir, content_digest, write_json
from lmforge.models import Backbone, check_objective
from lmforge.models import settings as model_settings
from lmforge.saved_model import SavedModel
from lmforge.stages.common import StageContext, log, stage

# Lightning (lmforge.train) is imported where the training starts, once the model's settings have
# checked out (`run`): a mistake in them is answered before its seconds of imports. Here, for annotations only:
if TYPE_CHECKING:
    from lmforge.train.callbacks import History
    from lmforge.train.lm import LMModule, PackedLMData

PARAMS = ("seed", "model", "objective", "optim", "trainer")
# what the run measured about the machine and how it went: reports/runtime/pretrain.json, not the out
RUNTIME = ("tokens_per_s", "mfu", "peak_flops", "threads", "resumed_from_step")


@dataclass
class Setup:
    module: LMModule
    backbone: Backbone
    tokenizer_dir: Path  # the prepare stage's tokenizer, or the checkpoint's own
    tokens_dir: Path  # the packed corpus in that tokenizer's ids
    token_meta: dict


@dataclass
class Fitted:
    summary: dict
    history: History  # every logged scalar by step: the curves
    checkpoint_dir: Path | None  # None: nothing was trained
    state: dict | None = None  # the trained weights, whole (gathered from every process when sharded)


def checked_model(cfg: DictConfig) -> tuple[type[Backbone], Any]:
    """The backbone class of the model group and its checked settings, which the objective must suit."""
    cls, model = model_settings(cfg.model)
    check_objective(cls, model, cfg.objective.name, f"model={cfg.model.get('name') or cls.arch}")
    return cls, model


def setup(ctx: StageContext) -> Setup:
    """The backbone the model group describes, under its LM head, and the corpus in its tokenizer."""
    from lmforge.train.lm import LMModule

    cfg, paths = ctx.cfg, ctx.paths
    objective = cfg.objective.name
    cls, model = checked_model(cfg)
    own = cls.tokenizer_dir(model)
    if own:  # the checkpoint's tokenizer: the corpus re-tokenized with it once
        tokenizer_dir, tokens_dir = own, retokenized(paths.tokens, paths.tokenizer, own, paths.cache / "tokens")
    else:
        tokenizer_dir, tokens_dir = paths.tokenizer, paths.tokens
    token_meta = read_meta(tokens_dir)
    model = replace(model, vocab_size=token_meta["vocab_size"], pad_id=token_meta["pad_id"], causal=objective == "clm")
    if cfg.trainer.block_size > model.max_len:
        raise ConfigError(
            f"trainer.block_size={cfg.trainer.block_size} exceeds model.max_len={model.max_len}: "
            "lower the block size or raise the model's max_len"
        )
    backbone = cls.create(model)
    ctx.record("model", {k: getattr(backbone.cfg, k) for k in ("vocab_size", "pad_id", "causal")})  # derived
    module = LMModule(backbone, cfg.optim, cfg.trainer.max_steps, objective=objective)
    return Setup(module, backbone, tokenizer_dir, tokens_dir, token_meta)


def batch_maker(objective: Any, tokenizer_dir: Path, vocab_size: int):
    """How windows become batches: next-token pairs (clm) or BERT masking (mlm)."""
    from lmforge.train.lm import MLMMasker, next_token_pairs

    if objective.name == "clm":
        return next_token_pairs
    ids = special_ids(load_tokenizer(tokenizer_dir))
    if "mask" not in ids:
        raise ConfigError(f"objective=mlm: the tokenizer in {tokenizer_dir} has no mask token")
    return MLMMasker(ids["mask"], vocab_size, list(ids.values()), objective.mask_prob)


def checkpoint_dir(ctx: StageContext, s: Setup) -> Path:
    """Where pretraining checkpoints live: outside DVC's outputs, keyed by everything that shapes
    the run (the stage's settings and the content of the tokens and tokenizer it reads)."""
    settings = {name: to_container(ctx.cfg)[name] for name in PARAMS}
    return ctx.paths.checkpoints / "pretrain" / fingerprint(settings, content_digest(s.tokens_dir, s.tokenizer_dir))


def measure(ctx: StageContext, s: Setup, data: PackedLMData) -> Fitted:
    """A checkpoint taken as it is (`Backbone.trains` says no): no training, only its loss on the
    corpus's validation windows, so the report still says how well it models the corpus."""
    from lmforge.train.callbacks import History
    from lmforge.train.trainer import compute_device, make_trainer, precision_of

    history = History(sink=ctx.run.log_metrics)
    trainer = make_trainer(
        ctx.cfg.trainer,
        callbacks=[history],
        progress=ctx.cfg.progress,
        limit_val_batches=ctx.cfg.trainer.limit_val_batches,
    )
    val_loss = float(trainer.validate(s.module, datamodule=data, verbose=False)[0]["val/loss"])
    log.info(
        "pretrain: %s is taken as it is (no training steps; model.continue_pretraining=true trains it)",
        getattr(s.backbone.cfg, "pretrained", s.backbone.arch),
    )
    return Fitted(
        {
            "val_loss": val_loss,
            "val_ppl": math.exp(min(val_loss, 50.0)),
            "steps": 0,
            "n_params": s.backbone.num_params(),
            "arch": s.backbone.arch,
            "objective": ctx.cfg.objective.name,
            "pretrained_from": getattr(s.backbone.cfg, "pretrained", None),
            "resumed_from_step": 0,
            "tokens_per_s": 0.0,
            "mfu": 0.0,
            "peak_flops": 0.0,
            "device": compute_device(ctx.cfg.trainer.accelerator),
            "precision": precision_of(ctx.cfg.trainer),
        },
        history,
        None,
    )


def fit(ctx: StageContext, s: Setup) -> Fitted:
    """Train (resuming from the last checkpoint of the same work) and validate."""
    from lmforge.train.callbacks import History, Throughput, measure_matmul_peak, precision_dtype
    from lmforge.train.lm import PackedLMData
    from lmforge.train.trainer import (
        StepCheckpoint,
        StopOnSignal,
        check_checkpoint,
        compute_device,
        latest_checkpoint,
        make_trainer,
        pin_threads,
        precision_of,
    )

    trainer_cfg = ctx.cfg.trainer
    if trainer_cfg.compile:  # in place: parameter names (checkpoints, safetensors) stay the same
        s.module.backbone.compile()  # the LM head's loss (models/lm_loss.py) stays eager
    data = PackedLMData(
        s.tokens_dir,
        s.token_meta["dtype"],
        trainer_cfg.batch_size,
        trainer_cfg.block_size,
        trainer_cfg.accumulate_grad_batches,
        trainer_cfg.limit_val_batches,
        ctx.cfg.seed,
        make=batch_maker(ctx.cfg.objective, s.tokenizer_dir, s.backbone.cfg.vocab_size),
    )
    if not type(s.backbone).trains(s.backbone.cfg):
        ctx.run.begin()
        return measure(ctx, s, data)
    ckpt_dir = checkpoint_dir(ctx, s)
    resume = latest_checkpoint(ckpt_dir)
    resumed_step = check_checkpoint(resume, s.module) if resume else 0
    ctx.run.begin()  # the inputs checked out: the work (and its MLflow run) begins
    ctx.run.resumes(ckpt_dir.name)
    threads = pin_threads(ckpt_dir, resuming=resume is not None)
    if resume:
        log.info("resuming from %s (step %d)", resume, resumed_step)

    device = compute_device(trainer_cfg.accelerator)
    precision = precision_of(trainer_cfg)
    peak = measure_matmul_peak(device, precision_dtype(precision))
    throughput = Throughput(
        trainer_cfg.batch_size * trainer_cfg.block_size, s.backbone.flops_per_token(trainer_cfg.block_size), peak
    )
    history = History(sink=ctx.run.log_metrics)
    callbacks = [
        throughput,
        history,
        # no monitor: the top-1 checkpoint is the newest, and last.ckpt links to it (one write, not two)
        StepCheckpoint(
            dirpath=ckpt_dir,
            filename="{step}",
            every_n_train_steps=trainer_cfg.checkpoint_every_n_steps,
            val_every=trainer_cfg.val_check_interval,
            save_last="link",
            save_top_k=1,
            enable_version_counter=False,
        ),
        StopOnSignal(ckpt_dir),
    ]
    trainer = make_trainer(
        trainer_cfg,
        callbacks=callbacks,
        progress=ctx.cfg.progress,
        max_steps=trainer_cfg.max_steps,
        max_time=trainer_cfg.max_time,
        val_check_interval=trainer_cfg.val_check_interval,
        check_val_every_n_epoch=None,
        limit_val_batches=trainer_cfg.limit_val_batches,
        max_epochs=-1,
    )
    with interrupt.stop_at_step_end():
        trainer.fit(s.module, datamodule=data, ckpt_path=str(resume) if resume else None)
    final = trainer.validate(s.module, datamodule=data, verbose=False)[0]
    val_loss = float(final["val/loss"])
    # every process takes part: a sharded strategy (FSDP) gathers the whole weights for rank 0
    state = {k.removeprefix("model."): v for k, v in trainer.strategy.lightning_module_state_dict().items()}
    return Fitted(
        {
            "val_loss": val_loss,
            "val_ppl": math.exp(min(val_loss, 50.0)),
            "steps": trainer.global_step,
            "n_params": s.backbone.num_params(),
            "arch": s.backbone.arch,
            "objective": ctx.cfg.objective.name,
            "pretrained_from": getattr(s.backbone.cfg, "pretrained", None),
            "resumed_from_step": resumed_step,
            "tokens_per_s": throughput.tokens_per_s,
            "mfu": throughput.mfu,
            "peak_flops": peak,
            "device": device,
            "precision": precision,
            "threads": threads,
        },
        history,
        ckpt_dir,
        state,
    )


def save(ctx: StageContext, s: Setup, fitted: Fitted) -> None:
    """The model directory, curves and summary, in one atomic write (the main process only)."""
    paths = ctx.paths
    with atomic_dir(paths.pretrain) as tmp:
        SavedModel(
            kind="language_model",
            backbone=s.backbone.spec(),
            objective=ctx.cfg.objective.name,
            model=to_container(ctx.cfg)["model"],
        ).save(tmp / "model", fitted.state or s.module.model.state_dict(), s.tokenizer_dir, s.backbone.cfg.max_len)
        fitted.history.write_csv(tmp / "curves" / "train.csv", "train/loss", "train/lr")
        fitted.history.write_csv(tmp / "curves" / "val.csv", "val/loss")
        summary = fitted.summary
        write_json(tmp / "summary.json", {k: v for k, v in summary.items() if k not in RUNTIME})
        # tracked from what this process wrote, before it is renamed into place
        ctx.run.log_artifact(tmp / "model", "model")
        ctx.run.log_artifact(tmp / "curves", "curves")
        causal = s.backbone.cfg.causal
        ctx.run.register_model(
            tmp / "model",
            "LanguageModel" if causal else None,
            {"inputs": ["text"], "output": "perplexity", "output_type": "double"} if causal else None,
        )
    if fitted.checkpoint_dir and not ctx.cfg.trainer.keep_checkpoints:
        shutil.rmtree(fitted.checkpoint_dir, ignore_errors=True)
    ctx.record_runtime("pretrain", **{k: summary[k] for k in RUNTIME if k in summary})
    ctx.run.log_metrics(
        {"final/" + k: v for k, v in summary.items() if isinstance(v, (int, float))} | {"final/wall_s": ctx.elapsed()}
    )


def run(cfg: DictConfig) -> dict:
    if not cfg.get("params_file"):  # before the store opens and Lightning loads (a DVC run checks in `setup`)
        checked_model(cfg)
    with stage(cfg, "pretrain", PARAMS) as ctx:
        s = setup(ctx)
        fitted = fit(ctx, s)
        summary = fitted.summary
        if ctx.is_main:
            save(ctx, s, fitted)
            log.info(
                "pretrain: val loss %.3f, ppl %.1f, %.0f tokens/s, MFU %.1f%%",
                summary["val_loss"],
                summary["val_ppl"],
                summary["tokens_per_s"],
                100 * summary["mfu"],
            )
    return summary
