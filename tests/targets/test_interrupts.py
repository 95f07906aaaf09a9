"""A Ctrl-C or SIGTERM that Python swallows (raised inside a finalizer, printed as "Exception
ignored") is raised again at the next wait on a worker, so a run can never go on measuring after
it was asked to stop; and a process a run started and lost track of is killed as the run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from targets import interrupts
from targets.interrupts import raise_if_interrupted, signals_raise
from targets.runners.processes import no_child_left


class _Terminated(KeyboardInterrupt):
    pass


class _SignalsItselfWhenCollected:
    def __init__(self, number: int) -> None:
        self.number = number

    def __del__(self) -> None:
        os.kill(os.getpid(), self.number)
        for _ in range(10_000):  # the handler runs at one of these bytecodes, inside the finalizer
            pass


@pytest.mark.parametrize(("number", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, _Terminated)])
def test_a_signal_swallowed_by_a_finalizer_is_raised_again_at_the_next_checkpoint(number, raised, monkeypatch):
    swallowed: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: swallowed.append(unraisable.exc_type))
    reached = False
    # the disposition a terminal gives: a suite started from a background job has SIGINT ignored, and
    # signals_raise rightly leaves an ignored SIGINT ignored
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with signals_raise(on_sigterm=_Terminated):
            _SignalsItselfWhenCollected(number)  # collected at once: the exception cannot leave __del__
            reached = True
            with pytest.raises(raised):
                raise_if_interrupted()
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
    interrupts.clear()
    assert reached and swallowed == [raised]  # the window is real: Python printed it and went on
    raise_if_interrupted()  # cleared: nothing pending


def test_without_a_signal_the_checkpoint_does_nothing_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with signals_raise(on_sigterm=_Terminated):
        raise_if_interrupted()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_child_the_run_lost_track_of_is_killed_when_it_ends():
    lost: list[int] = []
    with no_child_left():
        # as if a Ctrl-C had landed inside Popen: the process runs, nobody holds it
        lost.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]).pid)
    assert not psutil.pid_exists(lost[0]) or psutil.Process(lost[0]).status() == psutil.STATUS_ZOMBIE
