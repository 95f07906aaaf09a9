"""A device's side of a Dask fleet: what `speedproof worker` serves and the tasks it runs.

A worker is a Dask worker with one thread and the resources `target:NAME` (and `device:TAG`), each
of count 1, so Dask never gives it two measuring tasks at once. It runs the same board agent steps
(`targets.runners.board_agent`: hello, has, put, cell, outputs) as a board over SSH, each in a fresh
process, and the live workers of A/B pairs as Dask actors (`LiveWorkerActor`). One lock per worker
process (`MEASURING`) is held by every cell and every burst or warm-up of a live worker, so an
actor's bursts (which Dask runs on its actor thread, outside the task slot) never overlap another
measurement on the device either.

Only `targets` and the runtimes are imported here (Dask when a worker starts), like a board's agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any

from targets.errors import FailureKind

CLUSTER_SCHEME = "cluster:"  # a remote address naming a device in a Dask cluster
TARGET_RESOURCE = "target:"
DEVICE_RESOURCE = "device:"
MEASURING = threading.Lock()  # one measurement at a time on this device
MEASURING_STEPS = ("cell", "outputs")
# the board agent steps a cluster task may run, with how many arguments each takes (the agent checks their values)
AGENT_STEPS = {"hello": 0, "has": 2, "put": 2, "bundle": 0, "cell": 0, "live": 0, "outputs": 0}


def target_resource(target: str) -> str:
    return f"{TARGET_RESOURCE}{target}"


def device_resource(device: str) -> str:
    return f"{DEVICE_RESOURCE}{device}"


def worker_resources(target: str, device: str | None) -> dict[str, float]:
    """A worker's Dask resources: its target and its device tag, one of each."""
    resources = {target_resource(target): 1.0}
    if device:
        resources[device_resource(device)] = 1.0
    return resources


def default_worker_name(target: str, device: str | None) -> str:
    return f"{device or target}@{socket.gethostname()}"


def run_agent_step(arguments: Sequence[str], stdin: bytes, timeout_s: float) -> dict[str, Any]:
    """One board agent step in a fresh process on this worker: its exit status, stdout and stderr
    (or `timed_out`). Cells and quality outputs hold `MEASURING`."""
    from targets.runners.agent import AGENT_MODULE
    from targets.runners.processes import python_module_command

    step = arguments[0] if arguments else ""
    if (
        step not in AGENT_STEPS
        or len(arguments) != AGENT_STEPS[step] + 1
        or not all(isinstance(item, str) and item.isprintable() and not item.startswith("-") for item in arguments)
    ):
        return {"returncode": 2, "stdout": b"", "stderr": f"not a board agent step: {list(arguments)!r}".encode()}
    command = list(python_module_command(AGENT_MODULE, *arguments))
    measuring = arguments and arguments[0] in MEASURING_STEPS
    with MEASURING if measuring else contextlib.nullcontext():
        try:
            completed = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return {"timed_out": True}
    return {"returncode": completed.returncode, "stdout": completed.stdout, "stderr": completed.stderr}


class LiveWorkerActor:
    """One side of an A/B pair, held on this worker as a Dask actor: a local live worker process
    that loads the artifact once and times bursts on demand. Answers are {"ok": ...} or
    {"failed": message, "kind": FailureKind}, never exceptions (they would lose their kind)."""

    def __init__(self, request: dict[str, Any], label: str) -> None:
        from targets.runners.base import WorkerRequest
        from targets.runners.board_agent import check_cached_artifact
        from targets.runners.live import LiveWorker

        self._artifact = str(request["artifact_path"])
        self._check_artifact = check_cached_artifact
        self._worker = LiveWorker(WorkerRequest.from_dict(request), label)

    def start(self, timeout_s: float) -> dict[str, Any]:
        def load() -> dict[str, Any]:
            self._check_artifact(self._artifact)
            return self._worker.start(timeout_s)

        with MEASURING:
            return _answer(load)

    def burst(self, burst_s: float, min_iterations: int = 1) -> dict[str, Any]:
        with MEASURING:
            return _answer(lambda: self._worker.burst(burst_s, min_iterations))

    def stop(self, timeout_s: float) -> dict[str, Any]:
        return _answer(lambda: self._worker.stop(timeout_s))

    def close(self) -> dict[str, Any]:
        return _answer(self._worker.close)


def _answer(call: Callable[[], Any]) -> dict[str, Any]:
    from targets.runners.live import LiveWorkerFailed

    try:
        return {"ok": call()}
    except LiveWorkerFailed as failed:
        return {"failed": str(failed), "kind": str(failed.kind)}
    except Exception as error:  # anything else a worker can raise is still this side's failure
        return {"failed": f"{type(error).__name__}: {error}", "kind": str(FailureKind.ERROR)}


async def serve(
    scheduler: str,
    target: str,
    device: str | None,
    name: str | None = None,
    host: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Join the scheduler as this device's worker and serve until the scheduler or a signal ends it."""
    from distributed import Worker

    async with Worker(
        scheduler,
        nthreads=1,
        resources=worker_resources(target, device),
        name=name or default_worker_name(target, device),
        host=host,
        dashboard=False,
        dashboard_address=f"{host}:0" if host else ":0",
    ) as worker:
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):  # leave the cluster cleanly
            loop.add_signal_handler(stop_signal, lambda: asyncio.ensure_future(worker.close()))
        if on_ready is not None:
            on_ready(str(worker.address))
        await worker.finished()


def quiet_dask_logs() -> None:
    """Dask's INFO lines (every connection, every plugin) drown what speedproof says; keep warnings."""
    import logging

    logging.getLogger("distributed").setLevel(logging.WARNING)


def set_artifact_cache(folder: str | os.PathLike[str] | None) -> None:
    """Where this worker keeps artifacts by content hash (the board agent's cache; inherited by its steps)."""
    if folder:
        os.environ["SPEEDPROOF_BOARD_CACHE"] = str(folder)
