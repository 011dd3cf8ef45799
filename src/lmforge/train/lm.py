"""Language-model pretraining: the LightningModule and the packed-token DataModule.

Two objectives over the same packed windows: `clm` (predict the next token) and `mlm` (BERT:
15 % of the tokens are chosen, 80 % of those become the mask token, 10 % a random token, 10 %
stay; the loss is taken at the chosen positions only). Masking is drawn from the same
step-indexed generator as the windows, so a resumed run masks exactly as an uninterrupted one.

Batches are global: step i's batch is drawn whole from generator (seed, i), and under data
parallelism each process trains on its contiguous slice of it — N processes with a per-process
batch of B/N see exactly the batches one process with B would.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lmforge.data.packing import TokenFile
from lmforge.errors import ConfigError, DataError
from lmforge.models.heads import IGNORE_INDEX, CausalLM, MaskedLM
from lmforge.optim import FusedClipping, adamw, fused_ok, scheduled


class MLMMasker:
    """BERT masking of windows [B, T+1] → (inputs [B, T], labels [B, T]; IGNORE where not chosen).

    Each ordinary token is chosen with probability `prob` (special tokens never are); a chosen
    token becomes `mask_id` with probability 0.8, a random ordinary token with 0.1, and stays
    with 0.1. At least one token per batch is chosen, so the loss is always defined.
    """

    def __init__(self, mask_id: int, vocab_size: int, special_ids: list[int], prob: float = 0.15):
        if not 0.0 < prob < 1.0:
            raise ValueError(f"objective.mask_prob={prob} must be in (0, 1)")
        self.mask_id, self.prob = mask_id, prob
        self.special = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
        keep = torch.ones(vocab_size, dtype=torch.bool)
        keep[self.special[self.special < vocab_size]] = False
        self.ordinary = keep.nonzero().squeeze(1)  # what a random replacement is drawn from

    def __call__(self, windows: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ids = windows[:, :-1]
        g = torch.Generator().manual_seed(int(rng.integers(1 << 62)))
        maskable = ~torch.isin(ids, self.special)
        chosen = (torch.rand(ids.shape, generator=g) < self.prob) & maskable
        if not chosen.any() and maskable.any():
            chosen.view(-1)[maskable.view(-1).nonzero()[0]] = True
        action = torch.rand(ids.shape, generator=g)
        random_tok = self.ordinary[torch.randint(len(self.ordinary), ids.shape, generator=g)]
        inputs = ids.clone()
        inputs[chosen & (action < 0.8)] = self.mask_id
        swap = chosen & (action >= 0.8) & (action < 0.9)
        inputs[swap] = random_tok[swap]
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
        return inputs, labels


def next_token_pairs(
    windows: torch.Tensor, rng: np.random.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal-LM batch of windows [B, T+1]: inputs [B, T] and the next tokens [B, T]."""
    return windows[:, :-1], windows[:, 1:]


class LMModule(FusedClipping, L.LightningModule):
    """A backbone under its tied LM head, trained with `objective` ("clm" or "mlm"); `optim` is
    the optimiser's settings (`config.OptimConfig`)."""

    def __init__(self, backbone: torch.nn.Module, optim, max_steps: int, objective: str = "clm"):
        super().__init__()
        if objective not in ("clm", "mlm"):
            raise ValueError(f"objective={objective!r} is not one of ['clm', 'mlm']")
        if objective == "mlm" and backbone.cfg.causal:
            raise ValueError("objective=mlm needs a bidirectional backbone (causal=False)")
        self.objective = objective
        self.model = CausalLM(backbone) if objective == "clm" else MaskedLM(backbone)
        self.optim = optim
        self.max_steps = max_steps

    @property
    def backbone(self) -> torch.nn.Module:
        return self.model.backbone

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        hidden = self.backbone(x)
        if self.objective == "mlm":  # the head at the chosen positions only: a fraction of its work
            chosen = y != IGNORE_INDEX
            return self.backbone.lm_loss(hidden[chosen], y[chosen])
        return self.backbone.lm_loss(hidden.flatten(0, 1), y.flatten())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch), prog_bar=True, sync_dist=True)

    def on_validation_epoch_end(self):
        loss = self.trainer.callback_metrics.get("val/loss")
        if loss is not None:
            self.log("val/ppl", math.exp(min(float(loss), 50.0)))

    def configure_optimizers(self):
        o = self.optim
        fused = fused_ok(self.trainer.precision, self.trainer.strategy)
        opt = adamw(self.model, o.lr, o.weight_decay, (o.beta1, o.beta2), fused)
        return scheduled(opt, o.warmup_steps, self.max_steps, o.min_lr_ratio)


def _slice(pair: tuple[torch.Tensor, torch.Tensor], rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = pair[0].shape[0] // world
    return pair[0][rank * n : (rank + 1) * n], pair[1][rank * n : (rank + 1) * n]


class RandomWindows(IterableDataset):
    """Batch i = `batch_size` random windows of a token file, drawn from rng(seed, 0, i) — the
    global batch; process `rank` of `world` yields its contiguous slice of it.

    A batch depends only on its index, so a run resumed at step `start` sees exactly the batches
    an uninterrupted run would have seen. Iterable (no length): the epoch never ends early or twice
    on resume; `max_steps` stops training.
    """

    def __init__(
        self,
        tokens: TokenFile,
        batch_size: int,
        block: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        start: int = 0,
        make=next_token_pairs,
    ):
        if batch_size % world:
            raise ConfigError(
                f"trainer.batch_size={batch_size} is not divisible by the {world} data-parallel "
                "processes (trainer.devices × trainer.num_nodes)"
            )
        self.tokens, self.batch_size, self.block = tokens, batch_size, block
        self.seed, self.rank, self.world, self.start = seed, rank, world, start
        self.make = make  # windows [B, T+1] (+ the batch's rng) → (inputs, targets)

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 0, i])
        w = torch.from_numpy(self.tokens.sample_blocks(self.batch_size, self.block, rng))
        return _slice(self.make(w, rng), self.rank, self.world)

    def __iter__(self):
        i = self.start
        while True:
            yield self.batch(i)
            i += 1


class ConsecutiveWindows(Dataset):
    """Batch j = the j-th run of `batch_size` consecutive, non-overlapping windows (fixed val set);
    process `rank` of `world` takes its slice of each."""

    def __init__(
        self,
        tokens: TokenFile,
        n_batches: int,
        batch_size: int,
        block: int,
        make=next_token_pairs,
        rank: int = 0,
        world: int = 1,
    ):
        self.tokens, self.batch_size, self.block, self.make = tokens, batch_size, block, make
        self.rank, self.world = rank, world
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
        return _slice(self.make(w, np.random.default_rng([j])), self.rank, self.world)  # the same masks each time


class PackedLMData(L.LightningDataModule):
    def __init__(
        self,
        tokens_dir: str | Path,
        dtype: str,
        batch_size: int,
        block_size: int,
        accumulate: int,
        val_batches: int,
        seed: int,
        make=next_token_pairs,
    ):
        super().__init__()
        self.tokens_dir = Path(tokens_dir)
        self.dtype, self.batch_size, self.block = dtype, batch_size, block_size
        self.accumulate, self.val_batches, self.seed = accumulate, val_batches, seed
        self.make = make  # next_token_pairs (clm) or an MLMMasker (mlm)

    def setup(self, stage: str | None = None) -> None:
        self.train_tokens = TokenFile(self.tokens_dir / "train.bin", self.dtype, block_size=self.block)
        self.val_tokens = TokenFile(self.tokens_dir / "val.bin", self.dtype, block_size=self.block)

    def train_dataloader(self) -> DataLoader:
        # the trainer's step is already restored when a resumed fit asks for its data
        start = self.trainer.global_step * self.accumulate
        ds = RandomWindows(
            self.train_tokens,
            self.batch_size,
            self.block,
            self.seed,
            self.trainer.global_rank,
            self.trainer.world_size,
            start,
            self.make,
        )
        return DataLoader(ds, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        val = ConsecutiveWindows(
            self.val_tokens,
            self.val_batches,
            self.batch_size,
            self.block,
            self.make,
            self.trainer.global_rank,
            self.trainer.world_size,
        )
        return DataLoader(val, batch_size=None)
