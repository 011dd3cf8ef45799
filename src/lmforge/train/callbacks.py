"""Callbacks: throughput and model-FLOPs utilisation, measured against a peak measured here."""

from __future__ import annotations

import time

import lightning as L
import torch

_PEAK_CACHE: dict[tuple[str, str, int], float] = {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int | None = None) -> float:
    """FLOP/s of a square matmul on this device and dtype: the MFU denominator (best of a few).
    n defaults to 1024 on CPU and 8192 on a GPU (small products under-use a GPU)."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 1024)
    key = (str(device), str(dtype), n)
    if key not in _PEAK_CACHE:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        _sync(device)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(4):
                a @ b
            _sync(device)
            best = min(best, (time.perf_counter() - t) / 4)
        _PEAK_CACHE[key] = 2 * n**3 / best
    return _PEAK_CACHE[key]


def precision_dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if "bf16" in str(precision) else torch.float16 if "16" in str(precision) else torch.float32


class Throughput(L.Callback):
    """Logs tokens/s and MFU over windows of `trainer.log_every_n_steps` batches, end to end
    (data loading included; the device is synchronised only at window edges; windows that
    contain a validation are dropped). Keeps the mean for the stage summary.

    `flops_per_token` is the model's training FLOPs per token; `peak_flops` the device's measured
    matmul rate in the training precision.
    """

    def __init__(self, tokens_per_batch: int, flops_per_token: float, peak_flops: float, skip_windows: int = 1):
        self.tokens_per_batch = tokens_per_batch
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.skip_windows = skip_windows  # the first window holds start-up costs
        self._t: float | None = None
        self._batches = 0
        self._windows = 0
        self.tokens = 0
        self.seconds = 0.0

    def _restart(self) -> None:
        self._t, self._batches = None, 0

    def on_train_start(self, trainer, pl_module):
        self._restart()

    def on_validation_end(self, trainer, pl_module):
        self._restart()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._batches += 1
        if self._t is not None and self._batches < trainer.log_every_n_steps:
            return
        _sync(pl_module.device)
        now = time.perf_counter()
        if self._t is not None:
            self._windows += 1
            tokens = self._batches * self.tokens_per_batch * trainer.world_size
            tps = tokens / (now - self._t)
            pl_module.log_dict({"perf/tokens_per_s": tps,
                                "perf/mfu": tps * self.flops_per_token / (self.peak_flops * trainer.world_size)},
                               on_step=True, on_epoch=False)
            if self._windows > self.skip_windows:
                self.tokens += tokens
                self.seconds += now - self._t
        self._t, self._batches = now, 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def mfu(self) -> float:
        return self.tokens_per_s * self.flops_per_token / self.peak_flops if self.peak_flops else 0.0


class History(L.Callback):
    """Records logged scalars per step (train metrics at each logging step, val at each
    validation) so a stage can write its curves as CSV for `dvc plots`."""

    def __init__(self):
        self.rows: dict[str, list[tuple[int, float]]] = {}

    def _take(self, trainer, prefix: str) -> None:
        for k, v in trainer.callback_metrics.items():
            if k.startswith(prefix):
                self.rows.setdefault(k, []).append((trainer.global_step, float(v)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % trainer.log_every_n_steps == 0:
            self._take(trainer, "train/")

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._take(trainer, "val/")

    def write_csv(self, path, key: str) -> None:
        from lmforge.fileio import write_text

        column = key.replace("/", "_")
        write_text(path, f"step,{column}\n" + "".join(f"{s},{v:.6g}\n" for s, v in self.rows.get(key, [])))
