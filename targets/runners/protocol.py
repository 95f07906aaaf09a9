"""The measurement protocol: how long to warm up, when to stop timing, when to give up on a cell.

Help text lives beside each field; the CLI builds its options from it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from targets.errors import UsageError

# time a worker gets to start, import its runtime and load the model, on top of the timed phases
DEFAULT_LOAD_ALLOWANCE_S = 120.0
# an A/B burst that must reach a tail percentile's iterations may run this long at most
TAIL_BURST_CAP_S = 60.0
# a burst for a median (a few iterations) waits this long at most: a model slower than this gives
# bursts of fewer iterations, down to one, since more pairs narrow the interval more than steadier bursts
MEDIAN_BURST_CAP_S = 2.0
MEDIAN_BURST_ITERATIONS = 5


def burst_cap_s(burst_s: float, min_iterations: int) -> float:
    """How long one A/B burst may run while it reaches `min_iterations` (it always times one)."""
    if min_iterations <= 1:
        return burst_s
    if min_iterations <= MEDIAN_BURST_ITERATIONS:
        return max(burst_s, MEDIAN_BURST_CAP_S)
    return max(burst_s, TAIL_BURST_CAP_S)


@dataclass(frozen=True)
class MeasurementProtocol:
    warmup_min_iterations: int = field(
        default=10, metadata={"help": "untimed iterations before timing starts (at least)"}
    )
    warmup_min_duration_s: float = field(
        default=0.5, metadata={"help": "seconds of untimed warm-up before timing starts (at least)"}
    )
    min_iterations: int = field(
        default=50, metadata={"help": "timed iterations per cell, at least (default %(default)s)"}
    )
    min_duration_s: float = field(
        default=2.0, metadata={"help": "seconds of timed iterations per cell, at least (default %(default)s)"}
    )
    max_duration_s: float = field(
        default=60.0,
        metadata={
            "help": "cap on the timed phase of a cell, even if --min-iterations is not reached (default %(default)s)"
        },
    )
    load_allowance_s: float = field(
        default=DEFAULT_LOAD_ALLOWANCE_S,
        metadata={"help": "seconds a worker may take to start and load the model before it counts as hung"},
    )

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"--{item.name.replace('_', '-')} must be a finite number of seconds, got {value}")
        if self.min_iterations < 1:
            raise UsageError(f"--min-iterations must be >= 1, got {self.min_iterations}")
        if self.warmup_min_iterations < 0:
            raise UsageError(f"warm-up iterations must be >= 0, got {self.warmup_min_iterations}")
        for name in ("warmup_min_duration_s", "min_duration_s", "load_allowance_s"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.max_duration_s <= 0:
            raise UsageError(f"--max-duration-s must be > 0, got {self.max_duration_s}")
        if self.min_duration_s > self.max_duration_s:
            raise UsageError(
                f"--min-duration-s ({self.min_duration_s}) exceeds --max-duration-s ({self.max_duration_s})"
            )

    def cell_timeout_s(self) -> float:
        """After this long a worker is considered hung and killed."""
        warmup_cap_s = max(self.warmup_min_duration_s, self.max_duration_s)
        return self.load_allowance_s + warmup_cap_s + self.max_duration_s

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasurementProtocol:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})
