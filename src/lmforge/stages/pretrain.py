"""pretrain: a causal Transformer LM on the packed corpus; resumes from its last checkpoint."""

from __future__ import annotations

import math

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from lmforge import __version__
from lmforge.config import fingerprint, to_container
from lmforge.data.packing import read_meta
from lmforge.fileio import atomic_dir, write_json
from lmforge.models.io import write_model_dir
from lmforge.models import backbone_spec
from lmforge.stages.common import log, stage
from lmforge.train.callbacks import History, Throughput, measure_matmul_peak, precision_dtype
from lmforge.train.lm import LMModule, PackedLMData
from lmforge.train.trainer import check_checkpoint, latest_checkpoint, make_trainer


def compute_device(accelerator: str) -> str:
    return "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"


def run(cfg: DictConfig) -> dict:
    t, m = cfg.trainer, cfg.model
    with stage(cfg, "pretrain") as run:
        p = run.paths
        meta = read_meta(p.tokens)
        spec = backbone_spec(to_container(m), vocab_size=meta["vocab_size"], pad_id=meta["pad_id"], causal=True)
        module = LMModule(spec, dict(cfg.optim), t.max_steps)
        data = PackedLMData(p.tokens, meta["dtype"], t.batch_size, t.block_size,
                            t.accumulate_grad_batches, t.limit_val_batches, cfg.seed)

        # checkpoints live outside DVC's outputs, keyed by everything that shapes the run
        ckpt_dir = p.checkpoints / "pretrain" / fingerprint(
            cfg, "seed", "data", "tokenizer", "model", "objective", "optim", "trainer")
        resume = latest_checkpoint(ckpt_dir)
        resumed_step = check_checkpoint(resume, module) if resume else 0
        if resume:
            log.info("resuming from %s (step %d)", resume, resumed_step)

        device = compute_device(t.accelerator)
        peak = measure_matmul_peak(device, precision_dtype(t.precision))
        throughput = Throughput(t.batch_size * t.block_size, module.backbone.flops_per_token(t.block_size), peak)
        history = History()
        callbacks = [
            throughput, history,
            ModelCheckpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=t.checkpoint_every_n_steps,
                            save_last=True, save_top_k=1, enable_version_counter=False),
        ]
        trainer = make_trainer(t, callbacks=callbacks, logger=run.lightning_logger(), max_steps=t.max_steps,
                               max_time=t.max_time, val_check_interval=t.val_check_interval,
                               check_val_every_n_epoch=None, limit_val_batches=t.limit_val_batches,
                               max_epochs=-1)
        trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume else None)
        final = trainer.validate(module, datamodule=data, verbose=False)[0]

        val_loss = float(final["val/loss"])
        summary = {
            "val_loss": val_loss,
            "val_ppl": math.exp(min(val_loss, 50.0)),
            "tokens_per_s": throughput.tokens_per_s,
            "mfu": throughput.mfu,
            "peak_flops": peak,
            "steps": trainer.global_step,
            "n_params": module.backbone.num_params(),
            "device": device,
            "precision": t.precision,
            "resumed_from_step": resumed_step,
        }
        with atomic_dir(p.pretrain) as tmp:
            write_model_dir(tmp / "model", module.model, {
                "lmforge_version": __version__, "kind": "causal_lm", "objective": cfg.objective.name,
                "backbone": spec,
            }, p.tokenizer)
            history.write_csv(tmp / "curves" / "train.csv", "train/loss")
            history.write_csv(tmp / "curves" / "val.csv", "val/loss")
            summary["wall_s"] = run.elapsed()
            write_json(tmp / "summary.json", summary)
        run.log_metrics({"final/" + k: v for k, v in summary.items() if isinstance(v, (int, float))})
        run.log_artifact(p.pretrain / "model", "model")
        run.log_artifact(p.pretrain / "curves", "curves")
        log.info("pretrain: val loss %.3f, ppl %.1f, %.0f tokens/s, MFU %.1f%%",
                 val_loss, summary["val_ppl"], summary["tokens_per_s"], 100 * summary["mfu"])
    return summary
