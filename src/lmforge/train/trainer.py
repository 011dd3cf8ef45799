"""The Lightning Trainer from config, checkpoints that hold a step's validation, a checkpoint where
a signal stops training, a full disk named in one line, and resume that survives a damaged checkpoint."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lmforge import interrupt
from lmforge.fileio import write_fault, write_text
from lmforge.host import auto_precision
from lmforge.models import check_state

log = logging.getLogger("lmforge")


def compute_device(accelerator: str) -> str:
    return "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"


def precision_of(trainer_cfg: Any) -> str:
    """The precision a run trains in: `trainer.precision`, `auto` resolved for the device."""
    if trainer_cfg.precision != "auto":
        return trainer_cfg.precision
    return auto_precision(compute_device(trainer_cfg.accelerator))


def make_trainer(trainer_cfg: Any, *, callbacks: list, progress: bool = True, **overrides) -> L.Trainer:
    """A Trainer from the `trainer` settings (`config.TrainerConfig`). lmforge's samplers shard data
    by rank themselves (global batches, see `train.lm` and `tasks.base.LengthGrouped`); logging goes
    through the `History` callback, not a Lightning logger."""
    kwargs = dict(
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        num_nodes=trainer_cfg.num_nodes,
        strategy=trainer_cfg.strategy,
        precision=precision_of(trainer_cfg),
        gradient_clip_val=trainer_cfg.gradient_clip_val,
        accumulate_grad_batches=trainer_cfg.accumulate_grad_batches,
        log_every_n_steps=trainer_cfg.log_every_n_steps,
        enable_progress_bar=progress,
        enable_model_summary=False,
        logger=False,
        callbacks=callbacks,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        plugins=[CheckpointWriter()],
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


class CheckpointWriter(TorchCheckpointIO):
    """Lightning's checkpoint writer, with a full disk or a folder this user may not write named in
    one line (torch words a short write as a RuntimeError about stream positions) and the partial
    file removed, so that resume never meets it."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        try:
            super().save_checkpoint(checkpoint, path, storage_options)
        except Exception as e:
            if (fault := write_fault(e, Path(path))) is None:
                raise
            Path(path).unlink(missing_ok=True)
            raise fault from None


class StepCheckpoint(ModelCheckpoint):
    """Saves every `every_n_train_steps` steps; at a step that is also validated, after that
    validation, so the checkpoint holds its result (Lightning saves before it)."""

    def __init__(self, *, val_every: int, **kwargs: Any):
        super().__init__(**kwargs)
        self._val_every = val_every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self._val_every == 0:
            return  # saved in on_validation_end
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer, pl_module) -> None:
        step = trainer.global_step
        # (in fit's validation loop `trainer.training` is False: `_should_skip_saving_checkpoint`
        # tells fit's validation from a standalone `trainer.validate`)
        if (
            step == 0
            or step % self._val_every
            or step % self._every_n_train_steps
            or self._should_skip_saving_checkpoint(trainer)
        ):
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)


class StopOnSignal(Checkpoint):
    """After a SIGTERM or SIGINT (`lmforge.interrupt`): at the end of the step it arrived in, save
    the resume checkpoint (`last.ckpt` in `ckpt_dir`, replaced atomically) and stop the fit
    (`Interrupted`). A step whose end validates (an epoch's last, every `val_check_interval`) first
    runs its validation, and the checkpoint is saved where Lightning saves its own after one: at the
    validation's end, or at the epoch's end when the epoch ends there (a run resumed from a checkpoint
    saved ahead of a pending validation leaves that validation out). As a `Checkpoint` callback it
    runs after every other callback and after the checkpoint callbacks listed before it, so the best
    checkpoint and early stopping have counted that validation in the state it saves. A signal that
    arrives during a validation (the run's last included) stops at that validation's end in the same
    way, so the resumed run neither trains nor validates again what was done. In a multi-process run
    the ranks agree first: a signal to any of them stops all."""

    def __init__(self, ckpt_dir: Path):
        self.ckpt_dir = Path(ckpt_dir)
        self._stop_after: str | None = None  # "validation" or "epoch": a stop waits for its end

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning has put its own SIGTERM handler in front of lmforge's by now; under DDP it
        # broadcasts from inside the handler, out of step with the collectives the ranks are in,
        # and they hang. lmforge's only sets a flag, which the ranks agree on at a step's end.
        interrupt.install()

    @staticmethod
    def _signalled(trainer) -> bool:
        """A signal has reached this process or, under DDP, any rank (every rank must ask)."""
        stop = interrupt.received() is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        return stop and not trainer.should_stop

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._signalled(trainer):
            return
        loop = trainer.fit_loop.epoch_loop
        if loop._should_check_val_fx(trainer.fit_loop._data_fetcher):  # (the same on every rank)
            self._stop_after = "epoch" if loop.batch_progress.is_last_batch else "validation"
            return
        self._stop(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._stop_after is None and not trainer.sanity_checking and self._signalled(trainer):
            # the signal came during the validation
            last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
            self._stop_after = "epoch" if last_batch else "validation"
        if self._stop_after == "validation":
            self._stop(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._stop_after == "epoch":
            self._stop(trainer)

    def _stop(self, trainer) -> None:
        last, tmp = self.ckpt_dir / "last.ckpt", self.ckpt_dir / f".last.ckpt.{os.getpid()}"
        trainer.save_checkpoint(tmp, weights_only=False)  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, last)  # replaces a link to the newest step checkpoint, not its target
        interrupt.STATE.where = f"at step {trainer.global_step} (checkpoint {last})"
        # stop here: going on would run the next step (or the epoch's end: its checkpoints would
        # overwrite this one). A rank stopped by another's signal has none of its own: it reports
        # the preemption's.
        raise interrupt.Interrupted(interrupt.received() or signal.SIGTERM, interrupt.STATE.where)


def _readable(ckpt: Path) -> dict | None:
    try:
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, garbage, not a torch file
        log.warning("checkpoint %s cannot be read (%s: %s)", ckpt, type(e).__name__, str(e).splitlines()[0][:200])
        return None
    if not isinstance(saved, dict) or "state_dict" not in saved or "global_step" not in saved:
        log.warning("checkpoint %s is not a Lightning checkpoint", ckpt)
        return None
    return saved


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint to resume from: `last.ckpt` when it reads, else the newest other one that
    does; a damaged one is moved aside (`*.corrupt`, with a warning) so it never blocks a re-run."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    last = ckpt_dir / "last.ckpt"
    candidates = ([last] if last.exists() else []) + sorted(
        (p for p in ckpt_dir.glob("*.ckpt") if p.name != "last.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for ckpt in candidates:
        if ckpt.is_symlink() and not ckpt.exists():
            continue
        if _readable(ckpt) is not None:
            return ckpt
        aside = ckpt.with_name(ckpt.name + f".corrupt-{os.getpid()}")
        os.replace(ckpt, aside)
        log.warning("moved the damaged checkpoint aside to %s; resuming from an earlier one, or from the start", aside)
    return None


def pin_threads(ckpt_dir: Path, resuming: bool) -> int:
    """torch's threads for the work of `ckpt_dir`: a resumed run takes the count its checkpoints were
    trained with, so it ends with the uninterrupted run's weights (the count changes a float sum's
    last bits, see `lmforge.host`); a new run records its own. Returns the count."""
    path = Path(ckpt_dir) / "threads"
    if resuming and path.is_file():
        try:
            torch.set_num_threads(max(1, int(path.read_text())))
        except ValueError:
            log.warning(
                "%s is damaged: resuming with %d threads (the weights may differ in their last bits)",
                path,
                torch.get_num_threads(),
            )
    else:
        write_text(path, str(torch.get_num_threads()))
    return torch.get_num_threads()


def check_checkpoint(ckpt: Path, module: torch.nn.Module) -> int:
    """Fail before training if a checkpoint's tensors do not fit `module` (another model or shape);
    return the checkpoint's global step."""
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    check_state(module.state_dict(), saved["state_dict"], ckpt, f"remove {Path(ckpt).parent} to train from the start")
    return int(saved["global_step"])
