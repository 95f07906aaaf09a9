"""Verdict logic on synthetic measurements: every reason code, the interval's boundaries, hints."""

from dataclasses import replace

import pytest

from harness.measure.ab_pair import PairStop
from harness.measure.host_state import HostState
from harness.measure.speedup import SpeedupEstimate
from harness.verdict.policy import Policy
from harness.verdict.reasons import Decision, NextStep, ReasonCode, next_step_for
from harness.verdict.rules import Evidence, decide

ACCEPT, REJECT = Decision.ACCEPT, Decision.REJECT

BASE_FACTS = {
    "bytes": 46_800_000,
    "zipped_bytes": 43_000_000,
    "params": 11_700_000,
    "nonzero_params": 11_700_000,
    "macs": 1_814_000_000,
    "op_histogram": {"Conv": 20},
    "alignment": {"multiple_of_8": 1.0},
}
UNSTRUCTURED = {**BASE_FACTS, "zipped_bytes": 8_700_000, "nonzero_params": 1_170_000}
STRUCTURED = {
    **BASE_FACTS,
    "bytes": 12_300_000,
    "zipped_bytes": 11_300_000,
    "params": 3_000_000,
    "nonzero_params": 3_000_000,
    "macs": 483_000_000,
    "alignment": {"multiple_of_8": 0.5, "misaligned_examples": [31, 63]},
}
INT8 = {**BASE_FACTS, "zipped_bytes": 10_000_000, "op_histogram": {"ConvInteger": 20, "DynamicQuantizeLinear": 20}}


def _speedup(ratio, low, high, pairs=10):
    return SpeedupEstimate("p50", ratio, low, high, 0.95, pairs, 50.0, 50.0 / ratio)


def _evidence(**changes):
    values = dict(
        recipe="structured:0.5",
        policy=Policy(),
        baseline_facts=BASE_FACTS,
        variant_facts=STRUCTURED,
        speedup=_speedup(3.7, 3.5, 3.9),
        stopped_by="interval_above_threshold",
        baseline_quality={"metric": "accuracy", "accuracy": 0.99},
        variant_quality={"metric": "accuracy", "accuracy": 0.985},
        baseline_peak_rss_bytes=200 * 2**20,
        variant_peak_rss_bytes=150 * 2**20,
        host_cpu_flags=("avx2", "fma"),
    )
    values.update(changes)
    return Evidence(**values)


def test_accept_when_the_interval_clears_and_quality_and_memory_hold():
    verdict = decide(_evidence())
    assert verdict.decision == ACCEPT and verdict.reasons == () and verdict.hints == ()
    assert verdict.realization == pytest.approx(3.7 / (1814 / 483))


@pytest.mark.parametrize(
    ("low", "high", "decision"),
    [(1.10, 1.30, ACCEPT), (1.0999, 1.30, REJECT), (1.11, 1.11, ACCEPT)],
)
def test_the_lower_end_must_reach_min_speedup(low, high, decision):
    verdict = decide(_evidence(speedup=_speedup((low + high) / 2, low, high)))
    assert verdict.decision == decision


def test_smaller_but_not_faster_is_no_real_speedup_with_the_numbers():
    verdict = decide(
        _evidence(
            recipe="unstructured:0.9",
            variant_facts=UNSTRUCTURED,
            speedup=_speedup(1.01, 0.98, 1.04),
            stopped_by="interval_below_threshold",
        )
    )
    assert verdict.codes() == ["NO_REAL_SPEEDUP"]
    message = verdict.reasons[0].message
    assert "4.9x smaller zipped" in message and "10% of the baseline's non-zero weights" in message
    assert "1.01x [0.98, 1.04]" in message and "< 1.10 required" in message
    assert any("dense kernels multiply the zeros" in hint for hint in verdict.hints)


def test_int8_without_vnni_on_openvino_gets_openvinos_own_hint():
    slower = _evidence(recipe="int8-static", variant_facts=INT8, speedup=_speedup(0.9, 0.85, 0.95))
    hints = decide(replace(slower, backend="openvino")).hints
    assert any("int8 on OpenVINO" in hint and "can saturate" in hint and "int8-nncf" in hint for hint in hints)
    assert not any("often slower than float32" in hint for hint in hints)


def test_interval_below_one_is_slower_with_the_int8_hint_on_a_cpu_without_vnni():
    verdict = decide(_evidence(recipe="int8-dynamic", variant_facts=INT8, speedup=_speedup(0.4, 0.38, 0.42)))
    assert verdict.codes() == ["SLOWER"]
    assert any("without VNNI or AMX" in hint for hint in verdict.hints)
    with_vnni = decide(
        _evidence(
            recipe="int8-dynamic",
            variant_facts=INT8,
            speedup=_speedup(0.4, 0.38, 0.42),
            host_cpu_flags=("avx2", "avx512_vnni"),
        )
    )
    assert not any("VNNI" in hint for hint in with_vnni.hints)
    arm = decide(
        _evidence(
            recipe="int8-dynamic",
            variant_facts=INT8,
            speedup=_speedup(0.9, 0.8, 0.95),
            host_isa="aarch64",
            host_cpu_flags=("asimd",),
        )
    )
    assert any("dot-product" in hint for hint in arm.hints)


def test_interval_just_below_one_is_slower_and_touching_one_is_not():
    assert decide(_evidence(speedup=_speedup(0.95, 0.9, 0.9999))).codes() == ["SLOWER"]
    assert decide(_evidence(speedup=_speedup(0.95, 0.9, 1.0))).codes() == ["NO_REAL_SPEEDUP"]


def test_straddling_the_threshold_is_inconclusive_and_rejects():
    verdict = decide(_evidence(speedup=_speedup(1.12, 1.02, 1.25), stopped_by="time_budget", pairs_time_s=120.0))
    assert verdict.decision == REJECT and verdict.codes() == ["INCONCLUSIVE"]
    assert "straddles 1.10 after 120 s" in verdict.reasons[0].message


def test_too_few_pairs_is_inconclusive_even_when_the_numbers_look_good():
    verdict = decide(_evidence(speedup=_speedup(3.0, 3.0, 3.0, pairs=1), stopped_by="too_little_data"))
    assert verdict.codes() == ["INCONCLUSIVE"] and "only 1 burst pairs" in verdict.reasons[0].message


def test_emulated_timings_never_decide():
    verdict = decide(_evidence(emulated=True))
    assert verdict.codes() == ["INCONCLUSIVE"] and "emulation" in verdict.reasons[0].message


def test_identity_is_always_rejected_even_when_noise_says_faster():
    verdict = decide(
        _evidence(recipe="identity", variant_facts=BASE_FACTS, speedup=_speedup(1.2, 1.15, 1.3), is_identity=True)
    )
    assert verdict.decision == REJECT and verdict.codes() == ["NO_REAL_SPEEDUP"]


def test_accuracy_drop_beyond_the_policy_and_at_the_boundary():
    dropped = decide(_evidence(variant_quality={"metric": "accuracy", "accuracy": 0.939}))
    assert dropped.codes() == ["ACCURACY_DROP"] and "drop of 5.1 pts > 1.0 allowed" in dropped.reasons[0].message
    at_limit = decide(
        _evidence(
            baseline_quality={"metric": "accuracy", "accuracy": 0.5},
            variant_quality={"metric": "accuracy", "accuracy": 0.49},
        )
    )
    assert at_limit.decision == ACCEPT


def test_fidelity_low_unless_disabled_or_latency_only():
    quality = {"metric": "fidelity", "top1_agreement": 0.9, "mean_cosine": 0.97}
    base = {"metric": "fidelity", "reference": True}
    low = decide(_evidence(baseline_quality=base, variant_quality=quality))
    assert low.codes() == ["FIDELITY_LOW"] and "90.0% < 99.0% required" in low.reasons[0].message
    assert decide(
        _evidence(baseline_quality=base, variant_quality=quality, policy=Policy().with_values({"min_fidelity": 0}))
    ).accepted
    random_weights = decide(_evidence(baseline_quality=base, variant_quality=quality, latency_only=True))
    assert random_weights.accepted and any("random weights" in note for note in random_weights.notes)


def test_memory_growth_beyond_the_ratio_and_the_spread_of_workers_of_one_file():
    verdict = decide(_evidence(variant_peak_rss_bytes=250 * 2**20))
    assert verdict.codes() == ["MEMORY_GREW"] and "1.25x > 1.10 allowed" in verdict.reasons[0].message
    assert decide(_evidence(variant_peak_rss_bytes=220 * 2**20)).accepted  # exactly 1.10x
    # past the ratio by no more than two workers of the same file differ: said, not claimed
    within_spread = decide(_evidence(variant_peak_rss_bytes=240 * 2**20))
    assert within_spread.accepted and any("not claimed" in note for note in within_spread.notes)


def test_the_identity_control_never_gets_a_memory_claim():
    # the demo's resnet18 identity: 215 vs 194 MiB (1.11x) was MEMORY_GREW on a byte-identical copy
    for peak_mib in (215, 300):
        verdict = decide(
            _evidence(
                recipe="identity",
                is_identity=True,
                variant_facts=BASE_FACTS,
                speedup=_speedup(1.0, 0.98, 1.02),
                stopped_by="interval_below_threshold",
                baseline_peak_rss_bytes=194 * 2**20,
                variant_peak_rss_bytes=peak_mib * 2**20,
            )
        )
        assert "MEMORY_GREW" not in verdict.codes() and verdict.codes() == ["NO_REAL_SPEEDUP"]


def test_a_run_spent_away_from_the_hosts_usual_level_is_inconclusive_whatever_its_interval():
    # the false SLOWER: 7 pairs inside a slow state, the baseline at 0.185 ms against its usual 0.14
    state = HostState((0.185, 0.19, 0.184, 0.186, 0.188, 0.185), usual=0.14, usual_runs=8)
    assert state.shift_factor() == pytest.approx(0.1855 / 0.14)
    widened = _speedup(0.98, 0.97, 0.99).widened(state.shift_factor())
    assert widened.ci_high > 1.0 and widened.widened_by > 1.3  # 0.99 x 1.32: no longer below 1.00
    verdict = decide(_evidence(speedup=widened, stopped_by=PairStop.UNUSUAL_HOST_STATE, host_state=state))
    assert verdict.codes() == ["INCONCLUSIVE"]
    assert "away from its usual speed" in verdict.reasons[0].message and "0.14 ms" in verdict.reasons[0].message
    assert next_step_for(verdict.decision, verdict.codes()) == NextStep.REMEASURE


def test_a_clear_speedup_measured_away_from_the_usual_level_decides_with_its_widened_interval():
    # measured on a VM whose baseline moved between 0.18 and 0.31 ms: 2.11x [2.02, 2.14] at 1.48x its usual level
    state = HostState((0.31, 0.305, 0.312, 0.309, 0.31, 0.308), usual=0.21, usual_runs=9)
    widened = _speedup(2.11, 2.02, 2.14).widened(state.shift_factor())
    verdict = decide(_evidence(speedup=widened, stopped_by=PairStop.ABOVE, host_state=state))
    assert verdict.accepted and widened.ci_low == pytest.approx(2.02 / state.shift_factor())
    assert any("widened 1.47x" in note for note in verdict.notes)


def test_a_host_that_moved_under_the_run_is_said_beside_the_verdict():
    moved = HostState((0.13, 0.13, 0.18, 0.185, 0.13, 0.132), usual=0.13, usual_runs=4)
    verdict = decide(_evidence(host_state=moved))
    assert verdict.accepted and any("moved during the run" in note for note in verdict.notes)
    steady = decide(_evidence(host_state=HostState((0.13, 0.131, 0.129, 0.13, 0.133, 0.13))))
    assert not any("moved" in note for note in steady.notes)


def test_failures_and_fallbacks_reject_with_the_message():
    failed = decide(_evidence(failure="onnxruntime could not load x.onnx", speedup=None))
    assert failed.codes() == ["FAILED"] and "could not load" in failed.reasons[0].message
    fell = decide(_evidence(failure="asked for CUDAExecutionProvider, runs on CPU", failure_kind="fell_back"))
    assert fell.codes() == ["FELL_BACK"]


def test_every_reason_that_applies_is_listed():
    verdict = decide(
        _evidence(
            speedup=_speedup(0.5, 0.45, 0.55),
            variant_peak_rss_bytes=400 * 2**20,
            variant_quality={"metric": "accuracy", "accuracy": 0.5},
        )
    )
    assert verdict.codes() == ["SLOWER", "ACCURACY_DROP", "MEMORY_GREW"]
    assert set(verdict.codes()) <= set(ReasonCode)


def test_gpu_hints_for_misaligned_widths_and_larger_batches():
    verdict = decide(
        _evidence(
            speedup=_speedup(1.02, 0.97, 1.06),
            gpu_target=True,
            larger_batch_speedup=_speedup(2.5, 2.3, 2.7),
            larger_batch_size=64,
        )
    )
    assert any("multiples of 8" in hint and "31" in hint for hint in verdict.hints)
    assert any("at batch 64" in hint and "only at larger batch sizes" in hint for hint in verdict.hints)


def test_a_launch_bound_variant_gets_the_cuda_graph_hint_when_it_is_not_faster():
    bound = {"enqueue_ms": 0.95, "device_ms": 1.0}
    verdict = decide(_evidence(speedup=_speedup(1.01, 0.97, 1.05), gpu_target=True, launch_bound=bound))
    assert any(h.startswith("launch-bound: the host took 0.950 ms") and "cuda-graph" in h for h in verdict.hints)
    accepted = decide(_evidence(gpu_target=True, launch_bound=bound))
    assert accepted.decision == "ACCEPT" and accepted.hints == ()


def test_float16_on_a_cpu_without_half_precision_gets_its_hint():
    half = {**BASE_FACTS, "bytes": BASE_FACTS["bytes"] // 2, "zipped_bytes": BASE_FACTS["zipped_bytes"] // 2}
    slower = _speedup(0.2, 0.19, 0.21)
    verdict = decide(_evidence(recipe="fp16", variant_facts=half, speedup=slower, host_cpu_flags=("avx2",)))
    assert verdict.codes() == ["SLOWER"]
    assert any("without native half-precision arithmetic (no avx512_fp16 or amx_fp16)" in h for h in verdict.hints)
    native = decide(_evidence(recipe="fp16", variant_facts=half, speedup=slower, host_cpu_flags=("avx512_fp16",)))
    on_gpu = decide(_evidence(recipe="fp16", variant_facts=half, speedup=slower, gpu_target=True))
    structured = decide(_evidence(recipe="structured:0.5", variant_facts=STRUCTURED, speedup=slower))
    for other in (native, on_gpu, structured):
        assert not any("half-precision" in hint for hint in other.hints)
    # a candidate file made elsewhere has no recipe name: its weights' element types say it is float16
    made_elsewhere = {**half, "weight_dtypes": {"float16": 900, "int64": 4}}
    candidate = decide(_evidence(recipe="model_fp16.onnx", variant_facts=made_elsewhere, speedup=slower))
    assert any("without native half-precision arithmetic" in hint for hint in candidate.hints)


def _with_throughput_requirement(primary, second, batch=64):
    """Evidence whose policy also asks for throughput at `batch` (as the cuda-gpu profile does)."""
    policy = Policy().with_values({"throughput_batch_size": batch})
    first = _evidence(policy=policy, speedup=primary, gpu_target=True)
    also_policy = policy.with_values({"metric": "throughput", "batch_size": batch, "throughput_batch_size": 0})
    return replace(first, also=replace(first, policy=also_policy, speedup=second))


def test_a_second_throughput_requirement_must_hold_too():
    both = decide(_with_throughput_requirement(_speedup(1.5, 1.3, 1.7), _speedup(2.0, 1.8, 2.2)))
    assert both.decision == "ACCEPT"
    assert any(
        note.startswith("also required: throughput speedup 2.00x [1.80, 2.20] at batch 64") for note in both.notes
    )
    second_fails = decide(_with_throughput_requirement(_speedup(1.5, 1.3, 1.7), _speedup(0.8, 0.75, 0.85)))
    assert second_fails.codes() == ["SLOWER"]
    assert "throughput speedup 0.80x [0.75, 0.85] at batch 64" in second_fails.reasons[0].message
    both_fail = decide(_with_throughput_requirement(_speedup(0.8, 0.75, 0.85), _speedup(1.02, 0.98, 1.05)))
    assert both_fail.codes() == ["SLOWER"]  # one speed reason: the first requirement's
    assert "p50 speedup 0.80x" in both_fail.reasons[0].message
    assert any(note.startswith("also: ") and "at batch 64" in note for note in both_fail.notes)


@pytest.mark.parametrize(
    ("quality", "policy", "low"),
    [
        # a detector's float16 copy: top-1 over anchors disagrees, the outputs are the same to 4 digits
        ({"top1_agreement": 0.897, "mean_cosine": 1.0, "snr_db": 60.0, "auto_measure": "cosine"}, {}, False),
        (
            {"top1_agreement": 0.897, "mean_cosine": 1.0, "snr_db": 60.0, "auto_measure": "cosine"},
            {"fidelity_measure": "top1"},
            True,
        ),
        ({"top1_agreement": 1.0, "mean_cosine": 0.95, "snr_db": 12.0, "auto_measure": "cosine"}, {}, True),
        (
            {"top1_agreement": 1.0, "mean_cosine": 0.999, "snr_db": 12.0, "auto_measure": "cosine"},
            {"fidelity_measure": "snr_db"},
            True,
        ),
        ({"top1_agreement": 0.9, "mean_cosine": 0.999, "auto_measure": "top1"}, {}, True),
        ({"top1_agreement": None, "mean_cosine": 0.999, "auto_measure": "top1"}, {}, False),  # no class axis
    ],
)
def test_fidelity_is_judged_by_the_measure_that_fits(quality, policy, low):
    base = {"metric": "fidelity", "reference": True}
    variant = {"metric": "fidelity", **quality}
    verdict = decide(_evidence(baseline_quality=base, variant_quality=variant, policy=Policy().with_values(policy)))
    assert (ReasonCode.FIDELITY_LOW in verdict.codes()) == low
    if low:
        [reason] = [reason for reason in verdict.reasons if reason.code == ReasonCode.FIDELITY_LOW]
        assert "judged by" in reason.message


def test_four_bit_weights_that_do_not_pay_get_the_memory_bound_hint_and_the_missing_kernels():
    int4 = {**BASE_FACTS, "zipped_bytes": 6_000_000, "op_histogram": {"com.microsoft.MatMulNBits": 12, "Add": 12}}
    slower = _speedup(0.8, 0.75, 0.85)
    verdict = decide(_evidence(recipe="int4-weight", variant_facts=int4, speedup=slower, host_cpu_flags=("sse4_2",)))
    assert verdict.codes() == ["SLOWER"]
    assert any("without AVX2 or AVX512-VNNI" in hint for hint in verdict.hints)
    assert any("save memory traffic" in h and "whose weights stay in cache gain nothing" in h for h in verdict.hints)
    with_kernels = decide(_evidence(recipe="int4-weight", variant_facts=int4, speedup=slower))  # avx2
    assert not any("without AVX2" in hint for hint in with_kernels.hints)
    assert any("4-bit weights save memory traffic" in hint for hint in with_kernels.hints)
    batch_32 = Policy().with_values({"batch_size": 32})
    at_batch_32 = decide(_evidence(recipe="int4-weight", variant_facts=int4, speedup=slower, policy=batch_32))
    assert any(
        "at batch 32 every weight read serves 32 rows: the matmuls are bound by compute" in h for h in at_batch_32.hints
    )
    on_gpu = decide(_evidence(recipe="int4-weight", variant_facts=int4, speedup=slower, gpu_target=True))
    assert not any("4-bit" in hint for hint in on_gpu.hints)


def test_a_collapsed_channel_is_fidelity_low_naming_the_channels():
    from types import SimpleNamespace

    from harness.verdict.rules import channel_shortfall

    rules = SimpleNamespace(min_channel_snr_db=3.0)
    quality = {
        "mean_cosine": 0.9998,
        "worst_channels": {"output": "output0", "axis": 1, "count": 84, "worst": [[i, -20.0] for i in range(4, 84)]},
    }
    said = channel_shortfall(quality, rules)
    assert said is not None and "80 of its 84 channels on axis 1" in said and "channels 4-83" in said
    assert "cosine 0.9998 hides them" in said
    healthy = {**quality, "worst_channels": {**quality["worst_channels"], "worst": [[7, 25.0]]}}
    assert channel_shortfall(healthy, rules) is None
