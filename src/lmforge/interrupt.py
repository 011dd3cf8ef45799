"""SIGTERM (`docker stop`, `timeout`, a scheduler's preemption) and SIGINT (Ctrl-C) stop a stage the
way a user of a cluster expects.

A training loop (`stop_at_step_end`) finishes the step it is in; `train.callbacks.StopOnSignal`
saves a checkpoint there and stops the Trainer. Any other work stops at once (outputs are written
atomically, so nothing is left half-written). Either way `Interrupted` reaches the stage: its MLflow
run ends KILLED with the signal named, the app prints one line saying how to resume (the same
command) and exits with 128 + the signal's number. A second signal stops at once.

In a job of the SLURM launcher (submitit), submitit's own handler of the preemption signal (USR2)
requeues the job; `chain_requeue` puts lmforge's in front of it, so that the job first checkpoints
where it stands, then `hand_over` gives the signal to submitit, which requeues it: the requeued
job resumes from that step.
"""

from __future__ import annotations

import os
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


_CHAINED: dict[int, object] = {}  # signal -> the handler lmforge's runs before (submitit's requeue)


def chain_requeue() -> None:
    """In a submitit job: stop at the step's end on its preemption signal, checkpoint, then let its
    handler requeue the job (`hand_over`). Elsewhere (nothing handles the signal) a no-op."""
    signum = getattr(signal, f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}", None)
    previous = signal.getsignal(signum) if signum else None
    if callable(previous) and previous is not _handle:
        _CHAINED[signum] = previous
        signal.signal(signum, _handle)


def hand_over(signum: int) -> None:
    """Give `signum` to the handler `chain_requeue` put lmforge's in front of (it requeues the job
    and exits); nothing when there is none."""
    if (previous := _CHAINED.get(signum)) is not None:
        previous(signum, None)


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
