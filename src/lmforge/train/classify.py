"""Fine-tuning LightningModules: a task model, its loss, validation metric and optimizer."""

from __future__ import annotations

import lightning as L
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy

from lmforge.models.heads import SequenceClassifier
from lmforge.optim import adamw, scheduled


class ClassifierModule(L.LightningModule):
    def __init__(self, model: SequenceClassifier, n_labels: int, lr: float, weight_decay: float,
                 warmup_steps: int, total_steps: int):
        super().__init__()
        self.model = model
        self.n_labels = n_labels
        self.lr, self.weight_decay = lr, weight_decay
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def training_step(self, batch, batch_idx):
        ids, mask, y = batch
        loss = F.cross_entropy(self.model(ids, mask).float(), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        ids, mask, y = batch
        logits = self.model(ids, mask).float()
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        acc = multiclass_accuracy(logits.argmax(-1), y, self.n_labels, average="micro")
        self.log("val/accuracy", acc, prog_bar=True, batch_size=len(y))

    def configure_optimizers(self):
        opt = adamw(self.model, self.lr, self.weight_decay, (0.9, 0.999))
        return scheduled(opt, self.warmup_steps, self.total_steps, 0.0)
