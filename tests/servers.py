"""Real server processes for the tests: free ports, bounded waits, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# what a test's own process may carry but a process it starts must not inherit (a sweep's parent
# run, DVC's context, a developer's tracking server): a test passes what it means explicitly
NOT_INHERITED = (
    "LMFORGE_PARENT_RUN_ID",
    "LMFORGE_SWEEP_KEYS",
    "LMFORGE_TRACKING_URI",
    "DVC_ROOT",
    "DVC_STAGE",
    "DVC_EXP_NAME",
)


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {**e, "PATH": f"{BIN}:{os.environ['PATH']}", **extra}


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we started (bounded), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@contextmanager
def serving(args: list[str], url: str, log: Path, timeout: float = 90, **extra_env: str) -> Iterator[subprocess.Popen]:
    """Start `args` in its own process group, wait until `url` answers 200, stop it on exit."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env(**extra_env), start_new_session=True
        )
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        stop(proc)


def mlflow_server(root: Path, port: int, backend: str | None = None):
    """`mlflow server` on 127.0.0.1:port with artifacts under root, as `make server` runs it: its
    backend store a SQLite file under root, or the database `backend` names (postgresql://...)."""
    root.mkdir(parents=True, exist_ok=True)
    args = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend or f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    return serving(args, f"http://127.0.0.1:{port}/health", root / "server.log")


def signal_at_step(at: int, signum: int, during: str = "step") -> str:
    """A `stage_process` prelude: the training stage sends itself `signum` the moment step `at`
    has trained (`during="step"`: before that step's checkpoint, validation and stop) or in the
    middle of the validation after step `at` (`during="validation"`) — a real signal at a chosen
    moment, not at one a timer guesses."""
    hook = {"step": "on_train_batch_end", "validation": "on_validation_batch_end"}[during]
    return f"""
import os
from lightning.pytorch import Callback
from lmforge.train.trainer import StopOnSignal
_hook, _sent = getattr(StopOnSignal, {hook!r}, None) or getattr(Callback, {hook!r}), []
def {hook}(self, trainer, *args):
    if trainer.global_step == {at} and not trainer.sanity_checking and not _sent:  # once: a second stops at once
        _sent.append(os.kill(os.getpid(), {int(signum)}))
    _hook(self, trainer, *args)
StopOnSignal.{hook} = {hook}
"""


def stage_process(stage: str, args: list[str], root: Path, log: Path, prelude: str = "") -> subprocess.Popen:
    """`python pipelines/<stage>.py <args>` in project `root`, as a user starts it, its output in
    `log` (after running the Python code `prelude` in the same process, when given: what a job
    runner sets up around it). It computes with this process's threads, so that its float sums are
    added in the same order as an in-process run's (a resumed run must end with the same weights)."""
    import torch

    script = Path(__file__).resolve().parents[1] / "pipelines" / f"{stage}.py"
    command = [sys.executable, str(script), *args]
    if prelude:
        run = f"sys.path.insert(0, {str(script.parent)!r}); sys.argv = [{str(script)!r}, *{args!r}]"
        command = [
            sys.executable,
            "-c",
            f"{prelude}\nimport runpy, sys\n{run}\nrunpy.run_path(sys.argv[0], run_name='__main__')",
        ]
    with open(log, "w") as out:
        return subprocess.Popen(
            command,
            env=env(LMFORGE_ROOT=str(root), OMP_NUM_THREADS=str(torch.get_num_threads())),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
