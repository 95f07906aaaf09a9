"""One A/B comparison: baseline and variant, each in its own live worker, timed in alternating
bursts (A B, B A, A B, ...) until the speedup interval lies clearly on one side of the threshold
or the pair's time budget runs out.

A worker process carries a speed offset of its own (memory layout, cache sets: a few % on a model
of tens of microseconds, none measurable at a millisecond; scripts/process_offset.py), which every
pair of one process pair shares and the interval, treating pairs as independent, cannot see. So
when both sides of the first pair are faster than the schedule's `fresh_workers_below_ms`, every
later pair gets a fresh worker per side: the offset becomes part of each pair's noise. The first
start is one side after the other (each side's cold start is its own); fresh pairs load side by
side, warm up briefly and take short bursts, each after a pause that lets the other side's runtime
go quiet: at that size a pair's noise is its processes' offset, not its bursts' sampling.

Alternating the order within pairs (ABBA) cancels a steady drift as well as a step. Each burst
has at least the iterations its metric's percentile needs. The interval is looked at only at
planned pair counts (the first as early as an interval exists, at least `min_pairs`), each look
spending its share of the error rate, so that stopping early keeps the interval's level. Each
burst also reports how much of the host's CPU other processes used while it ran; a pair where
that exceeded CONTENDED_OTHER_CPU_SHARE on either side is marked contended.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
from targets.interrupts import raise_if_interrupted
from targets.runners.base import BurstWorker, Runner, WorkerRequest
from targets.runners.live import LiveWorkerFailed

# other processes' share of the host's CPU during a burst above which its pair is contended
CONTENDED_OTHER_CPU_SHARE = 0.25
# with fresh workers per pair: each burst lasts at most this long (a model under 0.5 ms runs
# hundreds of iterations in it), and a fresh worker warms up this long (the first start warmed up
# for the protocol's full warm-up). Measured on digits-cnn (0.17 ms, A/A, 19 fresh pairs each, this
# 2-core host): sd of the pairs' log ratios 0.13 with these, 0.11-0.13 with the protocol's 0.5 s
# warm-up and 0.25 s bursts (2.0 s a pair), 0.20 with 0.05 s of each: a fresh process is still
# settling for a few hundred ms, and pairs that cheap need three times as many
FRESH_WORKER_BURST_S = 0.1
RENEWAL_WARMUP_S = 0.25
# before each such short burst, the parent waits this long: the other side's runtime keeps a core
# busy for some tens of ms after it answered (ONNX Runtime's threads spin before they sleep), 35%
# of a 50 ms burst's host CPU without the wait, 3% with it (mlp, 0.01 ms, this 2-core host)
QUIET_BEFORE_SHORT_BURST_S = 0.05


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
    # every pair after the first measured by fresh worker processes (both sides faster than
    # the schedule's fresh_workers_below_ms)
    fresh_workers: bool = False

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
            "fresh_workers_per_pair": self.fresh_workers,
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
    sides = _Sides(runner, baseline_request, variant_request, outcome, load_timeout_s)
    started = time.monotonic()
    try:
        sides.start()
        pairs = _alternate_bursts(sides, schedule, stop_rule, outcome, progress)
        for side, worker in ((outcome.baseline, sides.baseline), (outcome.variant, sides.variant)):
            stopped = worker.stop()
            side.memory, side.warnings = stopped.get("memory"), list(stopped.get("warnings") or [])
            side.launch_bound = stopped.get("launch_bound")
        outcome.baseline.latency_ms, outcome.baseline.iterations = _pooled_summary([p.baseline_ns for p in pairs])
        outcome.variant.latency_ms, outcome.variant.iterations = _pooled_summary([p.variant_ns for p in pairs])
        outcome.status = "ok"
    except LiveWorkerFailed as error:
        outcome.error, outcome.error_kind = str(error), error.kind
    finally:
        sides.close()
        outcome.duration_s = time.monotonic() - started
    return outcome


class _Sides:
    """The live workers of the two sides, started together and renewed together (both killed, fresh
    ones started and warmed up); the first start is what the sides' provider and cold start report."""

    def __init__(
        self,
        runner: Runner,
        baseline_request: WorkerRequest,
        variant_request: WorkerRequest,
        outcome: PairOutcome,
        load_timeout_s: float,
    ) -> None:
        self.runner, self.outcome, self.load_timeout_s = runner, outcome, load_timeout_s
        self.requests = {"baseline": baseline_request, "variant": variant_request}
        self.workers: dict[str, BurstWorker] = {}
        self.renewals = 0
        self.start_s = 0.0  # how long the first start of both sides took

    @property
    def baseline(self) -> BurstWorker:
        return self.workers["baseline"]

    @property
    def variant(self) -> BurstWorker:
        return self.workers["variant"]

    def start(self) -> None:
        """The first start: one side after the other, so that each side's cold start is its own."""
        started = time.monotonic()
        for label, request in self.requests.items():
            self.workers[label] = worker = self.runner.start_live_worker(request, label)
            self._ready(label, worker.start(self.load_timeout_s))
        self.start_s = time.monotonic() - started

    def renew(self, first: str) -> None:
        """Fresh workers for both sides, launched together (their cold start is not reported) and
        warmed up for RENEWAL_WARMUP_S: the first start already warmed the artifacts and the host.
        The side that bursts `first` is launched first, so that which side's process is the younger
        alternates with the bursts' order instead of always being the variant's."""
        self.close()
        self.renewals += 1
        for label in (first, *(label for label in self.requests if label != first)):
            self.workers[label] = self.runner.start_live_worker(_quick_warmup(self.requests[label]), label)
        for worker in self.workers.values():
            worker.launch()
        for label, worker in self.workers.items():
            self._ready(label, worker.start(self.load_timeout_s))

    def _ready(self, label: str, ready: dict[str, Any]) -> None:
        side = self.outcome.baseline if label == "baseline" else self.outcome.variant
        if self.renewals == 0:
            side.provider = ready.get("provider")
            side.runtime = dict(ready.get("runtime") or {})
            side.cold_start_ms = ready.get("cold_start_ms")
        elif ready.get("provider") != side.provider:
            raise LiveWorkerFailed(
                f"{label}: a fresh worker ran on {ready.get('provider')}, the first on {side.provider}",
                FailureKind.FELL_BACK,
            )

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()


def _quick_warmup(request: WorkerRequest) -> WorkerRequest:
    protocol = request.protocol
    if protocol.warmup_min_duration_s <= RENEWAL_WARMUP_S:
        return request
    return replace(request, protocol=replace(protocol, warmup_min_duration_s=RENEWAL_WARMUP_S))


def _alternate_bursts(
    sides: _Sides,
    schedule: ABSchedule,
    stop_rule: StopRule,
    outcome: PairOutcome,
    progress: Callable[[str], None] | None,
) -> list[BurstPair]:
    """Bursts in ABBA order; the interval is looked at only at the planned pair counts (and once
    more when time runs out), each look spending its share of the error rate."""
    pairs: list[BurstPair] = []
    burst_iterations = min_iterations_for(schedule.metric)
    looks, alphas = _plan_looks(schedule, stop_rule, 2 * schedule.burst_duration_s, outcome)
    started = time.monotonic()
    burst_s = schedule.burst_duration_s
    while True:
        raise_if_interrupted()
        if outcome.fresh_workers:
            sides.renew(first="baseline" if len(pairs) % 2 == 0 else "variant")
        first, second = (sides.baseline, sides.variant) if len(pairs) % 2 == 0 else (sides.variant, sides.baseline)
        results = {}
        for worker in (first, second):
            if outcome.fresh_workers:
                time.sleep(QUIET_BEFORE_SHORT_BURST_S)
            results[worker.label] = worker.burst(burst_s, burst_iterations)
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
        if len(pairs) == 1 and _needs_fresh_workers(a["latencies_ns"], b["latencies_ns"], schedule):
            outcome.fresh_workers = True
            # a fresh pair's noise is its processes' offset, not its bursts' sampling: short bursts do
            burst_s = min(burst_s, FRESH_WORKER_BURST_S)
            # no look is taken yet: the looks are planned anew for pairs that each start two workers
            pair_s = 2 * (burst_s + QUIET_BEFORE_SHORT_BURST_S) + sides.start_s / 2
            looks, alphas = _plan_looks(schedule, stop_rule, pair_s, outcome)
            if progress:
                progress(
                    f"  both sides run under {schedule.fresh_workers_below_ms:g} ms: a fresh worker per side for "
                    "every pair (a process's own speed offset is part of the noise at this size)"
                )
        elapsed = time.monotonic() - started
        out_of_time = elapsed + elapsed / len(pairs) > schedule.max_pair_duration_s  # no room for another pair
        if len(pairs) not in looks and not out_of_time:
            continue
        # an unplanned last look (out of time) spends what the next planned look would have
        look_alpha = alphas[min(bisect.bisect_left(looks, len(pairs)), len(looks) - 1)]
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


def _plan_looks(
    schedule: ABSchedule, stop_rule: StopRule, pair_s: float, outcome: PairOutcome
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The looks for as many pairs of `pair_s` seconds as the budget holds, recorded in the outcome."""
    max_pairs = max(1, int(schedule.max_pair_duration_s // pair_s))
    looks, alphas = planned_looks(schedule.min_pairs, max_pairs, 1.0 - stop_rule.confidence)
    outcome.looks = {"planned": list(looks), "alpha_per_look": [round(value, 6) for value in alphas], "taken": []}
    return looks, alphas


def _needs_fresh_workers(baseline_ns: Sequence[int], variant_ns: Sequence[int], schedule: ABSchedule) -> bool:
    """Whether both sides' first bursts ran under the schedule's `fresh_workers_below_ms` (p50)."""
    if schedule.fresh_workers_below_ms <= 0 or not baseline_ns or not variant_ns:
        return False
    slower_ms = max(summarize_latencies_ns(baseline_ns).p50, summarize_latencies_ns(variant_ns).p50)
    return slower_ms < schedule.fresh_workers_below_ms


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
