"""The runner for a device in a Dask fleet (`--cluster tcp://scheduler:8786 [--device TAG]`).

Dask distributed schedules; speedproof measures. A run names a target (and optionally a device
tag); the runner picks one worker that offers the resources `target:NAME` (and `device:TAG`) and
keeps it for the whole run, so a record's cells, and both sides of every A/B pair, come from one
device. Every step is a Dask task pinned to that worker and run by its board agent
(`targets.runners.cluster_worker`), exactly as a board over SSH runs it: artifacts travel by
content hash (`has`, then `put` only for what the worker lacks; both check the sha256), cells run
in a fresh process there, and live A/B workers are Dask actors on it. Measuring tasks also ask for
the worker's `target:NAME` resource (count 1), so Dask gives a device one at a time.

A worker that leaves the cluster mid-step (killed, crashed, its machine gone) makes that step fail
as LOST ("the worker left the cluster"); the run goes on and keeps what was measured before.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from targets.errors import FailureKind, SpeedproofError
from targets.runners.agent import AGENT_MODULE, STEP_TIMEOUT_S, AgentRunner, RemoteError
from targets.runners.base import BurstWorker, WorkerRequest
from targets.runners.cluster_worker import (
    CLUSTER_SCHEME,
    MEASURING_STEPS,
    LiveWorkerActor,
    device_resource,
    run_agent_step,
    target_resource,
)
from targets.runners.live import LiveWorkerFailed, burst_timeout_s
from targets.runners.processes import python_module_command

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 10.0
POLL_S = 1.0  # how often a waiting step checks that its worker is still in the cluster
DEPARTURE_NOTICE_S = 10.0  # a step that failed waits this long for the scheduler to see its worker leave
STEP_MARGIN_S = 30.0  # on top of a step's own time limit, for Dask's hand-offs
SCATTER_BYTES = 1 << 20  # larger step inputs (artifact copies) go straight to the worker, not through the scheduler
INSTALL_DASK = "pip install 'speedproof[fleet]'"


@dataclass(frozen=True)
class ClusterAddress:
    """`cluster:tcp://host:port[?device=TAG]`: a Dask scheduler, and the device tag a worker must carry."""

    scheduler: str
    device: str | None = None

    @classmethod
    def parse(cls, text: str) -> ClusterAddress:
        rest = text[len(CLUSTER_SCHEME) :] if text.startswith(CLUSTER_SCHEME) else text
        expected = (
            f"--cluster {rest!r}: expected a Dask scheduler address like tls://scheduler:8786, tcp://127.0.0.1:8786 "
            "or tcp://[::1]:8786 (what `speedproof cluster --local` or `dask scheduler` prints)"
        )
        try:
            parts = urlsplit(rest)
            hostname, _port = parts.hostname, parts.port
        except ValueError as error:  # `tcp://[::1` (an unclosed bracket), a port that is no number
            raise SpeedproofError(f"{expected}; {error}") from None
        if parts.scheme not in ("tcp", "tls") or not hostname:
            raise SpeedproofError(expected)
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - {"device"})
        if unknown:
            raise SpeedproofError(f"--cluster {rest!r}: unknown part {unknown[0]!r}; the only query key is device")
        device = query.get("device", [None])[-1]
        return cls(scheduler=f"{parts.scheme}://{parts.netloc}", device=device or None)

    def __str__(self) -> str:
        return CLUSTER_SCHEME + self.scheduler + (f"?device={self.device}" if self.device else "")


def cluster_remote(scheduler: str, device: str | None = None) -> str:
    """The remote address (as `--remote` and records spell it) of a device in the cluster; a tls://
    scheduler without the fleet's TLS files (or tcp:// with them) is an error now, before anything runs."""
    from targets.runners.fleet_security import check_tls_for

    address = ClusterAddress.parse(scheduler)
    check_tls_for(address.scheduler.partition("://")[0], "client", f"--cluster {scheduler}")
    return str(replace(address, device=device or None))


def dask_installed() -> None:
    """Raise a SpeedproofError naming the extra to install when Dask distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SpeedproofError(f"fleets need Dask distributed, which is not installed: {INSTALL_DASK}") from None


_CLIENTS: dict[str, Client] = {}


def connect(scheduler: str) -> Client:
    """One client per scheduler for the whole process (a gate's checks share it)."""
    if scheduler in _CLIENTS:
        return _CLIENTS[scheduler]
    dask_installed()
    from distributed import Client

    from targets.runners.fleet_security import check_tls_for, warn_plaintext_client

    check_tls_for(scheduler.partition("://")[0], "client", f"--cluster {scheduler}")
    warn_plaintext_client(scheduler)
    try:
        # the default client: Dask's actor handles (live A/B workers) find their client that way
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=True)
    except (OSError, TimeoutError) as error:
        from targets.runners.fleet_probe import connection_problem

        raise RemoteError(f"{scheduler}: {connection_problem(error, scheduler)}", FailureKind.LOST) from None
    _CLIENTS[scheduler] = client
    return client


def disconnect_all() -> None:
    """Close every client `connect` opened (before a scheduler it talks to goes away)."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


def cluster_workers(client: Client) -> dict[str, dict[str, Any]]:
    """Every worker in the cluster now: address -> Dask's description (name, resources, ...)."""
    return dict(client.scheduler_info(n_workers=-1)["workers"])


def offered(resources: dict[str, Any], prefix: str) -> list[str]:
    """The names a worker offers under one resource prefix (`target:`, `device:`)."""
    return sorted(name.removeprefix(prefix) for name, count in resources.items() if name.startswith(prefix) and count)


class ClusterRunner(AgentRunner):
    """Measures on one worker of a Dask cluster that offers the target (and the device tag)."""

    def __init__(self, address: ClusterAddress, target: str, pinned_worker: str | None = None) -> None:
        """`pinned_worker`: this worker's address instead of the least busy one that offers the target."""
        self.address = address
        self.target = target
        self.pinned_worker = pinned_worker
        self.label = str(address)

    @cached_property
    def client(self) -> Client:
        return connect(self.address.scheduler)

    def wanted_resources(self) -> list[str]:
        return [target_resource(self.target), *([device_resource(self.address.device)] if self.address.device else [])]

    @cached_property
    def worker(self) -> str:
        """The chosen worker's address: of those that offer every wanted resource, the least busy."""
        wanted = self.wanted_resources()
        workers = cluster_workers(self.client)
        offering = [
            address
            for address, info in workers.items()
            if all((info.get("resources") or {}).get(resource) for resource in wanted)
            and self.pinned_worker in (None, address)
        ]
        if not offering:
            offered = sorted({resource for info in workers.values() for resource in info.get("resources") or {}})
            device = f" --device {self.address.device}" if self.address.device else ""
            raise RemoteError(
                f"{self.address.scheduler}: no worker in the cluster offers {' and '.join(wanted)} (its workers offer: "
                f"{', '.join(offered) or 'nothing, it has no workers'}); start one on such a device with "
                f"`speedproof worker --scheduler {self.address.scheduler} --target {self.target}{device}`",
                FailureKind.LOST,
            )
        busy = self.client.processing()
        chosen = min(offering, key=lambda address: (len(busy.get(address, ())), str(workers[address].get("name"))))
        self.label = f"dask worker {workers[chosen].get('name')}"
        return chosen

    def worker_present(self) -> bool:
        return self.worker in cluster_workers(self.client)

    # the agent's transport -------------------------------------------------------------------
    def agent_command(self, *agent_arguments: str) -> list[str]:
        """What the worker runs for a step (in a fresh process there)."""
        return list(python_module_command(AGENT_MODULE, *agent_arguments))

    def board_path(self, local_path: str) -> str:
        return self.copy_by_content_hash(local_path)

    def run_step(self, arguments: Sequence[str], stdin: bytes | Path, timeout_s: float) -> tuple[int, bytes, bytes]:
        worker = self.worker
        if isinstance(stdin, Path):
            stdin = stdin.read_bytes()  # a Dask message carries bytes
        data: Any = stdin
        if len(stdin) > SCATTER_BYTES:
            data = self.client.scatter(stdin, workers=[worker], direct=True, hash=False)
        future = self.client.submit(
            run_agent_step,
            list(arguments),
            data,
            timeout_s,
            key=f"speedproof-{arguments[0]}-{uuid.uuid4().hex}",
            workers=[worker],
            allow_other_workers=False,
            resources={target_resource(self.target): 1} if arguments[0] in MEASURING_STEPS else None,
            pure=False,
        )
        answer = self.wait(future, timeout_s + STEP_MARGIN_S, arguments[0])
        if answer.get("timed_out"):
            raise RemoteError(f"{self.label}: no answer within {timeout_s:.0f} s ({arguments[0]})", FailureKind.HUNG)
        return int(answer["returncode"]), answer["stdout"], answer["stderr"]

    def wait(self, future: Any, timeout_s: float, doing: str) -> Any:
        """A task's or an actor call's result; a worker that left the cluster meanwhile is LOST, one that
        takes longer than `timeout_s` is HUNG."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                pass
            except Exception as error:  # KilledWorker, a cancelled task, a closed connection
                if self._gone_soon() or isinstance(error, OSError):  # the scheduler may notice a moment later
                    raise self._left(doing) from None
                raise RemoteError(
                    f"{self.label}: {doing} failed in the cluster: {type(error).__name__}: {error}"
                ) from None
            if not self.worker_present():
                _cancel(future)
                raise self._left(doing)
            if time.monotonic() > deadline:
                _cancel(future)
                raise RemoteError(f"{self.label}: no answer within {timeout_s:.0f} s ({doing})", FailureKind.HUNG)

    def _gone_soon(self) -> bool:
        """Whether the worker is out of the cluster now or within DEPARTURE_NOTICE_S."""
        deadline = time.monotonic() + DEPARTURE_NOTICE_S
        while self.worker_present():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S / 4)
        return True

    def _left(self, doing: str) -> RemoteError:
        return RemoteError(f"{self.label}: the worker left the cluster during {doing}", FailureKind.LOST)

    # Runner ----------------------------------------------------------------------------------
    def start_live_worker(self, request: WorkerRequest, label: str) -> BurstWorker:
        return ClusterLiveWorker(self, replace(request, artifact_path=self.board_path(request.artifact_path)), label)


def _cancel(future: Any) -> None:
    cancel = getattr(future, "cancel", None)  # an actor call cannot be cancelled
    if cancel is not None:
        cancel()


class ClusterLiveWorker:
    """One side of an A/B pair: a live worker held by a Dask actor on the runner's worker."""

    def __init__(self, runner: ClusterRunner, request: WorkerRequest, label: str) -> None:
        self.runner = runner
        self.request = request
        self.label = label
        self._future: Any = None
        self._actor: Any = None

    def launch(self) -> None:
        """Place the actor on the runner's worker (once); `start` then waits for it to load."""
        if self._future is not None:
            return
        self._future = self.runner.client.submit(
            LiveWorkerActor,
            self.request.as_dict(),
            self.label,
            actor=True,
            workers=[self.runner.worker],
            allow_other_workers=False,
            pure=False,
        )

    def start(self, timeout_s: float) -> dict[str, Any]:
        try:
            self.launch()
            self._actor = self.runner.wait(self._future, STEP_TIMEOUT_S, "starting a live worker")
        except RemoteError as error:
            raise LiveWorkerFailed(f"{self.label}: {error}", error.kind) from None
        return self._call("start", timeout_s + STEP_MARGIN_S, "loading and warming up", timeout_s)

    def burst(self, burst_s: float, min_iterations: int = 1) -> dict[str, Any]:
        timeout_s = burst_timeout_s(burst_s, min_iterations) + STEP_MARGIN_S
        return self._call("burst", timeout_s, "a timed burst", burst_s, min_iterations)

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        return self._call("stop", timeout_s + STEP_MARGIN_S, "stopping", timeout_s)

    def close(self) -> None:
        if self._actor is not None:
            try:
                self.runner.wait(self._actor_call("close"), STEP_TIMEOUT_S, "closing")
            except RemoteError:
                pass  # the worker is gone, and its live worker with it
            self._actor = None
        if self._future is not None:
            self._future.release()
            self._future = None

    def _actor_call(self, method: str, *arguments: Any) -> Any:
        """Start a call on the actor; Dask refuses one outright once the actor's worker is known lost."""
        try:
            return getattr(self._actor, method)(*arguments)
        except RuntimeError as error:
            raise RemoteError(f"{self.runner.label}: the worker left the cluster ({error})", FailureKind.LOST) from None

    def _call(self, method: str, timeout_s: float, doing: str, *arguments: Any) -> dict[str, Any]:
        if self._actor is None:
            raise LiveWorkerFailed(f"{self.label}: the live worker was not started")
        try:
            answer = self.runner.wait(self._actor_call(method, *arguments), timeout_s, doing)
        except RemoteError as error:
            raise LiveWorkerFailed(f"{self.label}: {error}", error.kind) from None
        if "failed" in answer:
            raise LiveWorkerFailed(str(answer["failed"]), FailureKind(answer["kind"]))
        return dict(answer["ok"])
