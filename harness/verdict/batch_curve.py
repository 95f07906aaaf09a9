"""Speedup across batch sizes: the A/B speedup of a variant at each batch size asked for, and where
it starts or stops paying (width pruning that pays only at larger batches, 2:4 sparsity that helps
at 32 and hurts at 256). The policy's `batch_size` decides the verdict; the curve is reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.measure.speedup import SpeedupEstimate


@dataclass(frozen=True)
class BatchPoint:
    batch_size: int
    speedup: SpeedupEstimate | None  # None when the pair at this batch failed
    error: str | None = None

    def pays(self, min_speedup: float) -> bool | None:
        """True when the interval lies at or above min_speedup, False when below it, None when undecided."""
        if self.speedup is None or not self.speedup.decidable:
            return None
        if self.speedup.ci_low >= min_speedup:
            return True
        if self.speedup.ci_high < min_speedup:
            return False
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "speedup": self.speedup.as_dict() if self.speedup else None,
            "error": self.error,
        }


def crossovers(points: list[BatchPoint], min_speedup: float) -> list[str]:
    """Sentences saying where the variant starts or stops paying, between decided neighbours."""
    decided = [(point.batch_size, point.pays(min_speedup)) for point in sorted(points, key=lambda p: p.batch_size)]
    decided = [(batch, pays) for batch, pays in decided if pays is not None]
    sentences = []
    for (before, paid), (after, pays) in zip(decided, decided[1:], strict=False):
        if paid != pays:
            verb = "starts" if pays else "stops"
            sentences.append(f"{verb} paying (>= {min_speedup:.2f}x) between batch {before} and batch {after}")
    return sentences


def curve_text(points: list[BatchPoint], min_speedup: float) -> str:
    """One line: the speedup at each batch size, then the crossovers."""
    parts = []
    for point in sorted(points, key=lambda p: p.batch_size):
        if point.speedup is None:
            parts.append(f"batch {point.batch_size}: failed")
        else:
            estimate = point.speedup
            parts.append(
                f"batch {point.batch_size}: {estimate.ratio:.2f}x [{estimate.ci_low:.2f}, {estimate.ci_high:.2f}]"
            )
    text = "speedup by batch size: " + ", ".join(parts)
    found = crossovers(points, min_speedup)
    return text + ("; " + "; ".join(found) if found else "")
