"""Lightning's MLFlowLogger, made unable to stop training: every call to the backend goes through
the owning StageRun's guard, so a tracking server lost mid-run is reported once and skipped."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import MLFlowLogger


class ResilientMLFlowLogger(MLFlowLogger):
    def __init__(self, stage_run: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self._stage_run = stage_run

    def log_hyperparams(self, params: Any) -> None:
        # the StageRun logged the whole resolved config already, losslessly; Lightning would add
        # a second copy with every value cut to 250 characters
        pass

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self._stage_run._guard("log metrics", super().log_metrics, metrics, step)

    def finalize(self, status: str = "success") -> None:
        # the StageRun ends the run (FINISHED/FAILED) when the whole stage is done
        pass

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._stage_run._guard("log checkpoints", super().after_save_checkpoint, checkpoint_callback)
