import numpy as np
import pytest

from harness.measure.statistics import (
    coefficient_of_variation,
    percentile,
    summarize_latencies_ns,
    throughput_per_s,
)


def test_percentiles_match_numpy_on_skewed_data():
    rng = np.random.default_rng(1)
    latencies_ns = (rng.lognormal(mean=13, sigma=0.4, size=1001)).astype(np.int64)
    summary = summarize_latencies_ns(latencies_ns.tolist())
    values_ms = latencies_ns / 1e6
    for q, got in ((50, summary.p50), (90, summary.p90), (95, summary.p95), (99, summary.p99)):
        assert got == pytest.approx(np.percentile(values_ms, q), rel=1e-12)
    assert summary.mean == pytest.approx(values_ms.mean())
    assert summary.std == pytest.approx(values_ms.std(ddof=1))
    assert summary.min == values_ms.min() and summary.max == values_ms.max()
    assert summary.min <= summary.p50 <= summary.p90 <= summary.p95 <= summary.p99 <= summary.max


def test_known_small_sample():
    summary = summarize_latencies_ns([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    assert summary.p50 == 2.5
    assert summary.mean == 2.5
    assert summary.std == pytest.approx(1.2909944)
    assert coefficient_of_variation(summary) == pytest.approx(1.2909944 / 2.5)


def test_single_iteration_has_no_spread():
    summary = summarize_latencies_ns([5_000_000])
    assert summary.p50 == summary.p99 == 5.0
    assert summary.std == 0.0


def test_empty_and_out_of_range_inputs_are_errors():
    with pytest.raises(ValueError):
        summarize_latencies_ns([])
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        throughput_per_s(1, 10, 0.0)


def test_throughput_counts_items_not_iterations():
    assert throughput_per_s(batch_size=8, iterations=100, duration_s=2.0) == 400.0
