"""The timing loop's stopping rules, with a counting callable (no wall-clock thresholds)."""

from targets.runners.protocol import MEDIAN_BURST_CAP_S, TAIL_BURST_CAP_S, MeasurementProtocol, burst_cap_s
from targets.runners.timing import launch_bound_figures, launch_bound_text, time_iterations, warm_up


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
    assert timed.enqueue_ns == []  # no enqueue clock given


def test_host_enqueue_is_kept_beside_device_time_and_decides_launch_bound():
    """A stand-in device clock (no GPU here): 1 ms of device work whose launches took the host 0.9 ms."""
    counter = Counter()
    protocol = MeasurementProtocol(min_iterations=4, min_duration_s=0.0, max_duration_s=60)
    timed = time_iterations(counter, protocol, lambda: 1_000_000, lambda: 900_000)
    assert timed.latencies_ns == [1_000_000] * 4 and timed.enqueue_ns == [900_000] * 4
    figures = launch_bound_figures(timed.enqueue_ns, timed.latencies_ns)
    assert figures == {"enqueue_ms": 0.9, "device_ms": 1.0}
    assert launch_bound_text(figures).startswith("launch-bound: the host took 0.900 ms to enqueue 1.000 ms")
    assert launch_bound_figures([100_000] * 4, timed.latencies_ns) is None  # launches well hidden
    assert launch_bound_figures([800_000], [1_000_000]) is not None  # the share holds at equality
    assert launch_bound_figures([], []) is None


def test_a_median_burst_waits_two_seconds_at_most_and_a_tail_burst_sixty():
    assert burst_cap_s(0.25, 1) == 0.25  # throughput: the burst's length
    assert burst_cap_s(0.25, 5) == MEDIAN_BURST_CAP_S == 2.0  # p50 of a 4 s model: one-iteration bursts
    assert burst_cap_s(3.0, 5) == 3.0  # never shorter than asked
    assert burst_cap_s(0.25, 100) == burst_cap_s(0.25, 1000) == TAIL_BURST_CAP_S
