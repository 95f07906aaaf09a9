"""The A/B schedule: what an A/B pair measures (metric, batch size) and how long it may take. It is
the measuring half of the verification policy; the acceptance rules are the other half."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from targets.errors import SpeedproofError, did_you_mean

# a generative decoder's phases (harness/decoders): each timed iteration is one phase, its figure in ms (per
# token for decode); the A/B compares the median of each burst's phase figures
DECODER_METRICS = {"decode_ms_per_token": "decode", "prefill_ms": "prefill", "ttft_ms": "ttft"}
METRICS = ("p50", "p90", "p99", "throughput", *DECODER_METRICS)
# beyond these a policy is a typo, and the arithmetic of looks and blocks would overflow
MAX_DURATION_S = 7 * 24 * 3600.0
MAX_PAIRS = 1_000_000


def not_finite(part: Any) -> list[str]:
    """One problem per float field of a policy part that is NaN or infinite (no range check can
    catch those: every comparison with NaN is false, and an infinite time limit is none)."""
    return [
        f"{item.name} = {getattr(part, item.name)}; must be a finite number"
        for item in fields(part)
        if isinstance(getattr(part, item.name), float) and not math.isfinite(getattr(part, item.name))
    ]


def invalid_policy(problems: list[str]) -> None:
    """Raise one error listing every out-of-range value of a policy part."""
    if problems:
        raise SpeedproofError("invalid policy: " + "; ".join(problems))


@dataclass(frozen=True)
class ABSchedule:
    """What an A/B pair measures and how long it may take."""

    metric: str = field(
        default="p50",
        metadata={
            "help": "what the speedup is measured on: p50 | p90 | p99 latency, or throughput (items/s); for a "
            "generative decoder, the phase that must pay: decode_ms_per_token (the default there), prefill_ms (at "
            "every prompt length) or ttft_ms (time to first token)",
            "choices": METRICS,
        },
    )
    batch_size: int = field(default=1, metadata={"help": "batch size of the A/B comparison"})
    max_pair_duration_s: float = field(
        default=30.0,
        metadata={
            "help": "time budget of one A/B pair, from its first burst; out of time with the interval on the "
            "threshold: INCONCLUSIVE"
        },
    )
    burst_duration_s: float = field(
        default=0.25,
        metadata={
            "help": "length of one timed burst of each side of an A/B pair (longer when the metric's percentile "
            "needs more iterations: 5 for p50, 100 for p90, 1000 for p99)"
        },
    )
    min_pairs: int = field(
        default=5,
        metadata={
            "help": "blocks before the first look at the interval (a block is one burst pair, or for fast models "
            "the pairs of one set of worker processes); raised to what a distribution-free interval at the first "
            "look's level needs (6 at 95%%)"
        },
    )
    fresh_workers_below_ms: float = field(
        default=0.5,
        metadata={
            "help": "when both sides of the first burst pair run faster than this (p50, ms), the later pairs take "
            "turns in two worker processes that have each loaded both sides, in opposite orders (two fresh ones "
            "every 2 pairs, a block the interval counts once; where the runner has no such workers, a fresh "
            "worker process per side for every pair), with 0.1 s bursts: a process carries a speed offset of its "
            "own (a few %% on a 0.04 ms model, scripts/process_offset.py), which one process per side for the "
            "whole run would turn into a bias the interval cannot see; 0 = off"
        },
    )
    min_span_s: float = field(
        default=10.0,
        metadata={
            "help": "for fast models (both sides under fresh_workers_below_ms): no decision before the counted "
            "blocks span this many seconds. A shared VM's speed moves in states lasting seconds to tens of "
            "seconds, and a sub-ms model's ratio moves with them (1.46x in one state, 1.00x in the next, "
            "measured); blocks spread over more time sample more of them. A pair out of time (max_pair_duration_s) "
            "decides on what it has; 0 = off"
        },
    )
    throughput_batch_size: int = field(
        default=0,
        metadata={
            "help": "when > 0, a variant must also reach min_speedup in throughput at this batch size (a second "
            "A/B pair), beside the metric at batch_size: the cuda-gpu profile asks for p50 at batch 1 and "
            "throughput at 64; 0 = off"
        },
    )
    probe_batch_size: int = field(
        default=0,
        metadata={
            "help": "when > 0, a variant with fewer MACs that misses the threshold is also compared at this batch "
            "size, to show whether its gain appears only at larger batches; 0 = off"
        },
    )

    def __post_init__(self) -> None:
        problems = not_finite(self)
        if problems:
            invalid_policy(problems)
        if self.metric not in METRICS:
            problems.append(
                f"metric = {self.metric!r}{did_you_mean(self.metric, METRICS)}; valid: {', '.join(METRICS)}"
            )
        if self.batch_size < 1:
            problems.append(f"batch_size = {self.batch_size}; must be >= 1")
        if self.burst_duration_s <= 0:
            problems.append(f"burst_duration_s = {self.burst_duration_s}; must be > 0")
        if self.min_pairs < 2:
            problems.append(f"min_pairs = {self.min_pairs}; must be >= 2 (an interval needs pairs to resample)")
        if self.max_pair_duration_s < self.burst_duration_s * 2 * self.min_pairs:
            problems.append(
                f"max_pair_duration_s = {self.max_pair_duration_s} leaves no room for min_pairs = {self.min_pairs} "
                f"pairs of {self.burst_duration_s} s bursts; raise it to at least "
                f"{self.burst_duration_s * 2 * self.min_pairs:g}"
            )
        for key in ("burst_duration_s", "max_pair_duration_s", "min_span_s"):
            if getattr(self, key) > MAX_DURATION_S:
                problems.append(f"{key} = {getattr(self, key):g}; must be at most {MAX_DURATION_S:g} s (a week)")
        if self.min_pairs > MAX_PAIRS:
            problems.append(f"min_pairs = {self.min_pairs}; must be at most {MAX_PAIRS}")
        if self.min_span_s < 0:
            problems.append(f"min_span_s = {self.min_span_s}; must be >= 0 (0 = off)")
        if self.fresh_workers_below_ms < 0:
            problems.append(f"fresh_workers_below_ms = {self.fresh_workers_below_ms}; must be >= 0 (0 = off)")
        if self.throughput_batch_size < 0:
            problems.append(f"throughput_batch_size = {self.throughput_batch_size}; must be >= 0 (0 = off)")
        if self.probe_batch_size < 0:
            problems.append(f"probe_batch_size = {self.probe_batch_size}; must be >= 0 (0 = off)")
        invalid_policy(problems)
