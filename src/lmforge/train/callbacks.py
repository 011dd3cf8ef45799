"""Callbacks: throughput and model-FLOPs utilisation, measured against a peak measured here."""

from __future__ import annotations

import time

import lightning as L
import torch

_PEAK_CACHE: dict[tuple[str, str], float] = {}


def measure_matmul_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int = 1024) -> float:
    """FLOP/s of a square matmul on this device and dtype: the MFU denominator (best of a few)."""
    key = (str(device), str(dtype))
    if key not in _PEAK_CACHE:
        device = torch.device(device)
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        for _ in range(2):
            a @ b
        sync()
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(4):
                a @ b
            sync()
            best = min(best, (time.perf_counter() - t) / 4)
        _PEAK_CACHE[key] = 2 * n**3 / best
    return _PEAK_CACHE[key]


def precision_dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if "bf16" in str(precision) else torch.float16 if "16" in str(precision) else torch.float32


class Throughput(L.Callback):
    """Logs tokens/s and MFU of each optimizer step; keeps a steady-state mean for the summary.

    `flops_per_token` is the model's training FLOPs per token; `peak_flops` the device's measured
    matmul rate in the training precision.
    """

    def __init__(self, tokens_per_batch: int, flops_per_token: float, peak_flops: float, skip_first: int = 3):
        self.tokens_per_batch = tokens_per_batch
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.skip_first = skip_first
        self._t0 = 0.0
        self._seen = 0
        self.tokens = 0
        self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        dt = time.perf_counter() - self._t0
        self._seen += 1
        tps = self.tokens_per_batch * trainer.world_size / dt
        mfu = tps * self.flops_per_token / (self.peak_flops * trainer.world_size)
        if self._seen > self.skip_first:
            self.tokens += self.tokens_per_batch * trainer.world_size
            self.seconds += dt
        pl_module.log_dict({"perf/tokens_per_s": tps, "perf/mfu": mfu}, on_step=True, on_epoch=False)

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
