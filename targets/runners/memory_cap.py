"""The profile's memory cap (`resources.memory_gb`), enforced on the worker: a model that does not fit
the board fails with MEMORY_EXCEEDED and the peak it reached, on any target.

A watchdog thread reads the worker's resident memory every `POLL_INTERVAL_S` from its start (so the
runtime's own import counts, as it does on the board); past the cap it ends the worker at once
through `on_exceeded`, before a real board would have swapped or been OOM-killed. The kernel's
high-water mark (VmHWM) is checked again when the work ends, so a spike shorter than one poll is
caught too. RSS rather than an address-space limit (RLIMIT_AS): runtimes reserve far more virtual
memory than they touch, and a board's RAM is spent on resident pages.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from collections.abc import Callable
from pathlib import Path

POLL_INTERVAL_S = 0.005
MIB = 2**20


class MemoryExceeded(Exception):
    """The worker's resident memory passed the profile's cap."""

    def __init__(self, peak_bytes: int, cap_bytes: int) -> None:
        super().__init__(exceeded_message(peak_bytes, cap_bytes))
        self.peak_bytes = peak_bytes
        self.cap_bytes = cap_bytes


def exceeded_message(peak_bytes: int, cap_bytes: int) -> str:
    return (
        f"peak RSS {peak_bytes / MIB:.0f} MiB exceeded the profile's memory cap of {cap_bytes / MIB:.0f} MiB "
        "(resources.memory_gb): the model does not fit that target"
    )


def resident_bytes() -> int:
    """This process's resident memory now (Linux /proc/self/statm; 0 where it cannot be read)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def peak_rss_bytes() -> int:
    """Peak resident memory of this process.

    On Linux VmHWM is read, not ru_maxrss: ru_maxrss survives exec and so would report the
    parent's (torch-sized) peak for a freshly started worker.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


class MemoryWatchdog:
    """Polls `read` until stopped; calls `on_exceeded(peak)` once when it passes `cap_bytes`."""

    def __init__(
        self,
        cap_bytes: int,
        on_exceeded: Callable[[int], None],
        read: Callable[[], int] = resident_bytes,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self.cap_bytes = cap_bytes
        self.on_exceeded = on_exceeded
        self.read = read
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="speedproof-memory-cap", daemon=True)

    def _watch(self) -> None:
        while True:
            current = self.read()
            self.peak_bytes = max(self.peak_bytes, current)
            if current > self.cap_bytes:
                self.on_exceeded(current)
                return
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> MemoryWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def check_high_water(self) -> None:
        """Raise MemoryExceeded when the kernel's peak passed the cap (a spike between two polls)."""
        peak = max(peak_rss_bytes(), self.peak_bytes)
        if peak > self.cap_bytes:
            raise MemoryExceeded(peak, self.cap_bytes)
