"""One A/B comparison: baseline and variant, each in its own live worker, timed in alternating
bursts (A B, B A, A B, ...) until the speedup interval lies clearly on one side of the threshold
or the pair's time budget runs out.

A worker process carries a speed offset of its own (memory layout, cache sets: a few % on a model
of tens of microseconds, none measurable at a millisecond; scripts/process_offset.py), which every
pair of one process pair shares and the interval, treating pairs as independent, cannot see. So
when both sides of the first pair are faster than the schedule's `fresh_workers_below_ms`, every
later pair runs in *shared workers*: two processes that have each loaded both sides (one baseline
first, the other variant first), the pairs taking turns in them. A pair's two bursts then run in
one process, whose own speed hits both alike, and an effect of the load order falls on the
baseline in one pair and on the variant in the next (process_offset.py --shared); each pair
begins with a short burst that is not counted, since a worker that sat idle while the other
measured runs slower at first. Every SHARED_WORKER_PAIRS pairs, two fresh ones take over: two shared
workers and their pairs are one *block*, the unit the interval counts (harness/measure/speedup.py),
so that the processes' offsets and the host's state of the moment count once per block. Where
the runner has no shared workers (a board's agent, a fleet), every later pair gets a fresh worker
per side instead, loaded side by side: the offset becomes part of each pair's noise. Either way
the first start is one side after the other (each side's cold start, provider and memory are its
own), and the later bursts are short, each after a pause that lets the other side's runtime
threads go quiet.

Alternating the order within pairs (ABBA) cancels a steady drift as well as a step. Each burst
has at least the iterations its metric's percentile needs. The interval is looked at only at
planned block counts (the first as early as an interval exists, at least `min_pairs`), each look
spending its share of the error rate, so that stopping early keeps the interval's level; a fast
model's look waits until its blocks span `min_span_s`, and the baseline's level per block is
checked against this host's usual one for it (harness/measure/host_state.py). Each
burst also reports how much of the host's CPU other processes used while it ran; a pair where
that exceeded CONTENDED_OTHER_CPU_SHARE on either side is marked contended.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.measure.host_state import HostState, LevelHistory
from harness.measure.schedule import DECODER_METRICS, ABSchedule
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
from targets.runners.base import BurstWorker, Runner, SharedBurstWorker, WorkerRequest
from targets.runners.live import LiveWorkerFailed

# other processes' share of the host's CPU during a burst above which its pair is contended
CONTENDED_OTHER_CPU_SHARE = 0.25
# for fast models (both sides under the schedule's fresh_workers_below_ms): each burst lasts at most
# this long (a model under 0.5 ms runs hundreds of iterations in it). Measured on digits-cnn (A/A and
# a 1.3x variant, this 2-core host, both sides in one process): sd of the pairs' log ratios 0.18 with
# 0.05 s bursts, 0.08 with 0.1 s; in fresh workers per pair 0.13 with 0.1 s bursts
SHORT_BURST_S = 0.1
# a fresh worker (a renewed shared one, or a fresh one per side) warms up this long: the first start
# already warmed up for the protocol's full warm-up, the artifacts and the host
RENEWAL_WARMUP_S = 0.25
# shared workers come in twos, one with the sides loaded baseline first, the other variant first,
# and the pairs take turns in them: an offset that comes with the load order (or with the process)
# then falls on both sides. Two shared workers and their pairs are one *block*, the interval's unit:
# after this many pairs two fresh ones take over, so that the processes' offsets and the moment's
# host state are sampled once per block and counted as what they are, one unit each
SHARED_WORKER_PAIRS = 2
# in a shared worker, each pair begins with a burst this long of the side that goes first, not
# counted: a worker that sat idle while the other measured runs slower at first, the side it loaded
# second more so (median 2.4% on a 0.01 ms MLP, its mean 7-10% with outliers; with this burst
# under 1%, this 2-core host)
SETTLING_BURST_S = 0.03
# for fast models (shared workers, or fresh ones per side), the parent waits this long before each
# short burst: the other side's runtime keeps a core busy for some tens
# of ms after it answered (ONNX Runtime's threads spin before they sleep), 35% of a 50 ms burst's
# host CPU without the wait, 3% with it (mlp, 0.01 ms, this 2-core host)
QUIET_BEFORE_SHORT_BURST_S = 0.05


class PairStop(TextEnum):
    """Why the bursts of a pair stopped."""

    ABOVE = "interval_above_threshold"
    BELOW = "interval_below_threshold"
    OUT_OF_TIME = "time_budget"
    # out of time before min_pairs pairs (or the metric's iterations) were measured
    TOO_LITTLE_DATA = "too_little_data"
    # out of time undecided, every block away from this host's usual level for the baseline: the interval,
    # widened by how far, straddles the threshold (host_state.py)
    UNUSUAL_HOST_STATE = "unusual_host_state"


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
    # both sides faster than the schedule's fresh_workers_below_ms: every pair after the first
    # measured in shared workers (both sides in one process, renewed every SHARED_WORKER_PAIRS pairs)
    # or, where the runner has none, by fresh worker processes per side
    shared_workers: bool = False
    fresh_workers: bool = False
    # the baseline's level per counted block, and this host's usual level for it (host_state.py)
    host_state: HostState | None = None

    def sides(self) -> tuple[tuple[str, SideSummary], tuple[str, SideSummary]]:
        return (("baseline", self.baseline), ("variant", self.variant))

    def contended_pairs(self) -> int:
        """Contended pairs among those the interval counts (the last ones: a first pair that moved the
        model to fresh workers is measured, recorded and left out of the interval)."""
        counted = self.speedup.pairs if self.speedup is not None else len(self.bursts)
        return sum(1 for burst in self.bursts[max(0, len(self.bursts) - counted) :] if burst.get("contended"))

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
            "shared_workers": self.shared_workers,
            "fresh_workers_per_pair": self.fresh_workers,
            "host_state": None if self.host_state is None else self.host_state.as_dict(),
            "bursts": self.bursts,
        }


def _burst_metric(latencies_ns: Sequence[int], duration_s: float, metric: str, batch_size: int) -> float:
    if metric == "throughput":
        return batch_size * len(latencies_ns) / duration_s
    summary = summarize_latencies_ns(latencies_ns)
    return float(summary.p50 if metric in DECODER_METRICS else getattr(summary, metric))


def run_ab_pair(
    baseline_request: WorkerRequest,
    variant_request: WorkerRequest,
    schedule: ABSchedule,
    stop_rule: StopRule,
    runner: Runner,
    load_timeout_s: float,
    progress: Callable[[str], None] | None = None,
    history: LevelHistory | None = None,
) -> PairOutcome:
    """Measure the pair on `runner`; a worker failure becomes a failed outcome with the worker's message.
    With `history` (this host's earlier levels of the baseline), a run whose every block sat away
    from the usual level widens its interval by how far; its own level is added."""
    return run_ab_pairs_in_turn(
        [
            ab_pair_steps(
                baseline_request, variant_request, schedule, stop_rule, runner, load_timeout_s, progress, history
            )
        ]
    )[0]


def ab_pair_steps(
    baseline_request: WorkerRequest,
    variant_request: WorkerRequest,
    schedule: ABSchedule,
    stop_rule: StopRule,
    runner: Runner,
    load_timeout_s: float,
    progress: Callable[[str], None] | None = None,
    history: LevelHistory | None = None,
) -> Generator[None, None, PairOutcome]:
    """`run_ab_pair` in steps, for `run_ab_pairs_in_turn`: a fast model's pair pauses after each block,
    its shared workers stopped, so that other pairs' blocks can run in between; its time budget counts
    its own time only, its `min_span_s` the wall clock. Returns the outcome."""
    outcome = PairOutcome()
    sides = _Sides(runner, baseline_request, variant_request, outcome, load_timeout_s)
    usual, usual_runs = history.usual() if history is not None else (None, 0)
    clock = _OwnTime()
    try:
        sides.start()
        pairs = yield from _alternate_bursts(sides, schedule, stop_rule, outcome, progress, (usual, usual_runs), clock)
        if history is not None and outcome.host_state is not None:
            history.add(outcome.host_state.level)
        stopped = sides.finish()
        for label, side in outcome.sides():
            side.memory, side.warnings = stopped[label].get("memory"), list(stopped[label].get("warnings") or [])
            side.launch_bound = stopped[label].get("launch_bound")
        outcome.baseline.latency_ms, outcome.baseline.iterations = _pooled_summary([p.baseline_ns for p in pairs])
        outcome.variant.latency_ms, outcome.variant.iterations = _pooled_summary([p.variant_ns for p in pairs])
        outcome.status = "ok"
    except LiveWorkerFailed as error:
        outcome.error, outcome.error_kind = str(error), error.kind
    finally:
        sides.close()
        outcome.duration_s = clock.elapsed_s()
    return outcome


def run_ab_pairs_in_turn(steps: Sequence[Generator[None, None, PairOutcome]]) -> list[PairOutcome]:
    """Run several pairs (`ab_pair_steps`), one block of each in turn, until each has its outcome; in
    the order given. A fast model's pair then spreads its blocks over the others' time as well as its
    own: over more of the host's speed states, at no cost. Each pair's first start and first pair
    run when its turn first comes; a slow model's pair runs whole in its first turn."""
    outcomes: dict[int, PairOutcome] = {}
    try:
        while len(outcomes) < len(steps):
            for index, step in enumerate(steps):
                if index in outcomes:
                    continue
                try:
                    next(step)
                except StopIteration as done:
                    outcomes[index] = done.value
    finally:
        for step in steps:
            step.close()  # a pair left unfinished (Ctrl-C) stops its workers
    return [outcomes[index] for index in range(len(steps))]


class _OwnTime:
    """A pair's own time: the wall clock less the time it sat paused while other pairs ran."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._paused_at: float | None = None

    def elapsed_s(self) -> float:
        return (self._paused_at if self._paused_at is not None else time.monotonic()) - self._start

    def pause(self) -> None:
        self._paused_at = time.monotonic()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._start += time.monotonic() - self._paused_at
            self._paused_at = None


class _Sides:
    """The live workers of the two sides: first one per side, started one after the other (what the
    sides' provider, cold start and memory report); then, for fast models, either shared workers
    (both sides in one process) or fresh workers per side, renewed together."""

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
        # the shared workers now in use, each with its sides' labels in its load order
        self.shared: list[tuple[tuple[str, ...], SharedBurstWorker]] = []
        self.shared_pairs = 0  # pairs the current shared workers have measured
        self.stopped: dict[str, dict[str, Any]] = {}  # each side's own worker's final message, once stopped
        self.shared_warnings: list[str] = []  # what the stopped shared workers saw

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

    def share(self) -> bool:
        """Stop each side's own worker (its memory, warnings and launch figures are what the side
        reports) and measure from now on in shared workers; False, changing nothing, where the
        runner has none."""
        if not self._start_shared():
            return False
        for label, worker in self.workers.items():
            self.stopped[label] = worker.stop()
            worker.close()
        self.workers.clear()
        self._wait_for_shared()
        return True

    def own_burst(self, label: str, burst_s: float, min_iterations: int) -> dict[str, Any]:
        """A burst of side `label` in its own worker."""
        return self.workers[label].burst(burst_s, min_iterations)

    def shared_burst(self, label: str, burst_s: float, min_iterations: int) -> dict[str, Any]:
        """A burst of side `label` in the shared worker whose turn this pair is."""
        order, worker = self.shared[(self.shared_pairs - 1) % len(self.shared)]  # counted by next_shared_pair
        return worker.burst(burst_s, min_iterations, side=order.index(label))

    def next_shared_pair(self) -> None:
        """Before a pair in shared workers: two fresh ones when the current two are due or stopped."""
        if not self.shared or self.shared_pairs >= SHARED_WORKER_PAIRS:
            self.end_block()
            if not self._start_shared():  # it gave some before
                raise LiveWorkerFailed("the runner no longer starts shared workers")
            self._wait_for_shared()
        self.shared_pairs += 1

    def end_block(self) -> None:
        """Stop the current shared workers (their warnings kept): nothing of the pair runs until the next block."""
        for _, worker in self.shared:
            self.shared_warnings.extend(worker.stop().get("warnings") or [])
        self._close_shared()

    def finish(self) -> dict[str, dict[str, Any]]:
        """Stop the workers that still run; each side's final message (memory, warnings, launch
        figures): its own worker's, with the shared workers' warnings added."""
        if not self.stopped:
            return {label: worker.stop() for label, worker in self.workers.items()}
        self.end_block()
        later = self.shared_warnings
        stopped = {label: dict(message) for label, message in self.stopped.items()}
        for message in stopped.values():
            message["warnings"] = list(dict.fromkeys([*(message.get("warnings") or []), *later]))
        return stopped

    def _start_shared(self) -> bool:
        """Launch two shared workers side by side (baseline loaded first in one, variant in the other)."""
        started: list[tuple[tuple[str, ...], SharedBurstWorker]] = []
        for order in (("baseline", "variant"), ("variant", "baseline")):
            requests = [_quick_warmup(self.requests[label]) for label in order]
            worker = self.runner.start_shared_live_worker(requests, "+".join(order))
            if worker is None:
                return False
            started.append((order, worker))
        self.shared, self.shared_pairs = started, 0
        self.renewals += 1
        for _, worker in self.shared:
            worker.launch()
        return True

    def _wait_for_shared(self) -> None:
        for order, worker in self.shared:
            ready = worker.start(self.load_timeout_s)
            for label, facts in zip(order, ready.get("sides") or [], strict=True):
                self._ready(label, facts)

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

    def _close_shared(self) -> None:
        for _, worker in self.shared:
            worker.close()
        self.shared = []

    def close(self) -> None:
        self._close_shared()
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
    usual: tuple[float | None, int] = (None, 0),
    clock: _OwnTime | None = None,
) -> Generator[None, None, list[BurstPair]]:
    """Bursts in ABBA order; the interval is looked at only at the planned block counts (and once
    more when time runs out), each look spending its share of the error rate. With shared workers
    the interval is that of the shared pairs only (the first pair ran in each side's own worker,
    with longer bursts), and a block is one pair of shared workers with its SHARED_WORKER_PAIRS
    pairs; otherwise every pair is a block of its own.

    No look decides before the counted blocks span `min_span_s` (fast models only: theirs is the
    speed the host's states move). While every block sat away from this host's usual level for the
    baseline, the interval is widened by how far (HostState.shift_factor) before it decides; out of
    time undecided in that state, the pair stops UNUSUAL_HOST_STATE."""
    clock = clock or _OwnTime()
    budget_from_s = clock.elapsed_s()  # the budget starts with the first burst, not with the workers' start
    pairs: list[BurstPair] = []
    counted_from = 0  # the first pair the interval counts
    burst_iterations = min_iterations_for(schedule.metric)
    looks, alphas = _plan_looks(schedule, stop_rule, 2 * schedule.burst_duration_s, outcome)
    next_look = 0  # the planned look the next one is
    counted_since = time.monotonic()  # when the first counted pair began (the wall clock: other pairs' turns count)
    burst_s = schedule.burst_duration_s
    while True:
        raise_if_interrupted()
        order = ("baseline", "variant") if len(pairs) % 2 == 0 else ("variant", "baseline")
        block = None
        if outcome.shared_workers:
            sides.next_shared_pair()
            block = sides.renewals
            sides.shared_burst(order[0], SETTLING_BURST_S, 1)  # not counted: the worker settles
        elif outcome.fresh_workers:
            sides.renew(first=order[0])
        results = {}
        for label in order:
            if outcome.shared_workers or outcome.fresh_workers:
                time.sleep(QUIET_BEFORE_SHORT_BURST_S)
            burst = sides.shared_burst if outcome.shared_workers else sides.own_burst
            results[label] = burst(label, burst_s, burst_iterations)
        a, b = results["baseline"], results["variant"]
        pairs.append(BurstPair(a["latencies_ns"], b["latencies_ns"], a["duration_s"], b["duration_s"], block))
        other_cpu = [float(a.get("other_cpu_share") or 0.0), float(b.get("other_cpu_share") or 0.0)]
        outcome.bursts.append(
            {
                "baseline": _burst_metric(a["latencies_ns"], a["duration_s"], schedule.metric, schedule.batch_size),
                "variant": _burst_metric(b["latencies_ns"], b["duration_s"], schedule.metric, schedule.batch_size),
                "other_cpu_share": other_cpu,
                "contended": max(other_cpu) > CONTENDED_OTHER_CPU_SHARE,
                **({"block": block} if block is not None else {}),
            }
        )
        if len(pairs) == 1 and _needs_fresh_workers(a["latencies_ns"], b["latencies_ns"], schedule):
            # at this size a pair's noise is its processes' offset more than its bursts' sampling:
            # short bursts do; no look is taken yet: the looks are planned anew for the later blocks
            burst_s = min(burst_s, SHORT_BURST_S)
            sharing_from = time.monotonic()
            if sides.share():
                outcome.shared_workers = True
                counted_from = 1
                # a block: its two shared workers' start, as long as this first one took (not the first
                # start's: one side after the other, full warm-up), and its pairs
                block_s = SHARED_WORKER_PAIRS * (2 * (burst_s + QUIET_BEFORE_SHORT_BURST_S) + SETTLING_BURST_S) + (
                    time.monotonic() - sharing_from
                )
                how = (
                    f"blocks of {SHARED_WORKER_PAIRS} pairs in two fresh worker processes that have each loaded "
                    "both sides (a process's speed offset then hits both sides alike, and each block counts once)"
                )
            else:
                outcome.fresh_workers = True
                block_s = 2 * (burst_s + QUIET_BEFORE_SHORT_BURST_S) + sides.start_s / 2
                how = "a fresh worker per side for every pair (a process's own speed offset is part of the noise)"
            looks, alphas = _plan_looks(schedule, stop_rule, block_s, outcome, span_first=True)
            next_look = 0
            counted_since = time.monotonic()
            if progress:
                progress(f"  both sides run under {schedule.fresh_workers_below_ms:g} ms: {how}")
        if outcome.shared_workers and sides.shared_pairs < SHARED_WORKER_PAIRS:
            continue  # a block is looked at whole
        elapsed = clock.elapsed_s() - budget_from_s
        out_of_time = elapsed + elapsed / len(pairs) > schedule.max_pair_duration_s  # no room for another pair
        counted = pairs[counted_from:] or pairs
        outcome.host_state = _host_state(outcome.bursts[counted_from:] or outcome.bursts, schedule.metric, usual)
        blocks = len({pair.block if pair.block is not None else index for index, pair in enumerate(counted)})
        if blocks < looks[min(next_look, len(looks) - 1)] and not out_of_time:
            yield from _other_pairs_turn(sides, outcome, clock)
            continue
        fast = outcome.shared_workers or outcome.fresh_workers
        held_back = _held_back(time.monotonic() - counted_since, schedule.min_span_s if fast else 0.0)
        # a look that may not decide spends nothing: the planned look waits for the next block
        # (time, not the ratio, holds it back), and an unplanned last one (out of time) spends what
        # the next planned look would have
        look_alpha = alphas[min(next_look, len(looks) - 1)]
        estimate = speedup_interval(counted, schedule.metric, schedule.batch_size, stop_rule.confidence, look_alpha)
        estimate = estimate.widened(outcome.host_state.shift_factor())
        outcome.speedup = estimate
        if held_back is None or out_of_time:
            outcome.looks["taken"].append(blocks)
            next_look += 1
        outcome.stopped_by = stop_at_look(
            estimate, looks, stop_rule.min_speedup, out_of_time, held_back, last_look=next_look >= len(looks)
        )
        if outcome.stopped_by:
            return pairs
        if progress:
            why = f" ({held_back})" if held_back else ""
            progress(
                f"  {blocks} blocks, speedup {estimate.ratio:.2f}x [{estimate.ci_low:.2f}, "
                f"{estimate.ci_high:.2f}]{why or f' still straddles {stop_rule.min_speedup:.2f}'}"
            )
        yield from _other_pairs_turn(sides, outcome, clock)


def _other_pairs_turn(sides: _Sides, outcome: PairOutcome, clock: _OwnTime) -> Generator[None, None, None]:
    """After a block of shared workers: stop them and let other pairs run a block (a pause of this
    pair's own time). Other modes keep their workers and go on."""
    if not outcome.shared_workers:
        return
    sides.end_block()
    clock.pause()
    yield
    clock.resume()


def _host_state(bursts: list[dict[str, Any]], metric: str, usual: tuple[float | None, int]) -> HostState:
    """The baseline's level per block (the median of its bursts' metric) against this host's usual one."""
    blocks: dict[object, list[float]] = {}
    for index, burst in enumerate(bursts):
        blocks.setdefault(burst.get("block", ("pair", index)), []).append(float(burst["baseline"]))
    levels = tuple(float(statistics.median(values)) for values in blocks.values())
    return HostState(levels, "items/s" if metric == "throughput" else "ms", usual[0], usual[1])


def _held_back(span_s: float, min_span_s: float) -> str | None:
    """Why a look may not decide yet (the blocks' span too short), or None."""
    if span_s < min_span_s:
        return f"the blocks span {span_s:.1f} s of the {min_span_s:g} s a decision needs"
    return None


def _plan_looks(
    schedule: ABSchedule, stop_rule: StopRule, unit_s: float, outcome: PairOutcome, span_first: bool = False
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The looks for as many blocks of `unit_s` seconds as the budget holds, recorded in the outcome;
    with `span_first`, the first look no earlier than the blocks that span `min_span_s`."""
    max_units = max(1, int(schedule.max_pair_duration_s // unit_s))
    first = schedule.min_pairs
    if span_first and schedule.min_span_s > 0:
        first = max(first, math.ceil(schedule.min_span_s / unit_s))
    looks, alphas = planned_looks(first, max_units, 1.0 - stop_rule.confidence)
    outcome.looks = {"planned": list(looks), "alpha_per_look": [round(value, 6) for value in alphas], "taken": []}
    return looks, alphas


def _needs_fresh_workers(baseline_ns: Sequence[int], variant_ns: Sequence[int], schedule: ABSchedule) -> bool:
    """Whether both sides' first bursts ran under the schedule's `fresh_workers_below_ms` (p50)."""
    if schedule.fresh_workers_below_ms <= 0 or not baseline_ns or not variant_ns:
        return False
    slower_ms = max(summarize_latencies_ns(baseline_ns).p50, summarize_latencies_ns(variant_ns).p50)
    return slower_ms < schedule.fresh_workers_below_ms


def stop_at_look(
    estimate: SpeedupEstimate,
    looks: Sequence[int],
    min_speedup: float,
    out_of_time: bool,
    held_back: str | None = None,
    last_look: bool | None = None,
) -> PairStop | None:
    """Whether a look at `estimate` ends the pair, and why; None to measure on. `held_back` (the
    blocks' span too short) keeps a look from deciding before the pair is out of time; undecided at
    the end with an interval widened for an unusual host state, the pair stops UNUSUAL_HOST_STATE.
    `last_look`: whether this was the last planned look (by default, whether the estimate has the
    last look's units)."""
    if estimate.units < looks[0] or not estimate.decidable:
        return PairStop.TOO_LITTLE_DATA if out_of_time else None
    if held_back is not None and not out_of_time:
        return None
    if estimate.ci_low >= min_speedup:
        return PairStop.ABOVE
    if estimate.ci_high < min_speedup:
        return PairStop.BELOW
    if out_of_time or (estimate.units >= looks[-1] if last_look is None else last_look):
        return PairStop.UNUSUAL_HOST_STATE if estimate.widened_by > 1.0 else PairStop.OUT_OF_TIME
    return None


def _pooled_summary(bursts: list[Sequence[int]]) -> tuple[dict[str, float] | None, int]:
    pooled = [value for burst in bursts for value in burst]
    if not pooled:
        return None, 0
    return summarize_latencies_ns(pooled).as_dict(), len(pooled)
