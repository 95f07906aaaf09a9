"""The timing loop's stopping rules, with a counting callable (no wall-clock thresholds)."""

from targets.runners.protocol import MeasurementProtocol
from targets.runners.timing import time_iterations, warm_up


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_stops_once_both_minimums_are_met():
    counter = Counter()
    protocol = MeasurementProtocol(min_iterations=7, min_duration_s=0.0, max_duration_s=60)
    timed = time_iterations(counter, protocol)
    assert counter.calls == 7
    assert len(timed.latencies_ns) == 7
    assert all(latency >= 0 for latency in timed.latencies_ns)
    assert timed.stopped_by == "minimums_met"
    assert timed.duration_s >= sum(timed.latencies_ns) / 1e9


def test_min_duration_keeps_timing_past_min_iterations():
    counter = Counter()
    protocol = MeasurementProtocol(min_iterations=1, min_duration_s=0.05, max_duration_s=60)
    timed = time_iterations(counter, protocol)
    assert timed.duration_s >= 0.05
    assert counter.calls > 1


def test_max_duration_caps_the_loop():
    counter = Counter()
    protocol = MeasurementProtocol(min_iterations=10**9, min_duration_s=0.0, max_duration_s=0.02)
    timed = time_iterations(counter, protocol)
    assert timed.stopped_by == "max_duration"
    assert counter.calls < 10**9


def test_warm_up_runs_at_least_its_minimum():
    counter = Counter()
    protocol = MeasurementProtocol(warmup_min_iterations=12, warmup_min_duration_s=0.0)
    assert warm_up(counter, protocol) == 12 == counter.calls


def test_a_device_clock_replaces_the_host_one_but_the_host_decides_when_to_stop():
    """A backend timing on the device (CUDA events) hands its figure per iteration; here a fake device
    clock (no GPU here) that reports 7 us after each call."""
    counter = Counter()
    readings = []

    def device_elapsed() -> int:
        readings.append(counter.calls)
        return 7_000

    protocol = MeasurementProtocol(min_iterations=5, min_duration_s=0.0, max_duration_s=60)
    timed = time_iterations(counter, protocol, device_elapsed)
    assert timed.latencies_ns == [7_000] * 5 and timed.stopped_by == "minimums_met"
    assert readings == [1, 2, 3, 4, 5]  # read after each iteration, never before it ran
