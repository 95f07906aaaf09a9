"""The lifecycle every backend runner follows (as Polygraphy's runners): activate -> input
metadata -> infer -> synchronize -> deactivate.

Public methods validate state and call the subclass's `_impl` methods; a runner is also a context
manager. Runners report what really ran (`actual_provider`), never what was merely asked for, and
say which clock their latencies come from (`timing`). A backend whose `infer` returns before the
work is done (a GPU stream) overrides `synchronize_impl`; the timing loop calls it before the clock
stops.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from targets.errors import SpeedproofError, TextEnum


class TimingKind(TextEnum):
    """Which clock a backend's latencies come from."""

    HOST = "host"  # perf_counter around infer + synchronize: what a caller on the host waits
    DEVICE_KERNEL = "device-kernel"  # device events around the kernels only (no copies)
    DEVICE_END_TO_END = "device-end-to-end"  # device events around copies in, kernels and copies out
    # the runner's own clock around one phase of generation (a prompt's forward, a decode step), with what
    # each iteration does first (a new generator, a KV cache rewound) outside it
    PHASE = "generation-phase"


@dataclass(frozen=True)
class TensorMetadata:
    """An input as the runtime sees it: dims are ints, or strings for symbolic dims."""

    name: str
    dtype: str  # numpy dtype name, e.g. "float32"
    shape: tuple[int | str | None, ...]


class BackendRunner(ABC):
    """Base class of runners. Subclasses implement the `_impl` methods."""

    name = "base"
    timing = TimingKind.HOST
    # whether `infer` can return before the work is done; the timing loop then calls synchronize()
    needs_synchronize = False
    # whether the model runs on a CUDA device (the worker then samples the GPU's memory and clocks)
    uses_gpu = False

    def __init__(self, artifact_path: str, threads: int, options: Mapping[str, Any]) -> None:
        self.artifact_path = artifact_path
        self.threads = threads
        self.options = dict(options)
        self.is_active = False

    @classmethod
    def unavailable_reason(cls, options: Mapping[str, Any]) -> str | None:
        """Why this backend, with these options, cannot run on this host; None when it can."""
        return None

    # lifecycle -------------------------------------------------------------------------------
    def activate(self) -> None:
        if self.is_active:
            raise SpeedproofError(f"{self.name} runner for {self.artifact_path} is already active")
        self.activate_impl()
        self.is_active = True

    def get_input_metadata(self) -> list[TensorMetadata]:
        self._require_active("get_input_metadata")
        return self.get_input_metadata_impl()

    def infer(self, feed: Mapping[str, np.ndarray]) -> Any:
        """Run one inference. Deliberately thin: it sits inside the timed loop."""
        return self.infer_impl(feed)

    def synchronize(self) -> None:
        """Wait until the work `infer` started is done (a no-op for synchronous backends)."""
        self.synchronize_impl()

    def device_elapsed_ns(self) -> int:
        """Device time of the last `infer`, from the device's own events (after `synchronize`).
        Only for runners whose `timing` is a DEVICE_* kind."""
        raise SpeedproofError(f"{self.name} runner times on the host; it has no device clock")

    def runtime_facts(self) -> dict[str, Any]:
        """What the runtime decided while loading the artifact that the record should keep (e.g. which
        2:4 layers really run on sparse kernels); {} when there is nothing to say."""
        return {}

    def host_enqueue_ns(self) -> int | None:
        """How long the host took inside the last `infer` (handing the work to the device), for runners
        whose `infer` returns before the device is done; None for the others."""
        return None

    def cuda_device_uuid(self) -> str | None:
        """UUID of the CUDA device the model runs on, where the runtime says (NVML finds the same card
        by it); None for host backends or when unknown (the first visible device is assumed)."""
        return None

    def device_memory(self) -> dict[str, int]:
        """Peak device memory figures of this runner (bytes); {} for host-only backends."""
        return {}

    def outputs_as_numpy(self, outputs: Any) -> list[np.ndarray]:
        """What `infer` returned, as host arrays (outside the timed loop: quality checks)."""
        return [np.asarray(output) for output in outputs]

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    @property
    def actual_provider(self) -> str:
        """The device/provider that really ran the model (checked after activation)."""
        self._require_active("actual_provider")
        return self.actual_provider_impl()

    def __enter__(self) -> BackendRunner:
        self.activate()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise SpeedproofError(f"{self.name} runner: {what} called before activate()")

    # for subclasses ---------------------------------------------------------------------------
    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def get_input_metadata_impl(self) -> list[TensorMetadata]: ...

    @abstractmethod
    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> Any: ...

    def synchronize_impl(self) -> None:  # noqa: B027 - deliberately optional: most backends are synchronous
        """Synchronous backends have nothing to wait for."""

    @abstractmethod
    def deactivate_impl(self) -> None: ...

    @abstractmethod
    def actual_provider_impl(self) -> str: ...
