"""Callbacks: throughput and model-FLOPs utilisation, measured against a peak measured here."""

from __future__ import annotations

import time

import lightning as L
import torch

_PEAK_CACHE: dict[tuple[str, str, int], float] = {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_peak(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int | None = None
) -> float:
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
    contain a validation are dropped). Keeps the mean for the stage summary: over the windows after
    the first `skip_windows` (start-up costs), or over every window when the run was too short to
    have any after them — never 0 for a run that trained.

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
        self.tokens = 0  # after the skipped windows
        self.seconds = 0.0
        self._all_tokens = 0  # every window, the skipped ones and a last partial one included
        self._all_seconds = 0.0

    def _restart(self) -> None:
        self._t, self._batches = None, 0

    def on_train_start(self, trainer, pl_module):
        self._restart()

    def on_validation_end(self, trainer, pl_module):
        self._restart()

    def _close_window(self, trainer, pl_module, log: bool) -> None:
        _sync(pl_module.device)
        now = time.perf_counter()
        if self._t is not None and self._batches:
            self._windows += 1
            tokens, seconds = self._batches * self.tokens_per_batch * trainer.world_size, now - self._t
            if log:
                tps = tokens / seconds
                pl_module.log_dict(
                    {
                        "perf/tokens_per_s": tps,
                        "perf/mfu": tps * self.flops_per_token / (self.peak_flops * trainer.world_size),
                    },
                    on_step=True,
                    on_epoch=False,
                )
            if self._windows > self.skip_windows:
                self.tokens += tokens
                self.seconds += seconds
            self._all_tokens += tokens
            self._all_seconds += seconds
        self._t, self._batches = now, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._batches += 1
        if self._t is not None and self._batches < trainer.log_every_n_steps:
            return
        self._close_window(trainer, pl_module, log=True)

    def on_train_end(self, trainer, pl_module):
        if self._windows <= self.skip_windows:  # a short run: its last partial window counts too
            self._close_window(trainer, pl_module, log=False)

    @property
    def tokens_per_s(self) -> float:
        if self.seconds:
            return self.tokens / self.seconds
        return self._all_tokens / self._all_seconds if self._all_seconds else 0.0

    @property
    def mfu(self) -> float:
        return self.tokens_per_s * self.flops_per_token / self.peak_flops if self.peak_flops else 0.0


class History(L.Callback):
    """Every scalar a stage logs, per step — train and perf metrics at each logging step, val at
    each validation — kept in order and sent as recorded to `sink(metrics, step)` (the stage's
    MLflow run); the stage writes its curves from it (CSV for `dvc plots`).

    Its rows are part of a checkpoint (`state_dict`): a run resumed after a kill restores the history
    up to the checkpoint and sends it to its own run first, so the resumed run's curves hold every
    step from 0, as an uninterrupted run's do."""

    def __init__(self, sink=None):
        self.rows: dict[str, list[tuple[int, float]]] = {}
        self.sink = sink

    def _send(self, metrics: dict[str, float], step: int) -> None:
        if self.sink is not None and metrics:
            self.sink(metrics, step)

    def _take(self, trainer, prefixes: tuple[str, ...]) -> None:
        step = trainer.global_step
        taken = {}
        for k, v in trainer.callback_metrics.items():
            if k.startswith(prefixes):
                rows = self.rows.setdefault(k, [])
                if rows and rows[-1][0] == step:  # validated twice at one step (the final validation)
                    continue
                rows.append((step, float(v)))
                taken[k] = float(v)
        self._send(taken, step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % trainer.log_every_n_steps == 0:
            self._take(trainer, ("train/", "perf/"))

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._take(trainer, ("val/",))

    def state_dict(self) -> dict:
        return {"rows": {k: [list(r) for r in v] for k, v in self.rows.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = {k: [(int(s), float(v)) for s, v in rows] for k, rows in state_dict["rows"].items()}
        by_step: dict[int, dict[str, float]] = {}
        for k, rows in self.rows.items():
            for s, v in rows:
                by_step.setdefault(s, {})[k] = v
        for s in sorted(by_step):
            self._send(by_step[s], s)

    def write_csv(self, path, *keys: str) -> None:
        """step, then one column per key (empty where a key has no value at that step)."""
        from lmforge.fileio import write_text

        steps = sorted({s for k in keys for s, _ in self.rows.get(k, [])})
        values = {k: dict(self.rows.get(k, [])) for k in keys}
        head = "step," + ",".join(k.replace("/", "_") for k in keys)
        body = "".join(
            f"{s}," + ",".join(f"{values[k][s]:.6g}" if s in values[k] else "" for k in keys) + "\n" for s in steps
        )
        write_text(path, head + "\n" + body)
