"""Fine-tuning LightningModule for every task family: the family computes the loss and the
validation accuracy (`val/accuracy`, what checkpointing and early stopping watch)."""

from __future__ import annotations

import lightning as L
import torch

from lmforge.optim import adamw, scheduled


class TaskModule(L.LightningModule):
    def __init__(self, family, model: torch.nn.Module, lr: float, weight_decay: float,
                 warmup_steps: int, total_steps: int):
        super().__init__()
        self.family = family
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self._correct = self._total = 0

    def training_step(self, batch, batch_idx):
        loss = self.family.loss(self.model, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def on_validation_epoch_start(self):
        self._correct = self._total = 0

    def validation_step(self, batch, batch_idx):
        loss, correct, total = self.family.val_step(self.model, batch)
        self._correct += correct
        self._total += total
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))

    def on_validation_epoch_end(self):
        acc = self._correct / max(self._total, 1)
        self.log("val/accuracy", torch.tensor(acc, dtype=torch.float32), prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        opt = adamw(self.model, self.lr, self.weight_decay, (0.9, 0.999))
        return scheduled(opt, self.warmup_steps, self.total_steps, 0.0)
