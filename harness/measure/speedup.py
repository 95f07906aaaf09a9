"""Speedup of a variant over its baseline from paired A/B bursts, with a calibrated interval.

Pair k holds one burst of the baseline and one of the variant, taken back to back (in ABBA
order). Each pair gives one number: the log of the ratio of the two bursts' metric (p50, p90 or
p99 of the burst's iterations, or its items/s). The speedup is exp of the Hodges-Lehmann estimate
of those log ratios (the median of their pairwise means), and its interval is the exact
distribution-free interval that inverts the Wilcoxon signed-rank test.

Why this method:
- one number per unit: iterations within a burst are not independent (they share the burst's
  machine state), so pooling thousands of them as if they were overstates the evidence; pairs are
  the units that were randomised (ABBA order). Pairs measured in the same worker processes within
  the same second or two are not independent either (they share the processes' speed offset and the
  host's state of the moment), so pairs carry a `block`: the pairs of one set of worker processes
  (a fast model's shared workers, renewed for every block). Each block's pairs give one number, the
  mean of their log ratios, and the interval counts blocks (Kalibera & Jones: replicate at the level
  that varies, and let the interval count it). A model whose pairs each run in their own time slot
  of a second or more has one pair per block;
- under A/A the two sides are exchangeable, so each pair's log ratio is symmetric around 0 — the
  one assumption the signed-rank interval needs — whatever the drift, the noise or its shape;
- exact at small n (a percentile bootstrap over five pairs is anti-conservative), and robust: a
  pair that straddled a step in the host's speed is one outlying rank, not a 0.30x point estimate
  (its breakdown point is 29%);
- with n pairs no distribution-free interval is narrower than the extremes at level 1 - 2/2^n: the
  `coverage` field says which level the interval really has, and an interval that could not reach
  the level asked for is marked `decidable = False`.

Repeated looks: `planned_looks` spreads the error rate over the looks the A/B pair will take
(weighted Bonferroni: most of it on an early first look, where clear cases stop, the rest evenly
over the later ones), so stopping at the first look whose interval clears the threshold keeps its level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np

from harness.measure.schedule import DECODER_METRICS
from harness.measure.statistics import NS_PER_MS
from targets.runners.protocol import MEDIAN_BURST_ITERATIONS

# a decoder phase's iterations are each a whole phase (a prompt's forward, a window of decode steps): their median
LATENCY_QUANTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, **dict.fromkeys(DECODER_METRICS, 50.0)}
METHOD = (
    "hodges-lehmann + wilcoxon signed-rank interval over per-block log ratios (a block: one pair, or the pairs "
    "of one set of worker processes)"
)
# beyond this many pairs the signed-rank distribution is the normal approximation (exact is slow)
EXACT_UP_TO_PAIRS = 300
# a later look waits for this many times the pairs of the one before
LOOK_GROWTH = 1.5
# the first look may spend up to this share of the error rate: at 95%, 6 pairs all clear of the
# threshold decide (a level of 1 - 1/32); the later looks share the rest
FIRST_LOOK_SHARE = 2.0 / 3.0
# an interval inside [1/(1+band), 1+band] says "the same speed"
SAME_SPEED_BAND = 0.03


@dataclass(frozen=True)
class BurstPair:
    """One baseline burst and one variant burst, taken back to back."""

    baseline_ns: Sequence[int]
    variant_ns: Sequence[int]
    baseline_duration_s: float
    variant_duration_s: float
    # pairs of one block share their worker processes and moment: the interval's unit (None: a block of its own)
    block: int | None = None


@dataclass(frozen=True)
class SpeedupEstimate:
    """Speedup > 1 means the variant is faster. `baseline`/`variant` are the metric's values
    (ms for latency metrics, items/s for throughput) over all pairs' iterations, for display;
    the ratio and its interval come from the blocks' log ratios (`blocks` of them, from `pairs`
    pairs; one pair per block unless pairs shared processes). `confidence` is the level asked for,
    `coverage` the level the interval has (lower when too few pairs, higher for a look of a
    sequence); `detectable_speedup` is the smallest speedup over 1 this interval's width can tell
    apart from none (exp of its half-width in log space)."""

    metric: str
    ratio: float
    ci_low: float
    ci_high: float
    confidence: float
    pairs: int
    baseline: float
    variant: float
    coverage: float = float("nan")
    decidable: bool = True
    detectable_speedup: float = float("nan")
    method: str = METHOD
    blocks: int = 0  # the interval's units; 0 in records from before blocks (one pair each)
    # > 1 when the run sat away from the host's usual level for the baseline by this factor: the
    # interval measured in that state, widened by it (harness/measure/host_state.py)
    widened_by: float = 1.0

    @property
    def units(self) -> int:
        """What the interval counts: blocks, or pairs in records from before blocks."""
        return self.blocks or self.pairs

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)

    def widened(self, factor: float) -> SpeedupEstimate:
        """This estimate with its interval widened by `factor` on both sides (in log space)."""
        if factor <= 1.0:
            return self
        return replace(self, ci_low=self.ci_low / factor, ci_high=self.ci_high * factor, widened_by=round(factor, 4))

    def same_speed(self, band: float = SAME_SPEED_BAND) -> bool:
        """The interval lies inside the equivalence band around 1."""
        return 1.0 / (1.0 + band) <= self.ci_low and self.ci_high <= 1.0 + band


@lru_cache(maxsize=512)
def _signed_rank_cdf(pairs: int) -> np.ndarray:
    """P(W+ <= k) for k = 0..n(n+1)/2 under the null (all 2^n sign patterns equally likely)."""
    counts = np.zeros(pairs * (pairs + 1) // 2 + 1)
    counts[0] = 1.0
    for rank in range(1, pairs + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return np.cumsum(counts) / 2.0**pairs


def _interval_rank(pairs: int, alpha: float) -> tuple[int, float]:
    """(k, coverage): the interval is Walsh averages k and M-1-k (0-based); k = -1 when no
    interval of level 1 - alpha exists with this many pairs."""
    if pairs > EXACT_UP_TO_PAIRS:
        from statistics import NormalDist

        mean = pairs * (pairs + 1) / 4.0
        sd = math.sqrt(pairs * (pairs + 1) * (2 * pairs + 1) / 24.0)
        k = int(math.floor(mean - NormalDist().inv_cdf(1 - alpha / 2) * sd))
        return max(k, 0), 1.0 - alpha
    cdf = _signed_rank_cdf(pairs)
    below = np.nonzero(cdf <= alpha / 2.0)[0]
    if below.size == 0:
        return -1, 1.0 - 2.0 * float(cdf[0])
    k = int(below[-1])
    return k, 1.0 - 2.0 * float(cdf[k])


def min_pairs_for(alpha: float) -> int:
    """The fewest pairs for which a distribution-free interval of level 1 - alpha exists."""
    return max(2, math.ceil(1.0 - math.log2(alpha)))


def attainable_alpha(pairs: int, alpha: float) -> float:
    """The largest error rate <= `alpha` that a signed-rank interval over `pairs` pairs really has
    (its levels are discrete: 2 P(W+ <= k)); 0 when none exists."""
    k, coverage = _interval_rank(pairs, alpha)
    return 0.0 if k < 0 else 1.0 - coverage


def planned_looks(first: int, max_pairs: int, alpha: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Pair counts at which the interval is looked at, and the error rate each look may spend, so
    that all of them together keep `alpha` (weighted Bonferroni).

    The first look comes at the fewest pairs (at least `first`) whose interval can reach a level of
    1 - FIRST_LOOK_SHARE * alpha, and spends just what that interval really has (at 95%: 6 pairs,
    1/32): a clear case stops there. The rest of `alpha` is split evenly over the later looks, each
    LOOK_GROWTH times the pairs of the one before, up to `max_pairs`."""
    first_count = max(first, min_pairs_for(alpha * FIRST_LOOK_SHARE))
    first_alpha = attainable_alpha(first_count, alpha * FIRST_LOOK_SHARE)
    rest = alpha - first_alpha
    later_count = 1
    while True:
        later_alpha = rest / later_count
        later = [max(math.ceil(first_count * LOOK_GROWTH), min_pairs_for(later_alpha))]
        while math.ceil(later[-1] * LOOK_GROWTH) <= max_pairs:
            later.append(math.ceil(later[-1] * LOOK_GROWTH))
        later = [count for count in later if count <= max_pairs]
        if len(later) <= later_count:
            return (first_count, *later), (first_alpha, *[later_alpha] * len(later))
        later_count = len(later)


def pair_log_ratios(pairs: Sequence[BurstPair], metric: str) -> np.ndarray:
    """log(speedup) of each pair: baseline/variant for latency, variant/baseline for throughput."""
    if metric == "throughput":
        return np.array(
            [
                math.log((len(p.variant_ns) / p.variant_duration_s) / (len(p.baseline_ns) / p.baseline_duration_s))
                for p in pairs
            ]
        )
    if metric not in LATENCY_QUANTILES:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join([*LATENCY_QUANTILES, 'throughput'])}")
    q = LATENCY_QUANTILES[metric]
    return np.array(
        [
            math.log(np.percentile(np.asarray(p.baseline_ns, dtype=np.float64), q))
            - math.log(np.percentile(np.asarray(p.variant_ns, dtype=np.float64), q))
            for p in pairs
        ]
    )


def block_log_ratios(pairs: Sequence[BurstPair], metric: str) -> np.ndarray:
    """One log(speedup) per block, in the order the blocks began: the mean of its pairs' log ratios."""
    per_pair = pair_log_ratios(pairs, metric)
    blocks: dict[object, list[float]] = {}
    for index, (pair, value) in enumerate(zip(pairs, per_pair, strict=True)):
        blocks.setdefault(("block", pair.block) if pair.block is not None else ("pair", index), []).append(float(value))
    return np.array([float(np.mean(values)) for values in blocks.values()])


def _pooled_values(pairs: Sequence[BurstPair], metric: str, batch_size: int) -> tuple[float, float]:
    if metric == "throughput":
        items_a = sum(len(p.baseline_ns) for p in pairs) * batch_size
        items_b = sum(len(p.variant_ns) for p in pairs) * batch_size
        return items_a / sum(p.baseline_duration_s for p in pairs), items_b / sum(p.variant_duration_s for p in pairs)
    q = LATENCY_QUANTILES[metric]
    pooled_a = np.concatenate([np.asarray(p.baseline_ns, dtype=np.float64) for p in pairs]) / NS_PER_MS
    pooled_b = np.concatenate([np.asarray(p.variant_ns, dtype=np.float64) for p in pairs]) / NS_PER_MS
    return float(np.percentile(pooled_a, q)), float(np.percentile(pooled_b, q))


def log_ratio_interval(log_ratios: np.ndarray, alpha: float) -> tuple[float, float, float, float, bool]:
    """(estimate, low, high, coverage, decidable) in log space: Hodges-Lehmann and the signed-rank interval."""
    n = len(log_ratios)
    rows, cols = np.triu_indices(n)
    walsh = np.sort((log_ratios[rows] + log_ratios[cols]) / 2.0)
    estimate = float(np.median(walsh))
    k, coverage = _interval_rank(n, alpha)
    decidable = k >= 0
    k = max(k, 0)
    return estimate, float(walsh[k]), float(walsh[len(walsh) - 1 - k]), coverage, decidable


def speedup_interval(
    pairs: Sequence[BurstPair], metric: str, batch_size: int, confidence: float, look_alpha: float | None = None
) -> SpeedupEstimate:
    """The speedup and its interval from `pairs`. `look_alpha` (from `planned_looks`) is the error
    rate of this look of a sequence; by default the whole 1 - confidence (one look)."""
    if not pairs:
        raise ValueError("no burst pairs to estimate a speedup from")
    log_ratios = block_log_ratios(pairs, metric)
    alpha = (1.0 - confidence) if look_alpha is None else look_alpha
    estimate, low, high, coverage, decidable = log_ratio_interval(log_ratios, alpha)
    baseline_value, variant_value = _pooled_values(pairs, metric, batch_size)
    return SpeedupEstimate(
        metric=metric,
        ratio=math.exp(estimate),
        ci_low=math.exp(low),
        ci_high=math.exp(high),
        confidence=confidence,
        pairs=len(pairs),
        baseline=baseline_value,
        variant=variant_value,
        coverage=round(coverage, 5),
        decidable=decidable,
        detectable_speedup=math.exp((high - low) / 2.0),
        blocks=len(log_ratios),
    )


# iterations one burst needs before its percentile means anything: a median is stable after a
# few; a tail needs ten iterations beyond it (LoadGen-style: p99 rests on 1000, p90 on 100). A
# burst waits for them up to targets.runners.protocol.burst_cap_s (2 s for p50, 60 s for tails)
# (a decoder phase's burst: one iteration at least; a prefill of a long prompt takes seconds)
BURST_MIN_ITERATIONS = {"p50": MEDIAN_BURST_ITERATIONS, "p90": 100, "p99": 1000, "throughput": 1}


def min_iterations_for(metric: str) -> int:
    """Iterations each burst of an A/B pair needs for `metric`."""
    return BURST_MIN_ITERATIONS.get(metric, 1)
