"""A real Dask fleet on 127.0.0.1 for the fleet tests: `speedproof cluster --local` (a scheduler and an
untagged x86-cpu worker) plus `speedproof worker` processes with device tags, each with an artifact
cache of its own. Every process binds to 127.0.0.1 only.

Dask comes with the `fleet` extra (the README's test command installs it); where it is missing the
tests that need it skip, saying so.
"""

from __future__ import annotations

import importlib.util
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MISSING = None if importlib.util.find_spec("distributed") else "needs Dask distributed: pip install 'speedproof[fleet]'"
START_TIMEOUT_S = 90.0


def _wait_for_line(process: subprocess.Popen[str], prefix: str, what: str) -> str:
    """The first stdout line of `process` that starts with `prefix` (its other lines are skipped)."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{what} exited with code {process.wait()} before it was ready")
            if line.startswith(prefix):
                return line.strip()
    process.kill()
    raise RuntimeError(f"{what} was not ready within {START_TIMEOUT_S:.0f} s")


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
