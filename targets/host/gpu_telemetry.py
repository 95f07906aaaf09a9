"""GPU telemetry sampled inside the worker while a cell is timed: device memory in use (the whole
device and this process, from NVML through nvidia-ml-py) and the clock event reasons active at any
sample, so a cell that ran while the card slowed its clocks (power cap, thermal slowdown) says so.

A background thread reads one `GpuSample` every `SAMPLE_INTERVAL_S`, plus one when sampling starts
and one when it stops, so even a cell shorter than the interval is seen at both ends. Sampling is
best effort: where NVML is missing (no driver, no `gpu` extra) `nvml_reader` says why and the cell
carries torch's own peak allocation only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from targets.host.fingerprint import CLOCK_EVENT_REASONS, SLOWDOWN_REASONS

SAMPLE_INTERVAL_S = 0.02  # an NVML query costs tens of microseconds; 50 a second is negligible


@dataclass(frozen=True)
class GpuSample:
    """One reading; None where NVML could not say (e.g. per-process memory inside a container)."""

    used_bytes: int | None
    process_bytes: int | None
    clock_event_mask: int | None


@dataclass
class GpuTelemetry:
    """What the samples of one timed stretch add up to."""

    samples: int = 0
    peak_used_bytes: int | None = None
    peak_process_bytes: int | None = None
    clock_event_reasons: set[str] = field(default_factory=set)

    def add(self, sample: GpuSample) -> None:
        self.samples += 1
        self.peak_used_bytes = _larger(self.peak_used_bytes, sample.used_bytes)
        self.peak_process_bytes = _larger(self.peak_process_bytes, sample.process_bytes)
        if sample.clock_event_mask is not None:
            self.clock_event_reasons.update(
                name for bit, name in CLOCK_EVENT_REASONS.items() if sample.clock_event_mask & bit
            )

    @property
    def slowdowns(self) -> list[str]:
        """The reasons seen that held the clocks down while the card worked (idle is not one)."""
        return sorted(self.clock_event_reasons & SLOWDOWN_REASONS)

    def memory_entry(self) -> dict[str, int]:
        """Figures for the cell's `memory` (bytes); only those NVML gave."""
        entry = {}
        if self.peak_used_bytes is not None:
            entry["nvml_peak_device_used_bytes"] = self.peak_used_bytes
        if self.peak_process_bytes is not None:
            entry["nvml_peak_process_bytes"] = self.peak_process_bytes
        return entry


def _larger(current: int | None, new: int | None) -> int | None:
    if new is None:
        return current
    return new if current is None else max(current, new)


class GpuSampler:
    """Samples `read` on a thread between `__enter__` and `__exit__`; `telemetry` holds the sum.

    `read` raising stops the sampling (the error is kept in `error`), never the measurement."""

    def __init__(
        self,
        read: Callable[[], GpuSample],
        telemetry: GpuTelemetry | None = None,
        interval_s: float = SAMPLE_INTERVAL_S,
    ) -> None:
        self.read = read
        self.interval_s = interval_s
        self.telemetry = GpuTelemetry() if telemetry is None else telemetry  # shared: a live worker's bursts add up
        self.error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _sample(self) -> bool:
        if self.error is not None:
            return False
        try:
            sample = self.read()
        except Exception as error:  # NVML errors are their own class tree; any of them ends sampling
            self.error = f"{type(error).__name__}: {error}"
            return False
        with self._lock:
            self.telemetry.add(sample)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s) and self._sample():
            pass

    def __enter__(self) -> GpuSampler:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="speedproof-gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


def nvml_device_handle(nvml: Any, uuid: str | None) -> Any:
    """The NVML handle of the CUDA device this process uses: by UUID (right whatever
    CUDA_VISIBLE_DEVICES renumbers), else by the first visible index."""
    if uuid:
        name = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        return nvml.nvmlDeviceGetHandleByUUID(name)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    return nvml.nvmlDeviceGetHandleByIndex(int(visible) if visible.isdigit() else 0)


def nvml_reader(uuid: str | None) -> tuple[Callable[[], GpuSample] | None, str | None]:
    """(a reader of the device's samples, None) or (None, why NVML cannot be read here)."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed (pip install 'speedproof[gpu]')"
    try:
        pynvml.nvmlInit()
        handle = nvml_device_handle(pynvml, uuid)
    except Exception as error:  # pynvml.NVMLError and its many subclasses
        return None, f"NVML unavailable: {error}"
    pid = os.getpid()

    def read() -> GpuSample:
        used = int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
        process = None
        try:
            for info in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if info.pid == pid and info.usedGpuMemory is not None:
                    process = int(info.usedGpuMemory)
        except pynvml.NVMLError:  # not supported on every driver or inside every container
            process = None
        try:
            mask = int(pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
        except (pynvml.NVMLError, AttributeError):
            mask = None
        return GpuSample(used_bytes=used, process_bytes=process, clock_event_mask=mask)

    return read, None


def slowdown_warning(slowdowns: list[str]) -> str | None:
    """The cell warning for clocks held down while it was timed; None when they were not."""
    if not slowdowns:
        return None
    return (
        f"throttled: the GPU's clocks were held down while this cell was timed ({', '.join(slowdowns)}); "
        "its latencies are not the card's full speed"
    )
