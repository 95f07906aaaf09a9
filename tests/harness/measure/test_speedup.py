"""The speedup interval on synthetic paired bursts with known truth: coverage under drift, steps
and outliers, with a single look and with the A/B pair's sequence of looks (fast, seeded)."""

import math

import numpy as np
import pytest

from harness.measure.ab_pair import PairStop, stop_at_look
from harness.measure.speedup import (
    BurstPair,
    min_iterations_for,
    min_pairs_for,
    planned_looks,
    speedup_interval,
)


def _pairs(rng, count, baseline_ms, variant_ms, spread=0.05, per_burst=40, drift=None, hit=None):
    """`drift[k]` slows both sides of pair k; `hit[k] = (side, factor)` slows one side of pair k only
    (a job that started or stopped between the two bursts)."""
    pairs = []
    for index in range(count):
        factor = 1.0 if drift is None else drift[index]
        side_factor = {"a": 1.0, "b": 1.0}
        if hit and index in hit:
            side_factor[hit[index][0]] = hit[index][1]
        a = rng.lognormal(np.log(baseline_ms * factor * side_factor["a"]), spread, per_burst) * 1e6
        b = rng.lognormal(np.log(variant_ms * factor * side_factor["b"]), spread, per_burst) * 1e6
        pairs.append(BurstPair(a.astype(int).tolist(), b.astype(int).tolist(), a.sum() / 1e9, b.sum() / 1e9))
    return pairs


@pytest.mark.parametrize("metric", ["p50", "p90", "throughput"])
def test_interval_covers_the_true_speedup_and_excludes_one(metric):
    rng = np.random.default_rng(1)
    estimate = speedup_interval(_pairs(rng, 12, 10.0, 5.0), metric, batch_size=1, confidence=0.95)
    assert 1.8 < estimate.ci_low <= estimate.ratio <= estimate.ci_high < 2.2
    assert estimate.pairs == 12 and estimate.metric == metric and estimate.decidable


def _noisy_run(rng, count, speedup):
    """Drift of up to 2x over the run, a step that hits one side of a random pair 3.5x (as a job
    starting mid-run does), and heavy-tailed bursts."""
    drift = np.exp(np.cumsum(rng.normal(0.0, 0.08, count)))
    hit = {int(rng.integers(count)): (str(rng.choice(["a", "b"])), 3.5)} if rng.random() < 0.5 else None
    return _pairs(rng, count, 10.0, 10.0 / speedup, spread=0.25, per_burst=25, drift=drift, hit=hit)


@pytest.mark.parametrize("speedup", [1.0, 1.3])
def test_one_look_covers_the_truth_at_its_level_under_drift_steps_and_outliers(speedup):
    rng = np.random.default_rng(11)
    runs, misses = 300, 0
    for _ in range(runs):
        estimate = speedup_interval(_noisy_run(rng, 12, speedup), "p50", 1, confidence=0.95)
        misses += not estimate.ci_low <= speedup <= estimate.ci_high
    assert misses / runs <= 0.06


def test_the_old_failure_a_pair_straddling_a_slowdown_no_longer_makes_0_30x():
    """Five bursts' p50 (ms, baseline/variant) from a real run where a job started mid-run."""
    bursts = [(4.56, 4.55), (4.58, 4.56), (4.61, 15.99), (16.32, 16.19), (16.50, 16.73)]
    pairs = [BurstPair([int(a * 1e6)] * 30, [int(b * 1e6)] * 30, a * 0.03, b * 0.03) for a, b in bursts]
    estimate = speedup_interval(pairs, "p50", 1, confidence=0.95)
    assert 0.95 < estimate.ratio < 1.02  # not 0.30x
    assert not estimate.decidable and estimate.ci_low <= 1.0 <= estimate.ci_high  # five pairs decide nothing


def _sequential_run(rng, speedup, looks, alphas, min_speedup):
    """The A/B pair's procedure: measure, look at the planned counts, stop when a look decides."""
    pairs = _noisy_run(rng, looks[-1], speedup)
    for count, look_alpha in zip(looks, alphas, strict=True):
        estimate = speedup_interval(pairs[:count], "p50", 1, 0.95, look_alpha)
        stop = stop_at_look(estimate, looks, min_speedup, out_of_time=count == looks[-1])
        if stop is not None:
            return estimate, stop
    raise AssertionError("the last look always stops")


@pytest.mark.parametrize("speedup", [1.0, 1.1])
def test_the_sequence_of_looks_keeps_its_error_rate_and_never_accepts_an_a_a_pair(speedup):
    """Coverage of the interval where the sequence stops, with the early first look: the truth 1.00
    (A/A) and the truth on the threshold itself, where stopping early is most tempting."""
    rng = np.random.default_rng(23)
    looks, alphas = planned_looks(5, 60, 0.05)
    runs, missed, accepted = 600, 0, 0
    for _ in range(runs):
        estimate, stop = _sequential_run(rng, speedup, looks, alphas, min_speedup=1.1)
        missed += not estimate.ci_low <= speedup <= estimate.ci_high
        accepted += stop == PairStop.ABOVE
    assert missed / runs <= 0.05
    if speedup == 1.0:
        assert accepted == 0


@pytest.mark.parametrize("speedup", [3.0, 1.5, 0.7])
def test_a_clear_speedup_or_slowdown_stops_at_the_first_look(speedup):
    rng = np.random.default_rng(29)
    looks, alphas = planned_looks(5, 60, 0.05)
    pairs = _pairs(rng, looks[-1], 10.0, 10.0 / speedup, spread=0.05, per_burst=25)
    estimate = speedup_interval(pairs[: looks[0]], "p50", 1, 0.95, alphas[0])
    stop = stop_at_look(estimate, looks, 1.1, out_of_time=False)
    assert stop == (PairStop.ABOVE if speedup > 1 else PairStop.BELOW) and estimate.pairs == looks[0] == 6


@pytest.mark.parametrize(("confidence", "max_pairs"), [(0.95, 120), (0.95, 2000), (0.99, 240), (0.8, 60)])
def test_looks_spend_the_error_rate_and_start_where_an_interval_exists(confidence, max_pairs):
    alpha = 1 - confidence
    looks, alphas = planned_looks(5, max_pairs, alpha)
    assert sum(alphas) <= alpha + 1e-12 and len(alphas) == len(looks)
    assert looks[0] == max(5, min_pairs_for(alpha * 2 / 3)) and 2.0 / 2 ** looks[0] <= alphas[0] <= alpha * 2 / 3
    for count, look_alpha in zip(looks, alphas, strict=True):
        assert speedup_interval(
            _pairs(np.random.default_rng(0), count, 4.0, 2.0), "p50", 1, confidence, look_alpha
        ).decidable
    assert sorted(set(looks)) == list(looks) and looks[-1] <= max_pairs


def test_too_few_pairs_are_not_decidable_and_say_their_real_level():
    rng = np.random.default_rng(3)
    estimate = speedup_interval(_pairs(rng, 5, 4.0, 2.0), "p50", 1, 0.95)
    assert not estimate.decidable and estimate.coverage == pytest.approx(1 - 2 / 32)


def test_same_speed_and_the_detectable_effect():
    rng = np.random.default_rng(3)
    estimate = speedup_interval(_pairs(rng, 20, 4.0, 4.0, spread=0.01), "p50", 1, 0.95)
    assert estimate.same_speed() and 1.0 < estimate.detectable_speedup < 1.03
    wide = speedup_interval(_pairs(rng, 20, 4.0, 4.0, spread=0.6, per_burst=5), "p50", 1, 0.95)
    assert wide.detectable_speedup > estimate.detectable_speedup
    assert math.isclose(wide.detectable_speedup, math.sqrt(wide.ci_high / wide.ci_low))


def test_pairing_cancels_drift_that_hits_both_sides():
    """The machine slows down 3x over the run; the per-pair ratios still find the 1.5x."""
    rng = np.random.default_rng(5)
    drift = np.linspace(1.0, 3.0, 12)
    estimate = speedup_interval(_pairs(rng, 12, 6.0, 4.0, spread=0.03, drift=drift), "p50", 1, 0.95)
    assert 1.4 < estimate.ci_low and estimate.ci_high < 1.6


def test_throughput_counts_items_per_second():
    pairs = [BurstPair([1_000_000] * 10, [500_000] * 20, 0.01, 0.01)] * 9
    estimate = speedup_interval(pairs, "throughput", batch_size=8, confidence=0.95)
    assert estimate.baseline == pytest.approx(8000.0)
    assert estimate.variant == pytest.approx(16000.0)
    assert estimate.ratio == pytest.approx(2.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no burst pairs"):
        speedup_interval([], "p50", 1, 0.95)
    with pytest.raises(ValueError, match="unknown metric 'p95'"):
        speedup_interval([BurstPair([1], [1], 1.0, 1.0)], "p95", 1, 0.95)


def test_tail_percentiles_need_more_iterations_per_burst():
    assert min_iterations_for("p50") == 5
    assert min_iterations_for("p99") == 1000
    assert min_iterations_for("throughput") == 1
