"""The A/B pair on real live workers: it stops when the interval is clearly on one side of the
threshold, and a worker that cannot load makes the pair failed with its message."""

import math
import time
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.measure.ab_pair import (
    RENEWAL_WARMUP_S,
    SETTLING_BURST_S,
    SHARED_WORKER_PAIRS,
    SHORT_BURST_S,
    PairStop,
    StopRule,
    ab_pair_steps,
    run_ab_pair,
    run_ab_pairs_in_turn,
)
from harness.verdict.policy import Policy
from harness.verdict.rules import Evidence, decide
from targets.runners.local import LocalRunner
from tests.helpers import FAST_POLICY, cell_request, make_onnx_model

SCHEDULE = Policy.from_dict(FAST_POLICY).schedule


def test_a_real_a_a_run_is_never_accepted(tiny_conv_onnx):
    """The same artifact on both sides, three times: the interval never clears 1.10."""
    request = cell_request(tiny_conv_onnx)
    policy = Policy.from_dict(FAST_POLICY)
    stop_rule = StopRule(policy.rules.min_speedup, policy.rules.confidence)
    facts = {"zipped_bytes": 100, "params": 10, "nonzero_params": 10, "macs": 1000}
    for _ in range(3):
        outcome = run_ab_pair(request, request, policy.schedule, stop_rule, runner=LocalRunner(), load_timeout_s=120)
        assert outcome.status == "ok", outcome.error
        verdict = decide(
            Evidence(
                recipe="a/a",
                policy=policy,
                baseline_facts=facts,
                variant_facts=facts,
                speedup=outcome.speedup,
                stopped_by=outcome.stopped_by,
            )
        )
        assert verdict.decision == "REJECT", outcome.speedup


def test_the_interval_stops_the_pair_on_the_side_it_lies(tiny_conv_onnx):
    request = cell_request(tiny_conv_onnx)
    far_below = run_ab_pair(request, request, SCHEDULE, StopRule(3.0, 0.95), LocalRunner(), load_timeout_s=120)
    assert far_below.stopped_by == PairStop.BELOW and far_below.speedup.ci_high < 3.0
    far_above = run_ab_pair(request, request, SCHEDULE, StopRule(0.3, 0.95), LocalRunner(), load_timeout_s=120)
    assert far_above.stopped_by == PairStop.ABOVE and far_above.speedup.ci_low >= 0.3
    for outcome in (far_below, far_above):
        assert len(outcome.bursts) >= SCHEDULE.min_pairs
        assert outcome.baseline.latency_ms["p50"] <= outcome.baseline.latency_ms["p99"]
        assert outcome.variant.memory["peak_rss_bytes"] > 0


def test_a_side_that_cannot_load_fails_the_pair_with_its_message(tiny_conv_onnx):
    good = cell_request(tiny_conv_onnx)
    broken = replace(good, inputs=(replace(good.inputs[0], name="not_the_input"),))
    outcome = run_ab_pair(good, broken, SCHEDULE, StopRule(1.1, 0.95), LocalRunner(), load_timeout_s=120)
    assert outcome.status == "failed" and outcome.speedup is None
    assert outcome.error.startswith("variant:") and "not_the_input" in outcome.error


class _CountingRunner(LocalRunner):
    """This host's real runner, counting the live workers it starts and noting, per worker, its
    warm-up, the bursts it was asked for (and of which side) and when it was launched and ready."""

    def __init__(self, shares=True):
        super().__init__()
        self.started = 0
        self.workers = []
        self.shared = []
        self.shares = shares

    def start_live_worker(self, request, label):
        self.started += 1
        worker = _NotedWorker(super().start_live_worker(request, label), request)
        self.workers.append(worker)
        return worker

    def start_shared_live_worker(self, requests, label):
        if not self.shares:  # as a board's agent or a fleet: no shared workers
            return None
        worker = _NotedWorker(super().start_shared_live_worker(requests, label), requests[0])
        self.shared.append(worker)
        return worker


class _NotedWorker:
    def __init__(self, worker, request):
        self.worker, self.label = worker, worker.label
        self.warmup_s = request.protocol.warmup_min_duration_s
        self.bursts_s = []
        self.sides = []
        self.launched_at = self.ready_at = self.stopped_at = None

    def launch(self):
        if self.launched_at is None:
            self.launched_at = time.monotonic()
        self.worker.launch()

    def start(self, timeout_s):
        self.launch()
        ready = self.worker.start(timeout_s)
        self.ready_at = time.monotonic()
        return ready

    def burst(self, burst_s, min_iterations=1, side=0):
        self.bursts_s.append(burst_s)
        self.sides.append(side)
        if side:
            return self.worker.burst(burst_s, min_iterations, side=side)
        return self.worker.burst(burst_s, min_iterations)

    def stop(self, timeout_s=30.0):
        self.stopped_at = time.monotonic()
        return self.worker.stop(timeout_s)

    def close(self):
        self.worker.close()


def _fast_model_schedule(request):
    """`request` with a shorter warm-up, and a schedule that counts every model as fast."""
    request = replace(request, protocol=replace(request.protocol, warmup_min_duration_s=0.4))
    return request, replace(
        SCHEDULE, fresh_workers_below_ms=1000.0, max_pair_duration_s=60.0, burst_duration_s=0.2, min_span_s=0.0
    )


def _first_start_was_one_side_after_the_other(first, request, schedule):
    # each side's cold start its own, with the protocol's full warm-up and the schedule's bursts
    assert first[1].launched_at >= first[0].ready_at
    assert all(worker.warmup_s == request.protocol.warmup_min_duration_s for worker in first)
    assert all(worker.bursts_s == [schedule.burst_duration_s] for worker in first)


def test_a_fast_model_measures_both_sides_in_each_of_two_shared_workers_after_the_first_pair(tiny_conv_onnx):
    request, schedule = _fast_model_schedule(cell_request(tiny_conv_onnx))
    # the first look at 6 blocks of shared workers, whatever the interval says
    schedule = replace(schedule, min_pairs=6)
    runner = _CountingRunner()
    outcome = run_ab_pair(request, request, schedule, StopRule(3.0, 0.95), runner, load_timeout_s=120)
    assert outcome.status == "ok", outcome.error
    assert outcome.looks["taken"] == [6] and outcome.stopped_by == PairStop.BELOW
    # the interval counts the blocks of shared pairs only: one per pair of shared workers
    assert outcome.speedup.blocks == 6 and outcome.speedup.pairs == len(outcome.bursts) - 1 == 6 * SHARED_WORKER_PAIRS
    assert [burst["block"] for burst in outcome.bursts[1:]] == [
        block for block in range(1, 7) for _ in range(SHARED_WORKER_PAIRS)
    ]
    assert outcome.shared_workers and outcome.as_dict()["shared_workers"] is True and not outcome.fresh_workers
    assert runner.started == 2  # each side's own worker, for the first pair only
    _first_start_was_one_side_after_the_other(runner.workers, request, schedule)
    pairs = len(outcome.bursts)
    assert pairs > SHARED_WORKER_PAIRS + 1
    assert len(runner.shared) == 2 * math.ceil((pairs - 1) / SHARED_WORKER_PAIRS)
    # two at a time, launched side by side, one with the baseline loaded first, one with the variant
    assert [worker.label for worker in runner.shared[:4]] == ["baseline+variant", "variant+baseline"] * 2
    assert runner.shared[1].launched_at < runner.shared[0].ready_at
    assert all(worker.warmup_s == RENEWAL_WARMUP_S for worker in runner.shared)
    # the pairs take turns in them, in ABBA order: pair 2 (variant first) in the first, pair 3
    # (baseline first) in the second, ...: each worker's side loaded second bursts first, and that
    # side is the variant in one worker and the baseline in the other; each pair begins with a short
    # burst of its first side that is not counted, then two short bursts
    for worker in runner.shared[:2]:
        assert worker.sides == [1, 1, 0] * (SHARED_WORKER_PAIRS // 2)
        assert worker.bursts_s == [SETTLING_BURST_S, SHORT_BURST_S, SHORT_BURST_S] * (SHARED_WORKER_PAIRS // 2)
    # what each side reports comes from its own worker
    assert outcome.baseline.provider == "CPUExecutionProvider" and outcome.variant.memory["peak_rss_bytes"] > 0


@pytest.fixture(scope="module")
def wide_conv_onnx(tmp_path_factory):
    """The tiny conv net's input and output shapes, with about 60x its work (64 channels, 4 layers)."""
    rng = np.random.default_rng(0)
    nodes, initializers, channels, name = [], [], 3, "input"
    for layer in range(4):
        weight = numpy_helper.from_array(rng.normal(0, 0.1, (64, channels, 3, 3)).astype(np.float32), f"w{layer}")
        initializers.append(weight)
        nodes.append(helper.make_node("Conv", [name, weight.name], [f"c{layer}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{layer}"], [f"r{layer}"]))
        channels, name = 64, f"r{layer}"
    nodes.append(helper.make_node("GlobalAveragePool", [name], ["output"]))
    model = make_onnx_model(
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 16, 16])],
        nodes,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 64, 1, 1])],
        initializers,
    )
    path = tmp_path_factory.mktemp("wide") / "wide_conv.onnx"
    onnx.save(model, path)
    return path


def test_a_shared_worker_times_the_side_it_is_asked_for(tiny_conv_onnx, wide_conv_onnx):
    request, schedule = _fast_model_schedule(cell_request(tiny_conv_onnx))
    slower = replace(request, artifact_path=str(wide_conv_onnx))
    for baseline, variant, stop in ((request, slower, PairStop.BELOW), (slower, request, PairStop.ABOVE)):
        runner = _CountingRunner()
        outcome = run_ab_pair(baseline, variant, schedule, StopRule(1.0, 0.95), runner, load_timeout_s=120)
        assert outcome.status == "ok", outcome.error
        assert outcome.shared_workers and runner.shared and outcome.stopped_by == stop, outcome.speedup
        assert (outcome.speedup.ratio < 0.7) if stop == PairStop.BELOW else (outcome.speedup.ratio > 1.4)


def test_where_the_runner_has_no_shared_workers_a_fast_model_gets_a_fresh_worker_per_side(tiny_conv_onnx):
    request, schedule = _fast_model_schedule(cell_request(tiny_conv_onnx))
    runner = _CountingRunner(shares=False)
    outcome = run_ab_pair(request, request, schedule, StopRule(3.0, 0.95), runner, load_timeout_s=120)
    assert outcome.status == "ok", outcome.error
    assert outcome.fresh_workers and outcome.as_dict()["fresh_workers_per_pair"] is True
    assert not outcome.shared_workers and not runner.shared
    assert runner.started == 2 * len(outcome.bursts)  # the first pair's two, then two more per pair
    assert outcome.stopped_by == PairStop.BELOW
    first, fresh = runner.workers[:2], runner.workers[2:]
    _first_start_was_one_side_after_the_other(first, request, schedule)
    # fresh pairs: both sides launched before either is waited on, a short warm-up, short bursts
    assert fresh and all(
        second.launched_at < first.ready_at for first, second in zip(fresh[::2], fresh[1::2], strict=True)
    )
    # the side that bursts first in a pair is launched first: its process is not always the younger
    assert [worker.label for worker in fresh[:4]] == ["variant", "baseline", "baseline", "variant"]
    assert all(worker.warmup_s == RENEWAL_WARMUP_S and worker.bursts_s == [SHORT_BURST_S] for worker in fresh)
    # the looks were planned anew for pairs that start two workers: fewer fit in the budget
    one_process_looks = run_ab_pair(
        request, request, replace(schedule, fresh_workers_below_ms=0.0), StopRule(3.0, 0.95), LocalRunner(), 120
    ).looks["planned"]
    assert outcome.looks["planned"][-1] < one_process_looks[-1]
    assert outcome.baseline.provider == "CPUExecutionProvider" and outcome.variant.memory["peak_rss_bytes"] > 0


def test_a_model_slower_than_the_threshold_keeps_one_worker_per_side(tiny_conv_onnx):
    request = cell_request(tiny_conv_onnx)
    runner = _CountingRunner()
    schedule = replace(SCHEDULE, fresh_workers_below_ms=1e-6)  # nothing runs in a nanosecond
    outcome = run_ab_pair(request, request, schedule, StopRule(3.0, 0.95), runner, load_timeout_s=120)
    assert outcome.status == "ok" and not outcome.fresh_workers and runner.started == 2


def test_fast_pairs_in_turn_run_a_block_each_and_count_only_their_own_time(tiny_conv_onnx, wide_conv_onnx):
    request, schedule = _fast_model_schedule(cell_request(tiny_conv_onnx))
    slower = replace(request, artifact_path=str(wide_conv_onnx))
    schedule = replace(schedule, min_pairs=6, min_span_s=0.0)
    runners = [_CountingRunner(), _CountingRunner()]
    started = time.monotonic()
    outcomes = run_ab_pairs_in_turn(
        [
            ab_pair_steps(request, slower, schedule, StopRule(1.0, 0.95), runners[0], load_timeout_s=120),
            ab_pair_steps(slower, request, schedule, StopRule(1.0, 0.95), runners[1], load_timeout_s=120),
        ]
    )
    wall_s = time.monotonic() - started
    assert [outcome.stopped_by for outcome in outcomes] == [PairStop.BELOW, PairStop.ABOVE]
    assert all(outcome.status == "ok" and outcome.speedup.blocks == 6 for outcome in outcomes)
    # each pair's blocks ran between the other's: pair 1's last block began after pair 2's first was ready
    first, second = runners[0].shared, runners[1].shared
    assert len(first) == len(second) == 12  # six blocks of two shared workers each
    assert first[-1].launched_at > second[0].ready_at and second[-1].launched_at > first[1].ready_at
    # never both pairs' shared workers alive at once: a block's workers stop before the other pair's start
    assert all(worker.stopped_at <= later.launched_at for worker, later in zip(first[::2], second[::2], strict=True))
    # the time budget counts each pair's own time, which together is the wall clock's
    assert sum(outcome.duration_s for outcome in outcomes) <= wall_s + 0.1
    assert all(outcome.duration_s < 0.9 * wall_s for outcome in outcomes)


def test_contended_pairs_are_counted_among_the_pairs_the_interval_counts():
    """A first pair that moved the model to fresh workers is recorded but left out of the interval:
    "54 of 53 pairs ran while other processes used over 25%" counted it."""
    from harness.measure.ab_pair import PairOutcome
    from harness.measure.speedup import SpeedupEstimate

    bursts = [{"contended": True}] + [{"contended": index % 2 == 0} for index in range(6)]
    estimate = SpeedupEstimate("p50", 1.0, 0.9, 1.1, 0.95, 6, 1.0, 1.0)
    assert PairOutcome(status="ok", speedup=estimate, bursts=bursts).contended_pairs() == 3
    assert PairOutcome(status="failed", bursts=bursts).contended_pairs() == 4
