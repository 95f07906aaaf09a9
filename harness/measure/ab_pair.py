"""One A/B comparison: baseline and variant, each in its own live worker, timed in alternating
bursts (A B, B A, A B, ...) until the speedup interval lies clearly on one side of the threshold
or the pair's time budget runs out.

Alternating the order within pairs (ABBA) cancels a steady drift as well as a step. Each burst
has at least the iterations its metric's percentile needs. The interval is looked at only at
planned pair counts (the first at least `min_pairs`), each look spending a share of the error rate,
so that stopping early keeps the interval's level. Each burst also reports how much of the host's
CPU other processes used while it ran; a pair where that exceeded CONTENDED_OTHER_CPU_SHARE on
either side is marked contended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.measure.schedule import ABSchedule
from harness.measure.speedup import (
    BurstPair,
    SpeedupEstimate,
    min_iterations_for,
    planned_looks,
    speedup_interval,
)
from harness.measure.statistics import summarize_latencies_ns
from targets.errors import FailureKind, TextEnum
from targets.runners.base import BurstWorker, Runner, WorkerRequest
from targets.runners.live import LiveWorkerFailed

# other processes' share of the host's CPU during a burst above which its pair is contended
CONTENDED_OTHER_CPU_SHARE = 0.25


class PairStop(TextEnum):
    """Why the bursts of a pair stopped."""

    ABOVE = "interval_above_threshold"
    BELOW = "interval_below_threshold"
    OUT_OF_TIME = "time_budget"
    # out of time before min_pairs pairs (or the metric's iterations) were measured
    TOO_LITTLE_DATA = "too_little_data"


@dataclass(frozen=True)
class StopRule:
    """When the interval decides the pair: its level, and the threshold it must lie clearly above or below."""

    min_speedup: float
    confidence: float


@dataclass
class SideSummary:
    """What one side's worker reported: provider, cold start, memory, pooled latencies."""

    provider: str | None = None
    cold_start_ms: dict[str, float] | None = None
    memory: dict[str, int] | None = None
    latency_ms: dict[str, float] | None = None
    iterations: int = 0
    warnings: list[str] = field(default_factory=list)  # what its worker saw (GPU clocks held down, ...)
    launch_bound: dict[str, float] | None = None  # enqueue vs device ms when the device waited for the host
    runtime: dict[str, Any] = field(default_factory=dict)  # what the backend decided on load (2:4 layers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "cold_start_ms": self.cold_start_ms,
            "memory": self.memory,
            "latency_ms": self.latency_ms,
            "iterations": self.iterations,
            "warnings": self.warnings,
            "runtime": self.runtime,
        }


@dataclass
class PairOutcome:
    status: str = "failed"  # "ok" | "failed"
    error: str | None = None
    error_kind: FailureKind | None = None  # FELL_BACK when a backend ran something other than asked
    speedup: SpeedupEstimate | None = None
    stopped_by: PairStop | None = None
    duration_s: float = 0.0
    baseline: SideSummary = field(default_factory=SideSummary)
    variant: SideSummary = field(default_factory=SideSummary)
    # per pair: the metric of each side's burst (ms, or items/s for throughput), the share of the
    # host's CPU other processes used during each burst, and whether that makes it contended
    bursts: list[dict[str, Any]] = field(default_factory=list)
    # the planned looks, the error rate each may spend, and the pair counts looked at
    looks: dict[str, Any] = field(default_factory=dict)

    def sides(self) -> tuple[tuple[str, SideSummary], tuple[str, SideSummary]]:
        return (("baseline", self.baseline), ("variant", self.variant))

    def contended_pairs(self) -> int:
        return sum(1 for burst in self.bursts if burst.get("contended"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "pairs": len(self.bursts),
            "stopped_by": None if self.stopped_by is None else str(self.stopped_by),
            "duration_s": round(self.duration_s, 3),
            "baseline": self.baseline.as_dict(),
            "variant": self.variant.as_dict(),
            "contended_pairs": self.contended_pairs(),
            "looks": self.looks,
            "bursts": self.bursts,
        }


def _burst_metric(latencies_ns: Sequence[int], duration_s: float, metric: str, batch_size: int) -> float:
    if metric == "throughput":
        return batch_size * len(latencies_ns) / duration_s
    summary = summarize_latencies_ns(latencies_ns)
    return float(getattr(summary, metric))


def run_ab_pair(
    baseline_request: WorkerRequest,
    variant_request: WorkerRequest,
    schedule: ABSchedule,
    stop_rule: StopRule,
    runner: Runner,
    load_timeout_s: float,
    progress: Callable[[str], None] | None = None,
) -> PairOutcome:
    """Measure the pair on `runner`; a worker failure becomes a failed outcome with the worker's message."""
    outcome = PairOutcome()
    baseline = runner.start_live_worker(baseline_request, "baseline")
    variant = runner.start_live_worker(variant_request, "variant")
    started = time.monotonic()
    try:
        for side, worker in ((outcome.baseline, baseline), (outcome.variant, variant)):
            ready = worker.start(load_timeout_s)
            side.provider = ready.get("provider")
            side.runtime = dict(ready.get("runtime") or {})
            side.cold_start_ms = ready.get("cold_start_ms")
        pairs = _alternate_bursts(baseline, variant, schedule, stop_rule, outcome, progress)
        for side, worker in ((outcome.baseline, baseline), (outcome.variant, variant)):
            stopped = worker.stop()
            side.memory, side.warnings = stopped.get("memory"), list(stopped.get("warnings") or [])
            side.launch_bound = stopped.get("launch_bound")
        outcome.baseline.latency_ms, outcome.baseline.iterations = _pooled_summary([p.baseline_ns for p in pairs])
        outcome.variant.latency_ms, outcome.variant.iterations = _pooled_summary([p.variant_ns for p in pairs])
        outcome.status = "ok"
    except LiveWorkerFailed as error:
        outcome.error, outcome.error_kind = str(error), error.kind
    finally:
        baseline.close()
        variant.close()
        outcome.duration_s = time.monotonic() - started
    return outcome


def _alternate_bursts(
    baseline: BurstWorker,
    variant: BurstWorker,
    schedule: ABSchedule,
    stop_rule: StopRule,
    outcome: PairOutcome,
    progress: Callable[[str], None] | None,
) -> list[BurstPair]:
    """Bursts in ABBA order; the interval is looked at only at the planned pair counts (and once
    more when time runs out), each look spending its share of the error rate."""
    pairs: list[BurstPair] = []
    burst_iterations = min_iterations_for(schedule.metric)
    max_pairs = max(1, int(schedule.max_pair_duration_s // (2 * schedule.burst_duration_s)))
    looks, look_alpha = planned_looks(schedule.min_pairs, max_pairs, 1.0 - stop_rule.confidence)
    outcome.looks = {"planned": list(looks), "alpha_per_look": look_alpha, "taken": []}
    started = time.monotonic()
    while True:
        first, second = (baseline, variant) if len(pairs) % 2 == 0 else (variant, baseline)
        results = {first.label: first.burst(schedule.burst_duration_s, burst_iterations)}
        results[second.label] = second.burst(schedule.burst_duration_s, burst_iterations)
        a, b = results["baseline"], results["variant"]
        pairs.append(BurstPair(a["latencies_ns"], b["latencies_ns"], a["duration_s"], b["duration_s"]))
        other_cpu = [float(a.get("other_cpu_share") or 0.0), float(b.get("other_cpu_share") or 0.0)]
        outcome.bursts.append(
            {
                "baseline": _burst_metric(a["latencies_ns"], a["duration_s"], schedule.metric, schedule.batch_size),
                "variant": _burst_metric(b["latencies_ns"], b["duration_s"], schedule.metric, schedule.batch_size),
                "other_cpu_share": other_cpu,
                "contended": max(other_cpu) > CONTENDED_OTHER_CPU_SHARE,
            }
        )
        elapsed = time.monotonic() - started
        out_of_time = elapsed + elapsed / len(pairs) > schedule.max_pair_duration_s  # no room for another pair
        if len(pairs) not in looks and not out_of_time:
            continue
        estimate = speedup_interval(pairs, schedule.metric, schedule.batch_size, stop_rule.confidence, look_alpha)
        outcome.speedup = estimate
        outcome.looks["taken"].append(len(pairs))
        outcome.stopped_by = stop_at_look(estimate, looks, stop_rule.min_speedup, out_of_time)
        if outcome.stopped_by:
            return pairs
        if progress:
            progress(
                f"  {len(pairs)} pairs, speedup {estimate.ratio:.2f}x [{estimate.ci_low:.2f}, "
                f"{estimate.ci_high:.2f}] still straddles {stop_rule.min_speedup:.2f}"
            )


def stop_at_look(
    estimate: SpeedupEstimate, looks: Sequence[int], min_speedup: float, out_of_time: bool
) -> PairStop | None:
    """Whether a look at `estimate` ends the pair, and why; None to measure on."""
    if estimate.pairs < looks[0] or not estimate.decidable:
        return PairStop.TOO_LITTLE_DATA if out_of_time else None
    if estimate.ci_low >= min_speedup:
        return PairStop.ABOVE
    if estimate.ci_high < min_speedup:
        return PairStop.BELOW
    if out_of_time or estimate.pairs >= looks[-1]:
        return PairStop.OUT_OF_TIME
    return None


def _pooled_summary(bursts: list[Sequence[int]]) -> tuple[dict[str, float] | None, int]:
    pooled = [value for burst in bursts for value in burst]
    if not pooled:
        return None, 0
    return summarize_latencies_ns(pooled).as_dict(), len(pooled)
