"""Language-model pretraining: the LightningModule and the packed-token DataModule."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lmforge.data.packing import TokenFile
from lmforge.errors import DataError
from lmforge.models.heads import CausalLM
from lmforge.models import build_backbone
from lmforge.optim import adamw, scheduled


class LMModule(L.LightningModule):
    def __init__(self, spec: dict, optim: dict, max_steps: int):
        super().__init__()
        self.model = CausalLM(build_backbone(spec))
        self.optim = optim
        self.max_steps = max_steps

    @property
    def backbone(self) -> torch.nn.Module:
        return self.model.backbone

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch), prog_bar=True)

    def on_validation_epoch_end(self):
        loss = self.trainer.callback_metrics.get("val/loss")
        if loss is not None:
            self.log("val/ppl", math.exp(min(float(loss), 50.0)))

    def configure_optimizers(self):
        o = self.optim
        opt = adamw(self.model, o["lr"], o["weight_decay"], (o["beta1"], o["beta2"]))
        return scheduled(opt, o["warmup_steps"], self.max_steps, o["min_lr_ratio"])


class RandomWindows(IterableDataset):
    """Batch i = `batch_size` random windows of a token file, drawn from rng(seed, rank, i).

    A batch depends only on its index, so a run resumed at step `start` sees exactly the batches
    an uninterrupted run would have seen, and each data-parallel rank sees its own. Iterable
    (no length): the epoch never ends early or twice on resume; `max_steps` stops training.
    """

    def __init__(self, tokens: TokenFile, batch_size: int, block: int, seed: int, rank: int = 0, start: int = 0):
        self.tokens, self.batch_size, self.block = tokens, batch_size, block
        self.seed, self.rank, self.start = seed, rank, start

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, i])
        w = torch.from_numpy(self.tokens.sample_blocks(self.batch_size, self.block, rng))
        return w[:, :-1], w[:, 1:]

    def __iter__(self):
        i = self.start
        while True:
            yield self.batch(i)
            i += 1


class ConsecutiveWindows(Dataset):
    """Batch j = the j-th run of `batch_size` consecutive, non-overlapping windows (fixed val set)."""

    def __init__(self, tokens: TokenFile, n_batches: int, batch_size: int, block: int):
        self.tokens, self.batch_size, self.block = tokens, batch_size, block
        available = (len(tokens) - 1) // (block * batch_size)
        if available < 1:
            raise DataError(
                f"{tokens.path}: {len(tokens)} tokens are too few for one validation batch of "
                f"{batch_size}×{block + 1} tokens; lower trainer.batch_size or trainer.block_size"
            )
        self.n_batches = min(n_batches, available)

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, j: int):
        first = j * self.batch_size
        w = torch.from_numpy(np.stack([self.tokens.block(first + r, self.block) for r in range(self.batch_size)]))
        return w[:, :-1], w[:, 1:]


class PackedLMData(L.LightningDataModule):
    def __init__(self, tokens_dir: str | Path, dtype: str, batch_size: int, block_size: int,
                 accumulate: int, val_batches: int, seed: int):
        super().__init__()
        self.tokens_dir = Path(tokens_dir)
        self.dtype, self.batch_size, self.block = dtype, batch_size, block_size
        self.accumulate, self.val_batches, self.seed = accumulate, val_batches, seed

    def setup(self, stage: str | None = None) -> None:
        self.train_tokens = TokenFile(self.tokens_dir / "train.bin", self.dtype, block_size=self.block)
        self.val_tokens = TokenFile(self.tokens_dir / "val.bin", self.dtype, block_size=self.block)

    def train_dataloader(self) -> DataLoader:
        # the trainer's step is already restored when a resumed fit asks for its data
        start = self.trainer.global_step * self.accumulate
        ds = RandomWindows(self.train_tokens, self.batch_size, self.block, self.seed, self.trainer.global_rank, start)
        return DataLoader(ds, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ConsecutiveWindows(self.val_tokens, self.val_batches, self.batch_size, self.block), batch_size=None)
