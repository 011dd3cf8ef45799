"""torch's threads follow the cores that are free: measured on this machine with a real busy
process beside the test, not assumed."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pytest
import torch

from lmforge import host
from lmforge.host import CoreMeter, choose_threads, threads_for, usable_cores
from lmforge.train.trainer import pin_threads


@pytest.mark.parametrize(
    "others, cores, default, threads",
    [
        (0.0, 2, 2, 2),
        (0.2, 2, 2, 2),  # background noise keeps both cores
        (0.5, 2, 2, 1),  # half a core taken by another process: leave it that core
        (1.0, 2, 2, 1),
        (2.7, 2, 2, 1),  # never fewer than one
        (1.0, 16, 8, 8),  # never more than torch's default
        (3.0, 8, 8, 5),
    ],
)
def test_threads_for_the_cores_left(others, cores, default, threads):
    assert threads_for(others, cores, default) == threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_busy_process_takes_a_thread(monkeypatch, restore_threads):
    """A real busy process beside the test leaves lmforge one core fewer (whatever else runs, e.g.
    another pytest worker, can only take more: the test asserts an upper bound)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = usable_cores()
    if cores < 2:
        pytest.skip("needs two cores")
    monkeypatch.setattr(host, "DEFAULT_THREADS", cores)  # torch's default on this machine (tests pin 1)
    meter = CoreMeter()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.1)
        meter.mark()
        time.sleep(0.5)
        threads = choose_threads(meter)
    finally:
        busy.kill()
        busy.wait()
    assert threads is not None and 1 <= threads <= cores - 1 and threads == torch.get_num_threads()


def test_the_users_thread_count_is_left_alone(monkeypatch, restore_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    meter = CoreMeter()
    time.sleep(0.1)
    assert choose_threads(meter) is None


def test_a_resumed_run_takes_the_thread_count_of_its_checkpoints(tmp_path, restore_threads):
    torch.set_num_threads(1)
    assert pin_threads(tmp_path, resuming=False) == 1
    torch.set_num_threads(2)
    assert pin_threads(tmp_path, resuming=True) == 1 == torch.get_num_threads()
    assert pin_threads(tmp_path, resuming=False) == 1  # a new run records its own


@pytest.mark.parametrize(
    "flags, native",
    [
        ("fpu sse2 avx2 fma", False),  # AVX2 only: bf16 matmuls take torch's slow reference path
        ("avx2 avx512f avx512bw avx512_vnni", False),
        ("avx2 avx512f avx512_bf16", True),
        ("avx2 avx512f amx_bf16 amx_tile", True),
        (None, False),  # no /proc/cpuinfo (not Linux): fp32
    ],
)
def test_bf16_is_native_only_with_its_instructions(monkeypatch, flags, native):
    def cpuinfo(path, *args, **kwargs):  # /proc/cpuinfo as a CPU with these flags writes it
        assert path == "/proc/cpuinfo"
        if flags is None:
            raise FileNotFoundError(path)
        return io.StringIO(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\nbugs\t\t: none\n")

    monkeypatch.setattr(host, "open", cpuinfo, raising=False)  # found before the builtin
    assert host.native_bf16_cpu() is native


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_follows_the_hardware_and_a_set_one_is_kept(monkeypatch, native, expected):
    from types import SimpleNamespace

    from lmforge.train.trainer import make_trainer, precision_of

    monkeypatch.setattr(host, "native_bf16_cpu", lambda: native)
    auto = SimpleNamespace(precision="auto", accelerator="cpu")
    assert precision_of(auto) == expected
    assert precision_of(SimpleNamespace(precision="32-true", accelerator="cpu")) == "32-true"
    settings = dict(devices=1, num_nodes=1, strategy="auto", gradient_clip_val=None, accumulate_grad_batches=1)
    trainer = make_trainer(SimpleNamespace(**vars(auto), log_every_n_steps=1, **settings), callbacks=[], progress=False)
    assert trainer.precision == expected
