"""Summary statistics of recorded iteration latencies (percentiles, spread, throughput)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class LatencySummary:
    """Latency distribution of one cell, in milliseconds."""

    p50: float
    p90: float
    p95: float
    p99: float
    mean: float
    std: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks.

    Matches numpy's default ("linear") method; `sorted_values` must be sorted ascending.
    """
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must lie in [0, 100], got {q}")
    position = (len(sorted_values) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction


def summarize_latencies_ns(latencies_ns: Sequence[int]) -> LatencySummary:
    """Summarise per-iteration latencies given in nanoseconds; the result is in ms."""
    if not latencies_ns:
        raise ValueError("no latencies recorded")
    values_ms = sorted(value / NS_PER_MS for value in latencies_ns)
    count = len(values_ms)
    mean = math.fsum(values_ms) / count
    # sample standard deviation (n - 1); a single iteration has no spread
    variance = math.fsum((v - mean) ** 2 for v in values_ms) / (count - 1) if count > 1 else 0.0
    return LatencySummary(
        p50=percentile(values_ms, 50),
        p90=percentile(values_ms, 90),
        p95=percentile(values_ms, 95),
        p99=percentile(values_ms, 99),
        mean=mean,
        std=math.sqrt(variance),
        min=values_ms[0],
        max=values_ms[-1],
    )


def coefficient_of_variation(summary: LatencySummary) -> float:
    """std / mean: the relative spread; 0.0 for a zero mean."""
    return summary.std / summary.mean if summary.mean > 0 else 0.0


def throughput_per_s(batch_size: int, iterations: int, duration_s: float) -> float:
    """Items per second: batch x iterations over the timed duration."""
    if duration_s <= 0:
        raise ValueError(f"duration must be positive, got {duration_s}")
    return batch_size * iterations / duration_s
