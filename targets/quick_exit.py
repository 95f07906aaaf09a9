"""Ending a process as soon as its work is done: the exit handlers run and the output is flushed,
but the interpreter's own teardown (freeing every module and object one by one) is skipped. Every
process speedproof runs ends this way: the `speedproof` script (after torch exports the teardown
took 2-14 s), the contained export process (1.2-1.5 s, for every source exported), the user's
data and metric functions' process, the board agent's steps and the measurement workers (0.06-0.26 s
with ONNX Runtime loaded, four per A/B comparison of a fast model)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

# what Python exits with when it cannot flush standard output at exit (a closed pipe)
EXIT_OUTPUT_LOST = 120


def exit_quickly(code: int) -> NoReturn:
    """End the process with `code` after what a normal exit does that matters: the exit handlers
    (`atexit`, `weakref.finalize`) and flushing stdout and stderr. Where another non-daemon thread
    still runs, or this Python has no way to run the exit handlers, it exits the normal way."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's; absent elsewhere
    others = [thread for thread in threading.enumerate() if thread is not threading.main_thread() and not thread.daemon]
    if run_exit_handlers is None or others:
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: reported for standard output, as Python does
            if stream is sys.stdout and not code:
                code = EXIT_OUTPUT_LOST
    os._exit(code)
