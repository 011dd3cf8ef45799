"""Fine-tuning LightningModule for every task family: the family computes the loss and its cheap
validation score (`val/<family.val_metric>`, what checkpointing and early stopping watch).

Validation loss and score are torchmetrics `MeanMetric`s weighted by what each batch scores
(`tasks.base.Validation`: examples, tags, windows, target tokens or entities), so under data
parallelism they are reduced across processes into exactly the single-process value.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torchmetrics import MeanMetric

from lmforge.optim import FusedClipping, adamw, fused_ok, scheduled
from lmforge.tasks.base import loader, per_device


class TaskData(L.LightningDataModule):
    """A task's training and validation features, batched when Lightning asks — after the
    strategy has started its processes, so each process knows its share of the global batch
    (`tasks.base.LengthGrouped`); validation batches are split the same way."""

    def __init__(self, train: list[dict], validation: list[dict], batch_size: int, pad_id: int, seed: int, key: str):
        super().__init__()
        self.train, self.validation = train, sorted(validation, key=lambda f: len(f["input_ids"]))  # less padding
        self.batch_size, self.pad_id, self.seed, self.key = batch_size, pad_id, seed, key

    def train_dataloader(self):
        return loader(self.train, self.batch_size, self.pad_id, shuffle=True, seed=self.seed)

    def val_dataloader(self):
        return loader(self.validation, per_device(self.batch_size, self.key), self.pad_id, shuffle=False, shard=True)


class EpochPosition(L.Callback):
    """Where fine-tuning stands within its epoch, kept in its checkpoints with torch's generator
    (dropout): a run resumed mid-epoch leaves out the batches of that epoch it already trained on
    (`LengthGrouped.skip`: the order depends only on seed and epoch) and draws the dropout masks the
    uninterrupted run would have drawn, so it ends with the same weights."""

    def __init__(self):
        self.epoch, self.done, self._resume = 0, 0, None

    def on_train_start(self, trainer, pl_module) -> None:
        # (a fit resumed mid-epoch goes on with that epoch: Lightning does not start it again)
        resume, self._resume = self._resume, None
        if resume and resume["epoch"] == trainer.current_epoch and 0 < resume["done"] < trainer.num_training_batches:
            trainer.train_dataloader.sampler.skip = self.done = resume["done"]
            self.epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch, self.done = trainer.current_epoch, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.done += 1

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "done": self.done, "rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self._resume = {"epoch": state["epoch"], "done": state["done"]}
        torch.set_rng_state(state["rng"])


class ResumableEarlyStopping(EarlyStopping):
    """Lightning's early stopping, which a resumed fit obeys: resumed from a checkpoint saved as
    early stopping ended the run (its patience spent), the fit ends there as the uninterrupted run
    did, instead of training another epoch (a checkpoint keeps the callback's count, not the
    trainer's `should_stop`)."""

    def on_train_start(self, trainer, pl_module) -> None:
        if self.wait_count >= self.patience:
            trainer.should_stop = True


class TaskModule(FusedClipping, L.LightningModule):
    def __init__(self, family, model: torch.nn.Module, head: dict, warmup_steps: int, total_steps: int):
        super().__init__()
        self.family = family
        self.model, self.head = model, head
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.val_loss = MeanMetric()
        self.val_score = MeanMetric()

    @property
    def score_key(self) -> str:
        return f"val/{self.family.val_metric}"

    def training_step(self, batch, batch_idx):
        loss = self.family.loss(self.model, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss, loss_weight, hits, out_of = self.family.val_step(self.model, batch, self.head)
        self.val_loss.update(loss.detach().float(), weight=max(loss_weight, 1))
        # a batch with nothing to score (no entity, gold or predicted) weighs nothing
        self.val_score.update(torch.tensor(hits / max(out_of, 1), device=self.device), weight=out_of)
        self.log("val/loss", self.val_loss, prog_bar=True, on_step=False, on_epoch=True)
        self.log(self.score_key, self.val_score, prog_bar=True, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        task_cfg = self.family.config
        fused = fused_ok(self.trainer.precision, self.trainer.strategy)
        opt = adamw(self.model, task_cfg.lr, task_cfg.weight_decay, (0.9, 0.999), fused)
        return scheduled(opt, self.warmup_steps, self.total_steps, 0.0)
