"""The bootstrap interval of the speedup on paired bursts drawn from known distributions."""

import numpy as np
import pytest

from harness.measure.speedup import BurstPair, min_iterations_for, speedup_interval


def _pairs(rng, count, baseline_ms, variant_ms, spread=0.05, per_burst=40, drift=None):
    pairs = []
    for index in range(count):
        factor = 1.0 if drift is None else drift[index]
        a = rng.lognormal(np.log(baseline_ms * factor), spread, per_burst) * 1e6
        b = rng.lognormal(np.log(variant_ms * factor), spread, per_burst) * 1e6
        pairs.append(BurstPair(a.astype(int).tolist(), b.astype(int).tolist(), a.sum() / 1e9, b.sum() / 1e9))
    return pairs


@pytest.mark.parametrize("metric", ["p50", "p90", "throughput"])
def test_interval_covers_the_true_speedup_and_excludes_one(metric):
    rng = np.random.default_rng(1)
    estimate = speedup_interval(_pairs(rng, 12, 10.0, 5.0), metric, batch_size=1, confidence=0.95)
    assert estimate.ci_low <= 2.0 <= estimate.ci_high or abs(estimate.ratio - 2.0) < 0.05
    assert 1.8 < estimate.ci_low <= estimate.ratio <= estimate.ci_high < 2.2
    assert estimate.pairs == 12 and estimate.metric == metric


def test_coverage_on_a_known_distribution_is_near_the_confidence_level():
    """Over 200 simulated A/B runs with a true speedup of 1.25, the 90% interval holds it ~90% of the time."""
    rng = np.random.default_rng(7)
    hits = 0
    runs = 200
    for seed in range(runs):
        pairs = _pairs(rng, 10, 10.0, 8.0, spread=0.15, per_burst=30)
        estimate = speedup_interval(pairs, "p50", 1, confidence=0.90, resamples=500, seed=seed)
        hits += estimate.ci_low <= 1.25 <= estimate.ci_high
    assert 0.78 <= hits / runs <= 0.98


def test_identical_sides_give_an_interval_around_one():
    rng = np.random.default_rng(3)
    estimate = speedup_interval(_pairs(rng, 10, 4.0, 4.0, spread=0.2), "p50", 1, 0.95)
    assert estimate.ci_low < 1.0 < estimate.ci_high
    assert estimate.ci_high < 1.10


def test_pairing_cancels_drift_that_hits_both_sides():
    """The machine slows down 3x over the run; paired resampling still finds the 1.5x."""
    rng = np.random.default_rng(5)
    drift = np.linspace(1.0, 3.0, 12)
    estimate = speedup_interval(_pairs(rng, 12, 6.0, 4.0, spread=0.03, drift=drift), "p50", 1, 0.95)
    assert 1.35 < estimate.ci_low and estimate.ci_high < 1.65


def test_throughput_counts_items_per_second():
    pairs = [BurstPair([1_000_000] * 10, [500_000] * 20, 0.01, 0.01)] * 5
    estimate = speedup_interval(pairs, "throughput", batch_size=8, confidence=0.95)
    assert estimate.baseline == pytest.approx(8000.0)
    assert estimate.variant == pytest.approx(16000.0)
    assert estimate.ratio == pytest.approx(2.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no burst pairs"):
        speedup_interval([], "p50", 1, 0.95)
    with pytest.raises(ValueError, match="unknown metric 'p95'"):
        speedup_interval([BurstPair([1], [1], 1.0, 1.0)], "p95", 1, 0.95)


def test_tail_percentiles_need_more_iterations():
    assert min_iterations_for("p50") == 20
    assert min_iterations_for("p99") == 1000
    assert min_iterations_for("throughput") == 1
