"""Progress reporting on long work: the callback type every stage takes, the silent default, and
the terminal reporter the CLI uses (timestamped lines on stderr)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

ProgressCallback = Callable[[str], None]


def no_progress(message: str) -> None:
    """The default: say nothing."""


class TerminalProgress:
    """Progress lines on stderr with the seconds since start, only when enabled (a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.monotonic() - self.started:6.1f} s] {message}", file=sys.stderr, flush=True)
