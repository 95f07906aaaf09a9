"""The timing loop: warm-up, then `perf_counter_ns` around every iteration until both the minimum
count and the minimum duration are met, or the maximum duration is reached.

`run_once` must include whatever makes the work finished when it returns (a device backend's
synchronize), so the clock never stops before the work does. A backend that times on the device
passes `device_elapsed`, read after each iteration: its figure (device events around the work) is
recorded instead of the host's, while the loop's minimums and cap still run on the host clock; with
it `host_enqueue` (how long the host took to hand the iteration's work to the device) is recorded
too, and `launch_bound_figures` says when the device waited for the host."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from targets.errors import TextEnum
from targets.runners.protocol import MeasurementProtocol

NS_PER_S = 1_000_000_000
# enqueue time at or above this share of the device time: the device waits for the host's launches
LAUNCH_BOUND_SHARE = 0.8


class TimingStop(TextEnum):
    MINIMUMS_MET = "minimums_met"
    MAX_DURATION = "max_duration"  # capped before --min-iterations was reached


@dataclass(frozen=True)
class TimedRun:
    latencies_ns: list[int]
    duration_s: float  # wall time of the timed phase
    stopped_by: TimingStop
    enqueue_ns: list[int] = field(default_factory=list)  # per iteration, when the backend times on a device


def warm_up(run_once: Callable[[], object], protocol: MeasurementProtocol) -> int:
    """Run untimed iterations until both warm-up minimums are met (capped by max_duration_s)."""
    clock = time.perf_counter_ns
    start = clock()
    min_end = start + int(protocol.warmup_min_duration_s * NS_PER_S)
    cap_end = start + int(max(protocol.warmup_min_duration_s, protocol.max_duration_s) * NS_PER_S)
    iterations = 0
    while True:
        run_once()
        iterations += 1
        now = clock()
        if (iterations >= protocol.warmup_min_iterations and now >= min_end) or now >= cap_end:
            return iterations


def time_iterations(
    run_once: Callable[[], object],
    protocol: MeasurementProtocol,
    device_elapsed: Callable[[], int] | None = None,
    host_enqueue: Callable[[], int] | None = None,
) -> TimedRun:
    """Time every iteration until the protocol's minimums are met or its cap is reached."""
    clock = time.perf_counter_ns
    enqueue_ns: list[int] = []
    if device_elapsed is not None and host_enqueue is not None:
        record_enqueue = enqueue_ns.append
        device_time = device_elapsed

        def one_iteration() -> int:
            run_once()
            record_enqueue(host_enqueue())
            return device_time()

    elif device_elapsed is None:

        def one_iteration() -> int:  # the timed region is only the call: kept minimal, it is measured
            before = clock()
            run_once()
            return clock() - before

    else:

        def one_iteration() -> int:
            run_once()
            return device_elapsed()

    latencies: list[int] = []
    record = latencies.append
    min_iterations = protocol.min_iterations
    start = clock()
    min_end = start + int(protocol.min_duration_s * NS_PER_S)
    max_end = start + int(protocol.max_duration_s * NS_PER_S)
    stopped_by = TimingStop.MINIMUMS_MET
    while True:
        record(one_iteration())
        now = clock()
        if now >= min_end and len(latencies) >= min_iterations:
            break
        if now >= max_end:
            stopped_by = TimingStop.MAX_DURATION
            break
    return TimedRun(latencies, (clock() - start) / NS_PER_S, stopped_by, enqueue_ns)


def launch_bound_figures(enqueue_ns: list[int], device_ns: list[int]) -> dict[str, float] | None:
    """{"enqueue_ms", "device_ms"} (medians) when the host's enqueue time reaches LAUNCH_BOUND_SHARE of
    the device time: the device then idles between kernels waiting for the host; None otherwise."""
    if not enqueue_ns or not device_ns:
        return None
    enqueue_ms, device_ms = statistics.median(enqueue_ns) / 1e6, statistics.median(device_ns) / 1e6
    if enqueue_ms < LAUNCH_BOUND_SHARE * device_ms:
        return None
    return {"enqueue_ms": round(enqueue_ms, 4), "device_ms": round(device_ms, 4)}


def launch_bound_text(figures: dict[str, float]) -> str:
    return (
        f"launch-bound: the host took {figures['enqueue_ms']:.3f} ms to enqueue {figures['device_ms']:.3f} ms of "
        "device work (medians), so the device waits for kernel launches and a smaller model cannot run faster; "
        "replay it as a CUDA graph (mode = cuda-graph) or measure a larger batch"
    )
