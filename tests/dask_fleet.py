"""A real Dask fleet on 127.0.0.1 for the fleet tests: `speedproof cluster --local` (a scheduler and an
untagged x86-cpu worker) plus `speedproof worker` processes with device tags, each with an artifact
cache of its own. Every process binds to 127.0.0.1 only.

Dask comes with the `fleet` extra (the README's test command installs it); where it is missing the
tests that need it skip, saying so.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MISSING = None if importlib.util.find_spec("distributed") else "needs Dask distributed: pip install 'speedproof[fleet]'"
START_TIMEOUT_S = 90.0


def _wait_for_line(process: subprocess.Popen[str], prefix: str, what: str) -> str:
    """The first stdout line of `process` that starts with `prefix` (its other lines are skipped).

    Reads the pipe's bytes itself: a text reader's `readline()` takes every line that has arrived into
    its own buffer, and a later `select` on the pipe then waits for bytes that were already read (the
    cluster's "worker at" and "scheduler at" lines often come in one chunk)."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = b""
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                line = raw.decode(errors="replace").strip()
                if line.startswith(prefix):
                    return line
                seen.append(line)
            if time.monotonic() >= deadline:
                break
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(process.stdout.fileno(), 1 << 16)
            if not chunk:
                said = "; it said: " + " | ".join(seen[-5:]) if seen else ""
                raise RuntimeError(f"{what} exited with code {process.wait()} before it was ready{said}")
            pending += chunk
    process.kill()
    said = "; it said: " + " | ".join(seen[-5:]) if seen else ""
    raise RuntimeError(f"{what} was not ready within {START_TIMEOUT_S:.0f} s{said}")


def _speedproof(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *arguments]


@dataclass
class DaskFleet:
    folder: Path
    scheduler: str
    cluster: subprocess.Popen[str]
    workers: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def cache(self, device: str) -> Path:
        return self.folder / f"cache-{device}"

    def start_worker(self, device: str, target: str = "x86-cpu") -> subprocess.Popen[str]:
        """A `speedproof worker` with this device tag; returns once it has joined."""
        process = subprocess.Popen(
            _speedproof(
                "worker",
                *("--scheduler", self.scheduler, "--target", target, "--device", device),
                *("--host", "127.0.0.1", "--cache", str(self.cache(device))),
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        _wait_for_line(process, "worker at ", f"worker {device}")
        self.workers[device] = process
        return process

    def stop_worker(self, device: str) -> None:
        process = self.workers.pop(device)
        if process.poll() is None:
            process.kill()
        process.wait()

    def stop(self) -> None:
        for device in list(self.workers):
            self.stop_worker(device)
        self.cluster.terminate()
        try:
            self.cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.cluster.kill()
            self.cluster.wait()


def start_fleet(folder: Path) -> DaskFleet:
    """`speedproof cluster --local` on a free port with workers for x86-cpu, then tagged workers alpha and beta."""
    cluster = subprocess.Popen(
        _speedproof("cluster", "--local", "--host", "127.0.0.1", "--port", "0", "--targets", "x86-cpu"),
        stdout=subprocess.PIPE,
        text=True,
    )
    line = _wait_for_line(cluster, "scheduler at ", "speedproof cluster --local")
    fleet = DaskFleet(folder=folder, scheduler=line.split()[2], cluster=cluster)
    try:
        for device in ("alpha", "beta"):
            fleet.start_worker(device)
    except BaseException:
        fleet.stop()
        raise
    return fleet
