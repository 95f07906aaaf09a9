"""The runner interface: where measurements run. One interface serves one-shot cells (bench) and
live A/B workers (verify), and answers `fingerprint()` and `can_run(profile)` about the machine the
measurements run on, not the one that plans them, so that a remote board or a cluster worker
checks itself.

`WorkerRequest` is the typed request the parent sends and the worker reads; `CellResult` is what a
one-shot worker sends back. Both travel as JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from targets.errors import FailureKind
from targets.inputs import DEFAULT_SEED, InputSpec
from targets.runners.protocol import MeasurementProtocol

if TYPE_CHECKING:
    import numpy as np

    from targets.host.fingerprint import HostFingerprint
    from targets.profiles import BackendSpec, ResolvedProfile, TargetProfile


@dataclass(frozen=True)
class WorkerRequest:
    """What a worker (one-shot or live) needs to load and time one artifact."""

    artifact_path: str
    backend: str
    options: dict[str, Any]
    threads: int
    cpu_affinity: tuple[int, ...]
    inputs: tuple[InputSpec, ...]
    batch_size: int
    protocol: MeasurementProtocol
    seed: int = DEFAULT_SEED
    memory_cap_bytes: int | None = None  # the profile's resources.memory_gb, enforced on the worker

    @classmethod
    def for_cell(
        cls,
        artifact_path: str,
        backend: BackendSpec,
        resolved: ResolvedProfile,
        inputs: Sequence[InputSpec],
        batch_size: int,
        protocol: MeasurementProtocol,
    ) -> WorkerRequest:
        """The request for one artifact on one of a resolved profile's backends."""
        return cls(
            artifact_path=artifact_path,
            backend=backend.name,
            options=dict(backend.options),
            threads=resolved.threads,
            cpu_affinity=tuple(resolved.cpu_affinity),
            inputs=tuple(inputs),
            batch_size=batch_size,
            protocol=protocol,
            memory_cap_bytes=resolved.profile.resources.memory_bytes,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifact_path": self.artifact_path,
            "backend": self.backend,
            "options": dict(self.options),
            "threads": self.threads,
            "cpu_affinity": list(self.cpu_affinity),
            "inputs": [spec.as_dict() for spec in self.inputs],
            "seed": self.seed,
            "batch_size": self.batch_size,
            "protocol": self.protocol.as_dict(),
            "memory_cap_bytes": self.memory_cap_bytes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerRequest:
        return cls(
            artifact_path=str(data["artifact_path"]),
            backend=str(data["backend"]),
            options=dict(data.get("options") or {}),
            threads=int(data["threads"]),
            cpu_affinity=tuple(data.get("cpu_affinity") or ()),
            inputs=tuple(InputSpec.from_dict(item) for item in data["inputs"]),
            batch_size=int(data["batch_size"]),
            protocol=MeasurementProtocol.from_dict(data["protocol"]),
            seed=int(data.get("seed", DEFAULT_SEED)),
            memory_cap_bytes=int(data["memory_cap_bytes"]) if data.get("memory_cap_bytes") else None,
        )


@dataclass(frozen=True)
class CellResult:
    """A one-shot worker's answer: every timed iteration and what the worker saw, or why it failed."""

    status: str  # "ok" | "failed"
    error: str | None = None
    kind: FailureKind | None = None  # why it failed
    provider: str | None = None  # what really ran
    latencies_ns: list[int] = field(default_factory=list)
    duration_s: float | None = None
    stopped_by: str | None = None  # StopCondition of the timing loop
    warmup_iterations: int = 0
    cold_start_ms: dict[str, float] | None = None
    memory: dict[str, int] | None = None
    other_processes_cpu_share: float = 0.0
    clock: str = "host"  # which clock the latencies come from (TimingKind): host or a device's events
    warnings: list[str] = field(default_factory=list)  # what the worker saw: GPU clocks held down, no NVML
    runtime: dict[str, Any] = field(default_factory=dict)  # what the backend decided on load (2:4 layers)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(cls, message: str, kind: FailureKind = FailureKind.ERROR) -> CellResult:
        return cls(status="failed", error=message, kind=kind)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = None if self.kind is None else str(self.kind)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if known.get("kind") is not None:
            known["kind"] = FailureKind(known["kind"])
        return cls(**known)


class BurstWorker(Protocol):
    """One side of an A/B pair: a live worker that has loaded its artifact and times bursts on demand."""

    label: str

    def launch(self) -> None: ...  # start loading without waiting (start() then waits for it)
    def start(self, timeout_s: float) -> dict[str, Any]: ...
    def burst(self, burst_s: float, min_iterations: int = 1) -> dict[str, Any]: ...
    def stop(self, timeout_s: float = ...) -> dict[str, Any]: ...
    def close(self) -> None: ...


class SharedBurstWorker(BurstWorker, Protocol):
    """Both sides of an A/B pair in one live worker process: `side` (0 or 1) picks which one a burst
    times, so both share the process's own speed offset."""

    def burst(self, burst_s: float, min_iterations: int = 1, side: int = 0) -> dict[str, Any]: ...


class Runner(ABC):
    """Where measurements run. Every method answers about that machine."""

    # its workers run on this host's CPUs (this host itself, or an emulator here): two such runners
    # must never measure at the same time, or each would time the other's load
    shares_this_host = False

    # hears of long steps (a large copy to another machine); a run sets its own progress reporter
    on_progress: Callable[[str], None] | None = None

    def progress(self, message: str) -> None:
        """Tell the run's progress reporter, if it has one."""
        if self.on_progress is not None:
            self.on_progress(message)

    @abstractmethod
    def fingerprint(self) -> HostFingerprint:
        """The machine the measurements run on."""

    @abstractmethod
    def can_run(self, profile: TargetProfile) -> list[str]:
        """Every reason the machine cannot run `profile`; empty when it can."""

    def available_cpus(self) -> list[int]:
        """The CPUs a worker may use on the machine, fastest first (default: this process's)."""
        from targets.host.cpu_conditions import fastest_cpus_here

        return fastest_cpus_here()

    @abstractmethod
    def run_cell(self, request: WorkerRequest, timeout_s: float) -> CellResult:
        """Measure one cell in a worker of its own; a worker that fails, crashes or hangs becomes a
        failed result saying how."""

    @abstractmethod
    def start_live_worker(self, request: WorkerRequest, label: str) -> BurstWorker:
        """A live worker for one side of an A/B pair (not started yet)."""

    def start_shared_live_worker(self, requests: Sequence[WorkerRequest], label: str) -> SharedBurstWorker | None:
        """One live worker that loads every request's artifact (side 0, 1, ... in that order), not
        started yet; None where the runner cannot (a board's agent, a fleet): an A/B pair of fast
        models then takes a fresh worker per side for every pair instead."""
        return None

    @abstractmethod
    def outputs(
        self, artifact_path: str, backend: BackendSpec, threads: int, feeds: Sequence[dict[str, np.ndarray]]
    ) -> list[list[np.ndarray]]:
        """Every output of the artifact for each feed, in the artifact's output order: what quality
        (accuracy, closeness, a task metric) is computed from, on the runtime the target really uses."""

    def first_outputs(
        self, artifact_path: str, backend: BackendSpec, threads: int, feeds: Sequence[dict[str, np.ndarray]]
    ) -> np.ndarray:
        """The artifact's first output over all feeds, concatenated along the batch axis (as float64)."""
        import numpy as np

        per_feed = self.outputs(artifact_path, backend, threads, feeds)
        return np.concatenate([values[0] for values in per_feed]).astype(np.float64)
