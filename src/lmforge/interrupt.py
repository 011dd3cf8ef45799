"""SIGTERM (`docker stop`, `timeout`, a scheduler's preemption) and SIGINT (Ctrl-C) stop a stage the
way a user of a cluster expects.

A training loop (`stop_at_step_end`) finishes the step it is in; `train.callbacks.StopOnSignal`
saves a checkpoint there and stops the Trainer. Any other work stops at once (outputs are written
atomically, so nothing is left half-written). Either way `Interrupted` reaches the stage: its MLflow
run ends KILLED with the signal named, the app prints one line saying how to resume (the same
command) and exits with 128 + the signal's number. A second signal stops at once.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A stage stopped by a signal (a BaseException, as KeyboardInterrupt: `except Exception` does
    not swallow it). `where`: how far it got, e.g. the checkpoint it saved."""

    def __init__(self, signum: int, where: str = ""):
        self.signum, self.where = signum, where
        super().__init__(f"{signal.Signals(signum).name}{' ' + where if where else ''}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _State:
    received: int | None = None  # the first signal
    where = ""  # set by whoever stopped gracefully (the checkpoint it saved)
    graceful = 0  # training loops running that stop at their step's end


STATE = _State()


def _handle(signum: int, frame) -> None:
    repeated = STATE.received is not None
    STATE.received = STATE.received or signum
    if not STATE.graceful or repeated:
        raise Interrupted(signum, STATE.where)


def install() -> None:
    """Handle SIGTERM and SIGINT as above (a stage app, in its main thread)."""
    for signum in SIGNALS:
        signal.signal(signum, _handle)


def received() -> int | None:
    return STATE.received


@contextmanager
def stop_at_step_end() -> Iterator[None]:
    """Around a Trainer's fit: a signal only asks it to stop (`StopOnSignal` does), and once it has
    stopped, `Interrupted` is raised here. Lightning ends its fit on SIGTERM itself (a SystemExit
    subclass, after StopOnSignal's checkpoint): that becomes `Interrupted` too."""
    STATE.graceful += 1
    try:
        yield
    except SystemExit:
        if STATE.received is None:
            raise
    finally:
        STATE.graceful -= 1
    if STATE.received is not None:
        raise Interrupted(STATE.received, STATE.where)
