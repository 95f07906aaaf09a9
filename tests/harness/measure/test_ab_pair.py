"""The A/B pair on real live workers: it stops when the interval is clearly on one side of the
threshold, and a worker that cannot load makes the pair failed with its message."""

import time
from dataclasses import replace

from harness.measure.ab_pair import FRESH_WORKER_BURST_S, RENEWAL_WARMUP_S, PairStop, StopRule, run_ab_pair
from harness.verdict.policy import Policy
from harness.verdict.rules import Evidence, decide
from targets.runners.local import LocalRunner
from tests.helpers import FAST_POLICY, cell_request

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
    warm-up, the bursts it was asked for and how many processes were running when it was waited on."""

    def __init__(self):
        super().__init__()
        self.started = 0
        self.workers = []

    def start_live_worker(self, request, label):
        self.started += 1
        worker = _NotedWorker(super().start_live_worker(request, label), request, self)
        self.workers.append(worker)
        return worker


class _NotedWorker:
    def __init__(self, worker, request, runner):
        self.worker, self.label, self.runner = worker, worker.label, runner
        self.warmup_s = request.protocol.warmup_min_duration_s
        self.bursts_s = []
        self.launched_at = self.ready_at = None

    def launch(self):
        if self.launched_at is None:
            self.launched_at = time.monotonic()
        self.worker.launch()

    def start(self, timeout_s):
        self.launch()
        ready = self.worker.start(timeout_s)
        self.ready_at = time.monotonic()
        return ready

    def burst(self, burst_s, min_iterations=1):
        self.bursts_s.append(burst_s)
        return self.worker.burst(burst_s, min_iterations)

    def stop(self, timeout_s=30.0):
        return self.worker.stop(timeout_s)

    def close(self):
        self.worker.close()


def test_a_fast_model_gets_a_fresh_worker_per_side_for_every_pair_after_the_first(tiny_conv_onnx):
    request = cell_request(tiny_conv_onnx)
    request = replace(request, protocol=replace(request.protocol, warmup_min_duration_s=0.4))
    schedule = replace(SCHEDULE, fresh_workers_below_ms=1000.0, max_pair_duration_s=60.0, burst_duration_s=0.2)
    runner = _CountingRunner()
    outcome = run_ab_pair(request, request, schedule, StopRule(3.0, 0.95), runner, load_timeout_s=120)
    assert outcome.status == "ok", outcome.error
    assert outcome.fresh_workers and outcome.as_dict()["fresh_workers_per_pair"] is True
    assert runner.started == 2 * len(outcome.bursts)  # the first pair's two, then two more per pair
    assert outcome.stopped_by == PairStop.BELOW
    first, fresh = runner.workers[:2], runner.workers[2:]
    # the first start: one side after the other (each side's cold start its own), the full warm-up
    assert first[1].launched_at >= first[0].ready_at
    assert all(worker.warmup_s == request.protocol.warmup_min_duration_s for worker in first)
    assert all(worker.bursts_s == [schedule.burst_duration_s] for worker in first)
    # fresh pairs: both sides launched before either is waited on, a short warm-up, short bursts
    assert fresh and all(
        second.launched_at < first.ready_at for first, second in zip(fresh[::2], fresh[1::2], strict=True)
    )
    # the side that bursts first in a pair is launched first: its process is not always the younger
    assert [worker.label for worker in fresh[:4]] == ["variant", "baseline", "baseline", "variant"]
    assert all(worker.warmup_s == RENEWAL_WARMUP_S and worker.bursts_s == [FRESH_WORKER_BURST_S] for worker in fresh)
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
