"""What a worker process left behind when it died: the tail of its stderr and the signal's name."""

from __future__ import annotations

import signal
from pathlib import Path

STDERR_TAIL_LINES = 8


def stderr_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-STDERR_TAIL_LINES:])


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
