"""Ctrl-C and SIGTERM that cannot be lost. Python raises a signal's exception at whatever bytecode
the main thread is running; when that is a finalizer (a `Popen.__del__`, a temporary folder's
cleanup, a file closed by the garbage collector), the exception is printed as "Exception ignored"
and swallowed, and the run goes on measuring as if nothing had been asked. The handlers here also
note the signal, and every wait on a worker calls `raise_if_interrupted()`, which raises it again
until the run's top level has seen it (`clear()`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_pending: type[BaseException] | None = None


def note_and_raise(exception: type[BaseException]) -> None:
    """Remember `exception` for the next checkpoint, and raise it now."""
    global _pending
    _pending = exception
    raise exception()


def raise_if_interrupted() -> None:
    """Raise the signal's exception again if one arrived and was swallowed on the way up."""
    if _pending is not None:
        raise _pending()


def clear() -> None:
    """The run's top level has handled the signal."""
    global _pending
    _pending = None


@contextmanager
def signals_raise(on_sigterm: type[BaseException]) -> Iterator[None]:
    """While the block runs, SIGINT raises KeyboardInterrupt and SIGTERM `on_sigterm`, each noted for
    `raise_if_interrupted` (only the main thread can handle signals: elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        note_and_raise(KeyboardInterrupt)

    def terminate(signum: int, frame: FrameType | None) -> None:
        note_and_raise(on_sigterm)

    clear()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, terminate)}
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job started with Ctrl-C ignored
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
