"""How a serving process takes its stop signals (serving._StopSignals), in this process with real signals."""
import os
import signal

import pytest

from ufdl_pyramid import serving


@pytest.fixture
def stops():
    kept = {number: signal.getsignal(number) for number in (*serving.STOP_SIGNALS, signal.SIGINT)}
    yield serving._StopSignals()
    for number, handler in kept.items():
        signal.signal(number, handler)


def deliver(number: int) -> None:
    os.kill(os.getpid(), number)  # Python runs the handler at its next instruction, in this (the main) thread


def deliver_quietly(number: int) -> None:
    try:
        deliver(number)
    except (KeyboardInterrupt, SystemExit) as raised:  # fail this test, not the whole session
        pytest.fail(f"signal {number} raised {raised!r}")


def test_the_first_stop_signal_ends_the_loop_and_only_ctrl_c_cuts_the_grace_period_short(stops):
    with pytest.raises(SystemExit):
        deliver(signal.SIGTERM)
    stops.armed = True  # the grace period
    deliver_quietly(signal.SIGTERM)  # systemd's second SIGTERM to a worker: the requests under way keep their answers
    with pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGINT)


def test_a_signal_after_a_phase_is_over_raises_nothing(stops):
    """The code that catches a stop disarms before it leaves its try: a Ctrl-C landing between the end of the
    grace period and the clean-up killed the process (exit -2) with its clean-up cut short."""
    stops.armed = False
    deliver_quietly(signal.SIGINT)
    deliver_quietly(signal.SIGTERM)
    assert stops.received == 2


def test_a_signal_disarms_as_it_raises(stops):
    """So that a second one, landing in the handler of the first, is not raised where nothing catches it."""
    with pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGINT)
    assert not stops.armed
    deliver_quietly(signal.SIGINT)
