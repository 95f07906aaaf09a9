"""Speedup of a variant over its baseline from paired A/B bursts, with a bootstrap interval.

Pair k holds one burst of the baseline and one of the variant, taken back to back. Resampling
whole pairs (the same indices for both sides) keeps the pairing, so drift that hit both sides of
a pair cancels in the ratio. Latency metrics pool the resampled bursts, each summarised by a fixed
set of quantiles so that every burst weighs the same and a fast model's 20 000-iteration bursts
cost no more than a slow model's 10; throughput is items over seconds of the resampled bursts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from harness.measure.statistics import NS_PER_MS

LATENCY_QUANTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0}
# each burst is summarised by its quantiles at these levels (0, 0.5, ..., 100 percent)
SKETCH_LEVELS = np.linspace(0.0, 100.0, 201)
DEFAULT_RESAMPLES = 2000
RESAMPLE_CHUNK = 250


@dataclass(frozen=True)
class BurstPair:
    """One baseline burst and one variant burst, taken back to back."""

    baseline_ns: Sequence[int]
    variant_ns: Sequence[int]
    baseline_duration_s: float
    variant_duration_s: float


@dataclass(frozen=True)
class SpeedupEstimate:
    """Speedup > 1 means the variant is faster. `baseline`/`variant` are the metric's values
    (ms for latency metrics, items/s for throughput) on all pairs."""

    metric: str
    ratio: float
    ci_low: float
    ci_high: float
    confidence: float
    pairs: int
    baseline: float
    variant: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _sketch(latencies_ns: Sequence[int]) -> np.ndarray:
    return np.percentile(np.asarray(latencies_ns, dtype=np.float64) / NS_PER_MS, SKETCH_LEVELS)


def _pooled_quantile(sketches: np.ndarray, indices: np.ndarray, q: float) -> np.ndarray:
    """The q-th percentile of the pooled sketches of each row of `indices` (resamples x pairs)."""
    pooled = sketches[indices].reshape(indices.shape[0], -1)
    return np.percentile(pooled, q, axis=1)


def speedup_interval(
    pairs: Sequence[BurstPair],
    metric: str,
    batch_size: int,
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> SpeedupEstimate:
    """Point estimate on all pairs, percentile-bootstrap interval over resampled pairs."""
    if not pairs:
        raise ValueError("no burst pairs to estimate a speedup from")
    count = len(pairs)
    rng = np.random.default_rng(seed)
    all_rows = np.arange(count)[None, :]
    ratios = []
    if metric == "throughput":
        items_a = np.array([len(p.baseline_ns) * batch_size for p in pairs], dtype=np.float64)
        items_b = np.array([len(p.variant_ns) * batch_size for p in pairs], dtype=np.float64)
        seconds_a = np.array([p.baseline_duration_s for p in pairs])
        seconds_b = np.array([p.variant_duration_s for p in pairs])
        baseline_value = items_a.sum() / seconds_a.sum()
        variant_value = items_b.sum() / seconds_b.sum()
        for start in range(0, resamples, RESAMPLE_CHUNK):
            rows = rng.integers(0, count, size=(min(RESAMPLE_CHUNK, resamples - start), count))
            through_a = items_a[rows].sum(axis=1) / seconds_a[rows].sum(axis=1)
            through_b = items_b[rows].sum(axis=1) / seconds_b[rows].sum(axis=1)
            ratios.append(through_b / through_a)
        ratio = variant_value / baseline_value
    elif metric in LATENCY_QUANTILES:
        q = LATENCY_QUANTILES[metric]
        sketches_a = np.stack([_sketch(p.baseline_ns) for p in pairs])
        sketches_b = np.stack([_sketch(p.variant_ns) for p in pairs])
        baseline_value = float(_pooled_quantile(sketches_a, all_rows, q)[0])
        variant_value = float(_pooled_quantile(sketches_b, all_rows, q)[0])
        for start in range(0, resamples, RESAMPLE_CHUNK):
            rows = rng.integers(0, count, size=(min(RESAMPLE_CHUNK, resamples - start), count))
            ratios.append(_pooled_quantile(sketches_a, rows, q) / _pooled_quantile(sketches_b, rows, q))
        ratio = baseline_value / variant_value
    else:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join([*LATENCY_QUANTILES, 'throughput'])}")
    distribution = np.concatenate(ratios)
    tail = (1.0 - confidence) / 2.0
    ci_low, ci_high = np.quantile(distribution, [tail, 1.0 - tail])
    return SpeedupEstimate(
        metric=metric,
        ratio=float(ratio),
        ci_low=float(min(ci_low, ratio)),
        ci_high=float(max(ci_high, ratio)),
        confidence=confidence,
        pairs=count,
        baseline=float(baseline_value),
        variant=float(variant_value),
    )


def min_iterations_for(metric: str) -> int:
    """Iterations each side needs in all before a tail percentile means anything: ten beyond it."""
    if metric not in LATENCY_QUANTILES:
        return 1
    return int(np.ceil(10.0 / (1.0 - LATENCY_QUANTILES[metric] / 100.0)))
