"""The CPU cores this process can use now, and torch's intra-op threads set to match.

torch starts one OpenMP thread per physical core, and its threads spin at every barrier. Beside
one other busy process on a 2-core machine, two spinning threads and the other process take turns
on the cores, and a small model's step gets 3-13x slower; one thread on the free core is barely
slower than two on an idle machine. So a stage measures how many cores the rest of the machine
kept busy while it started (from /proc/stat, less this process's own CPU time) and runs on the
cores left, never above torch's own default. `$OMP_NUM_THREADS`, when set, is the user's choice
and is left alone; so is a machine without /proc/stat.

The count is chosen once per run, not followed mid-run: a float sum splits differently over 1 and
2 threads, so the count changes the last bits of the weights. A training run keeps it in its
checkpoint folder and a resumed run takes it from there (`train.trainer.pin_threads`), so that it
ends with the weights the uninterrupted run would have; the summary records it.
"""

from __future__ import annotations

import os
import sys
import time

# the rest of the machine must keep this much of a core busy before lmforge leaves that core to it
BUSY_CORE = 0.35
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (None: no /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    guest = sum(ticks[8:10])  # counted in user and nice already
    return (sum(ticks) - guest - idle) / _TICK


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def process_age() -> float | None:
    """Seconds since this process started (None: no /proc): a stage's fixed cost, when read as its
    work begins."""
    try:
        with open(f"/proc/{os.getpid()}/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / _TICK
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class CoreMeter:
    """Cores the rest of the machine kept busy between two readings."""

    def __init__(self) -> None:
        self.mark()

    def mark(self) -> None:
        self._wall, self._busy, self._own = time.monotonic(), _busy_seconds(), _own_seconds()

    def others_busy(self, min_window_s: float = 0.05) -> float | None:
        """Cores busy with other processes since the last `mark` (None: cannot tell)."""
        busy = _busy_seconds()
        wall = time.monotonic() - self._wall
        if busy is None or self._busy is None or wall < min_window_s:
            return None
        return max(0.0, (busy - self._busy - (_own_seconds() - self._own)) / wall)


def threads_for(others_busy: float, cores: int, default: int) -> int:
    """torch's intra-op threads when other processes keep `others_busy` of `cores` cores busy."""
    taken = int(others_busy + (1 - BUSY_CORE))  # 0.35 of a core busy counts as taken
    return max(1, min(default, cores - taken))


def choose_threads(meter: CoreMeter) -> int | None:
    """Set torch's intra-op threads for the cores the rest of the machine left free since
    `meter`'s mark; None (nothing changed) where the user chose them ($OMP_NUM_THREADS), the load
    cannot be read, or the process does not use torch (has not imported it)."""
    if "OMP_NUM_THREADS" in os.environ or "torch" not in sys.modules:
        return None
    others = meter.others_busy()
    if others is None:
        return None
    import torch

    global DEFAULT_THREADS
    DEFAULT_THREADS = DEFAULT_THREADS or torch.get_num_threads()
    threads = threads_for(others, usable_cores(), DEFAULT_THREADS)
    torch.set_num_threads(threads)
    meter.mark()  # the next run of this process measures from here
    return threads


DEFAULT_THREADS: int | None = None  # torch's own choice, before any change (set on the first call)

# started when lmforge.host is first imported (a stage app imports it before its heavy libraries):
# the first window spans the imports, so a stage's first reading needs no wait of its own
METER = CoreMeter()


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX; Linux's /proc/cpuinfo).
    Without it torch's bf16 matmul takes a reference path: 1.1 GFLOP/s against fp32's 75 on one
    core of an AVX2-only EPYC, where bf16 autocast made pretraining 40x slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def auto_precision(device: str) -> str:
    """`trainer.precision=auto`: bf16 autocast where `device` ("cpu", "cuda") computes bf16 natively,
    else full fp32."""
    if device == "cuda":
        import torch

        return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "32-true"
    return "bf16-mixed" if device == "cpu" and native_bf16_cpu() else "32-true"


def reset_peak_memory() -> None:
    """Start measuring this process's peak resident memory afresh (Linux; elsewhere a no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb() -> float | None:
    """This process's peak resident memory since it started or `reset_peak_memory` (Linux: VmHWM)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
