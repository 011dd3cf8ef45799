"""lmforge.interrupt: a signal stops work at once, except inside a training loop, which it asks to
stop at its step's end; a second signal stops at once (the processes: tests/test_resume.py)."""

import signal

import pytest

from lmforge import interrupt
from lmforge.interrupt import Interrupted


@pytest.fixture
def handlers():
    """lmforge's handlers for the test, pytest's back after it, and a fresh state."""
    saved = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    interrupt.STATE.received, interrupt.STATE.where = None, ""
    interrupt.install()
    yield
    for s, h in saved.items():
        signal.signal(s, h)
    interrupt.STATE.received, interrupt.STATE.where = None, ""


@pytest.mark.parametrize("signum", interrupt.SIGNALS)
def test_outside_training_a_signal_stops_at_once(handlers, signum):
    with pytest.raises(Interrupted) as e:
        signal.raise_signal(signum)
    assert e.value.signum == signum and e.value.exit_status == 128 + signum
    assert str(e.value) == signal.Signals(signum).name


def test_in_training_a_signal_stops_at_the_step_end_and_a_second_at_once(handlers):
    steps = []
    with pytest.raises(Interrupted) as e:
        with interrupt.stop_at_step_end():
            signal.raise_signal(signal.SIGTERM)
            steps.append("the step goes on")  # what StopOnSignal sees at the step's end
            assert interrupt.received() == signal.SIGTERM
            interrupt.STATE.where = "at step 7 (checkpoint last.ckpt)"
    assert steps and str(e.value) == "SIGTERM at step 7 (checkpoint last.ckpt)"

    interrupt.STATE.received = None
    with pytest.raises(Interrupted) as e:
        with interrupt.stop_at_step_end():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # impatient: no step end awaited
            steps.append("never")
    assert steps == ["the step goes on"] and e.value.signum == signal.SIGINT


def test_lightnings_own_stop_on_sigterm_becomes_interrupted(handlers):
    """Lightning ends a fit on SIGTERM with its SystemExit subclass; unrelated exits pass through."""
    with pytest.raises(Interrupted):
        with interrupt.stop_at_step_end():
            signal.raise_signal(signal.SIGTERM)
            raise SystemExit  # as lightning's SIGTERMException
    interrupt.STATE.received = None
    with pytest.raises(SystemExit) as e:
        with interrupt.stop_at_step_end():
            raise SystemExit(3)
    assert e.value.code == 3
