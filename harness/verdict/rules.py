"""The verdict on one variant: ACCEPT only when every check holds (the speedup interval clears the
policy's threshold, quality and memory hold); otherwise REJECT with every reason that applies, each
a code and a sentence with the numbers, plus hardware hints and how much of the MAC reduction the
hardware delivered (`realization`).

Each rule is a small check object with one method (pytest-benchmark's `PercentageRegressionCheck`
pattern): `evaluate(evidence)` returns its reasons and notes. Pure logic on measurements already
taken, so every boundary can be tested on synthetic numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.measure.ab_pair import CONTENDED_OTHER_CPU_SHARE, PairStop
from harness.measure.host_state import HostState
from harness.measure.speedup import SAME_SPEED_BAND, SpeedupEstimate
from harness.recipes.grammar import parse_recipe
from harness.verdict.policy import Policy
from harness.verdict.reasons import Decision, Reason, ReasonCode, Verdict
from targets.backends.tensorrt.inspection import tensorrt_hints
from targets.backends.torch.semi_structured import two_four_hints
from targets.errors import FailureKind, SpeedproofError
from targets.runners.timing import launch_bound_text

# an artifact counts as smaller on a measure when it is below this share of the baseline's
SMALLER_BELOW = 0.95
INT8_OPS = frozenset(
    {"QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul"}
)
X86_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
ARM_INT8_FLAGS = ("asimddp",)
X86_INT4_FLAGS = ("avx2", "avx512_vnni", "avx_vnni")  # what onnxruntime's MatMulNBits kernels use
INT4_COMPUTE_BOUND_BATCH = 8  # from here a matmul reuses each weight enough to be bound by compute
X86_FP16_FLAGS = ("avx512_fp16", "amx_fp16")  # native float16 arithmetic on x86
ARM_FP16_FLAGS = ("asimdhp",)
# limits hold at equality: 0.50 - 0.49 must count as a drop of exactly 0.01
FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class Evidence:
    """Everything the verdict is decided on (all already measured)."""

    recipe: str
    policy: Policy
    baseline_facts: dict[str, Any]
    variant_facts: dict[str, Any] | None
    speedup: SpeedupEstimate | None = None
    stopped_by: PairStop | None = None
    failure: str | None = None
    failure_kind: FailureKind | None = None  # FELL_BACK for the FELL_BACK reason
    baseline_quality: dict[str, Any] | None = None
    variant_quality: dict[str, Any] | None = None
    latency_only: bool = False  # random weights: quality is not judged
    baseline_peak_rss_bytes: int | None = None
    variant_peak_rss_bytes: int | None = None
    host_isa: str = "x86_64"
    backend: str = "onnxruntime"  # the runtime the pair ran on
    host_cpu_flags: tuple[str, ...] = ()
    gpu_target: bool = False
    emulated: bool = False
    larger_batch_speedup: SpeedupEstimate | None = None
    larger_batch_size: int | None = None
    pairs_time_s: float | None = None
    contended_pairs: int = 0  # pairs during which other processes used much of the host's CPU
    host_state: HostState | None = None  # the baseline's level per block, and this host's usual one
    launch_bound: dict[str, float] | None = None  # the variant's enqueue vs device ms, when launch-bound
    semi_structured: dict[str, Any] | None = None  # the variant's 2:4 layers and which run sparse (torch)
    tensorrt: dict[str, Any] | None = None  # which kernels the variant's TensorRT engine runs
    # policy throughput_batch_size: the second requirement's own evidence (its pair, its metric and batch)
    also: Evidence | None = None
    is_identity: bool = False  # the identity recipe: never accepted, whatever the noise says
    extra_notes: tuple[str, ...] = field(default=())


@dataclass
class CheckResult:
    reasons: list[Reason] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class VerdictCheck(Protocol):
    def evaluate(self, evidence: Evidence) -> CheckResult: ...


def interval_text(estimate: SpeedupEstimate) -> str:
    return f"{estimate.ratio:.2f}x [{estimate.ci_low:.2f}, {estimate.ci_high:.2f}]"


def noise_text(estimate: SpeedupEstimate, contended_pairs: int) -> str:
    """The minimum detectable effect and the contention behind it, for an undecided interval."""
    text = (
        f"at this noise the run could only tell a speedup of {estimate.detectable_speedup:.2f}x or more from none "
        f"(interval ±{estimate.detectable_speedup - 1:.0%})"
    )
    if contended_pairs:
        text += (
            f"; {contended_pairs} of {estimate.pairs} pairs ran while other processes used over "
            f"{CONTENDED_OTHER_CPU_SHARE:.0%} of the host's CPU"
        )
    return text


def _units_text(estimate: SpeedupEstimate) -> str:
    if estimate.units == estimate.pairs:
        return f"{estimate.pairs} burst pairs"
    return f"{estimate.pairs} burst pairs in {estimate.units} blocks"


def host_state_note(state: HostState | None, estimate: SpeedupEstimate | None) -> str | None:
    """A note when the host's speed moved under the run (blocks in different states), or when it sat
    away from its usual level and the interval was widened for it."""
    if state is None:
        return None
    if estimate is not None and estimate.widened_by > 1.0:
        return (
            f"the host sat away from its usual speed for this baseline ({state.text()}): the interval was widened "
            f"{estimate.widened_by:.2f}x for it, and decides even so"
        )
    if state.moved():
        return (
            f"the host's speed moved during the run: {state.text()}; the interval counts blocks, so it spans "
            "the states the run saw"
        )
    return None


def mac_reduction(baseline_facts: dict[str, Any], variant_facts: dict[str, Any] | None) -> float | None:
    """baseline MACs / variant MACs, when both are known."""
    base = baseline_facts.get("macs")
    var = (variant_facts or {}).get("macs")
    if not base or not var:
        return None
    return float(base) / float(var)


def size_reductions(baseline_facts: dict[str, Any], variant_facts: dict[str, Any]) -> list[str]:
    """How the artifact is smaller than the baseline, as short phrases ("4.9x smaller zipped")."""
    phrases = []
    # a decoder folder has no zipped size (its weights do not zip): its bytes on disk say it
    on_disk = () if "zipped_bytes" in baseline_facts else (("bytes", "on disk"),)
    for key, label in (("zipped_bytes", "zipped"), *on_disk, ("params", "in params"), ("macs", "in MACs")):
        base, var = baseline_facts.get(key), variant_facts.get(key)
        if base and var and var < base * SMALLER_BELOW:
            phrases.append(f"{base / var:.1f}x smaller {label}")
    base_nonzero, var_nonzero = baseline_facts.get("nonzero_params"), variant_facts.get("nonzero_params")
    if base_nonzero and var_nonzero is not None and var_nonzero < base_nonzero * SMALLER_BELOW:
        phrases.append(f"{var_nonzero / base_nonzero:.0%} of the baseline's non-zero weights")
    return phrases


class SpeedupCheck:
    """The interval's lower end must reach min_speedup, and with `throughput_batch_size` the second
    pair's too; says at most one speed reason (the first requirement that failed; a second failure
    becomes a note)."""

    def evaluate(self, evidence: Evidence) -> CheckResult:
        failed = [reason for reason in self._reasons(evidence) if reason is not None]
        notes = [f"also: {reason.message}" for reason in failed[1:]]
        also = evidence.also
        if also is not None and also.speedup is not None and self._reason(also) is None:
            schedule = also.policy.schedule
            notes.append(
                f"also required: {schedule.metric} speedup {interval_text(also.speedup)} at batch "
                f"{schedule.batch_size} reaches {also.policy.rules.min_speedup:.2f}"
            )
        return CheckResult(reasons=failed[:1], notes=notes)

    def _reasons(self, evidence: Evidence) -> list[Reason | None]:
        reasons = [self._reason(evidence)]
        if evidence.also is not None:
            reasons.append(self._reason(evidence.also))
        return reasons

    def _reason(self, evidence: Evidence) -> Reason | None:
        rules, schedule, estimate = evidence.policy.rules, evidence.policy.schedule, evidence.speedup
        if estimate is None:
            return Reason(ReasonCode.INCONCLUSIVE, "no speedup was measured")
        measured = f"{schedule.metric} speedup {interval_text(estimate)} at batch {schedule.batch_size}"
        if evidence.emulated:
            return Reason(
                ReasonCode.INCONCLUSIVE, f"{measured} was timed under emulation, which never decides a verdict"
            )
        if evidence.stopped_by == PairStop.UNUSUAL_HOST_STATE and evidence.host_state is not None:
            return Reason(
                ReasonCode.INCONCLUSIVE,
                f"{measured} (the interval widened {estimate.widened_by:.2f}x) was measured with the host away from "
                f"its usual speed for this baseline the whole time ({evidence.host_state.text()}): at the usual "
                f"speed the ratio may differ by as much, so it does not decide against {rules.min_speedup:.2f}; "
                "measure again when the host is back (shared VMs and CI runners switch speed states for tens of "
                "seconds)",
            )
        if evidence.stopped_by == PairStop.TOO_LITTLE_DATA:
            return Reason(
                ReasonCode.INCONCLUSIVE,
                f"only {_units_text(estimate)} fit in max_pair_duration_s = {schedule.max_pair_duration_s:g} s; "
                f"{measured} ({estimate.coverage:.0%} level at most) is not enough to decide",
            )
        required = f"{rules.min_speedup:.2f} required"
        if evidence.is_identity and estimate.ci_low >= rules.min_speedup:
            return Reason(
                ReasonCode.NO_REAL_SPEEDUP,
                f"identity compresses nothing, so {measured} is noise or a re-export artifact, not a speedup",
            )
        if estimate.ci_low >= rules.min_speedup:
            return None
        if estimate.ci_high < 1.0:
            return Reason(
                ReasonCode.SLOWER,
                f"{measured}: the whole {estimate.confidence:.0%} interval lies below 1.00 ({required})",
            )
        if estimate.ci_high >= rules.min_speedup:
            took = f" after {evidence.pairs_time_s:.0f} s" if evidence.pairs_time_s is not None else ""
            return Reason(
                ReasonCode.INCONCLUSIVE,
                f"{measured} still straddles {rules.min_speedup:.2f}{took} ({_units_text(estimate)}): "
                f"{noise_text(estimate, evidence.contended_pairs)}; a longer max_pair_duration_s or a quieter "
                "machine may decide it",
            )
        smaller = size_reductions(evidence.baseline_facts, evidence.variant_facts or {})
        what = ", ".join(smaller) if smaller else "not smaller either (zipped size, params, non-zeros, MACs)"
        if estimate.same_speed():
            return Reason(
                ReasonCode.NO_REAL_SPEEDUP,
                f"{what}; it runs at the same speed as the baseline: {measured} lies within "
                f"±{SAME_SPEED_BAND:.0%} of 1.00 ({required})",
            )
        return Reason(ReasonCode.NO_REAL_SPEEDUP, f"{what}; {measured} < {required}")


class QualityCheck:
    """A task metric (--metric-fn) or labelled data: the score or accuracy may drop by at most
    max_accuracy_drop. Otherwise closeness to the baseline, by the measure that fits the outputs,
    must reach its threshold (not judged for random-weight sources fed generated inputs)."""

    def evaluate(self, evidence: Evidence) -> CheckResult:
        rules, quality, base = evidence.policy.rules, evidence.variant_quality, evidence.baseline_quality
        result = CheckResult()
        if not quality:
            result.notes.append("quality was not measured")
            return result
        if quality.get("metric") == "perplexity":
            grew = perplexity_growth(quality, base or {}, rules.max_perplexity_increase)
            if grew is not None:
                result.reasons.append(Reason(ReasonCode.ACCURACY_DROP, grew))
            return result
        if quality.get("metric") in ("accuracy", "task"):
            dropped = _score_drop(quality, base or {}, rules.max_accuracy_drop)
            if dropped is not None:
                result.reasons.append(Reason(ReasonCode.ACCURACY_DROP, dropped))
            return result
        if quality.get("metric") == "fidelity":
            if evidence.latency_only:
                result.notes.append("fidelity not judged: the source has random weights (latency only)")
                return result
            if rules.min_fidelity > 0:
                shortfall = fidelity_shortfall(quality, rules)
                if shortfall is not None:
                    result.reasons.append(Reason(ReasonCode.FIDELITY_LOW, shortfall))
                collapsed = channel_shortfall(quality, rules)
                if collapsed is not None:
                    result.reasons.append(Reason(ReasonCode.FIDELITY_LOW, collapsed))
        return result


def _score_drop(quality: dict[str, Any], base: dict[str, Any], allowed: float) -> str | None:
    """The ACCURACY_DROP sentence when top-1 accuracy (or the task metric's score) fell by more than allowed."""
    key = "accuracy" if quality["metric"] == "accuracy" else "score"
    if base.get(key) is None or quality.get(key) is None:
        return None
    drop = base[key] - quality[key]
    if drop <= allowed + FLOAT_SLACK:
        return None
    if key == "accuracy":
        return (
            f"top-1 accuracy {quality['accuracy']:.1%} vs baseline {base['accuracy']:.1%}: a drop of "
            f"{drop * 100:.1f} pts > {allowed * 100:.1f} allowed"
        )
    return (
        f"task metric ({quality.get('metric_fn')}) {quality['score']:.4g} vs baseline {base['score']:.4g}: a drop "
        f"of {drop:.4g} > {allowed:.4g} allowed (max_accuracy_drop, in the metric's units)"
    )


def perplexity_growth(quality: dict[str, Any], base: dict[str, Any], allowed: float) -> str | None:
    """The ACCURACY_DROP sentence when a decoder's perplexity grew by more than `allowed` (relative)."""
    if not base.get("perplexity") or quality.get("perplexity") is None:
        return None
    growth = quality["perplexity"] / base["perplexity"] - 1.0
    if growth <= allowed + FLOAT_SLACK:
        return None
    return (
        f"perplexity {quality['perplexity']:.2f} vs baseline {base['perplexity']:.2f} on {quality.get('text')}: "
        f"{growth:+.1%} > {allowed:+.0%} allowed (max_perplexity_increase)"
    )


def judged_measure(quality: dict[str, Any], rules: Any) -> tuple[str, str]:
    """The fidelity measure a verdict uses (the policy's, or the one that fits the output) and why."""
    if rules.fidelity_measure != "auto":
        return rules.fidelity_measure, "fidelity_measure in the policy"
    measure = quality.get("auto_measure") or "top1"  # records from before auto_measure judged top-1
    if measure == "top1" and quality.get("top1_agreement") is None:
        return "cosine", "the output has no class axis"
    return measure, quality.get("auto_measure_reason") or "the default"


def channel_shortfall(quality: dict[str, Any], rules: Any) -> str | None:
    """The FIDELITY_LOW sentence when some channel of an output lost its meaning: its standardized
    SNR below min_channel_snr_db (the channels named), whatever the whole tensor's closeness says."""
    channels = quality.get("worst_channels")
    required = getattr(rules, "min_channel_snr_db", None)
    if not channels or required is None or not channels.get("worst"):
        return None
    below = [(index, snr) for index, snr in channels["worst"] if snr < required - FLOAT_SLACK]
    if not below:
        return None
    named = _index_ranges(sorted(index for index, _ in below))
    many = (
        f"{len(below)}+"
        if len(below) == len(channels["worst"]) and not channels.get("all_listed", True)
        else str(len(below))
    )
    whole = f"; the whole output's cosine {quality['mean_cosine']:.4f} hides them" if quality.get("mean_cosine") else ""
    return (
        f"output {channels['output']!r}: {many} of its {channels['count']} channels on axis {channels['axis']} "
        f"collapsed against the baseline's (standardized SNR {below[0][1]:.1f} dB at channel {below[0][0]} < "
        f"{required:g} dB required): channels {named}{whole}. A quantization scale shared by values of "
        "different ranges (boxes in pixels, scores in 0-1) does this: keep that output's last layers in float"
    )


def _index_ranges(indices: list[int], most: int = 8) -> str:
    """4, 5, 6, 9 -> '4-6, 9' (at most `most` ranges, then '...')."""
    ranges: list[list[int]] = []
    for index in indices:
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    texts = [f"{first}-{last}" if last > first else str(first) for first, last in ranges]
    return ", ".join(texts[:most]) + (", ..." if len(texts) > most else "")


def fidelity_shortfall(quality: dict[str, Any], rules: Any) -> str | None:
    """The FIDELITY_LOW sentence when the measure that judges this output misses its threshold."""
    measure, why = judged_measure(quality, rules)
    others = ", ".join(
        text
        for text in (
            f"top-1 agreement {quality['top1_agreement']:.1%}" if quality.get("top1_agreement") is not None else "",
            f"mean cosine {quality['mean_cosine']:.4f}" if quality.get("mean_cosine") is not None else "",
            f"SNR {quality['snr_db']:.1f} dB" if quality.get("snr_db") is not None else "",
        )
        if text
    )
    incomparable = quality.get("incomparable") or []
    if quality.get("mean_cosine") is None and incomparable and measure != "top1":
        return (
            f"no output could be compared with the baseline's element by element ({'; '.join(incomparable)}); "
            "give --data and a --metric-fn that judges them"
        )
    if measure == "top1":
        value, required = quality.get("top1_agreement"), rules.min_fidelity
        if value is None or value >= required - FLOAT_SLACK:
            return None
        said = f"top-1 agreement with the baseline {value:.1%} < {required:.1%} required"
    elif measure == "cosine":
        value, required = quality.get("mean_cosine"), rules.min_cosine
        if value is None or value >= required - FLOAT_SLACK:
            return None
        said = f"mean cosine similarity to the baseline {value:.4f} < {required:.4f} required"
    else:
        value, required = quality.get("snr_db"), rules.min_snr_db
        if value is None or value >= required - FLOAT_SLACK:
            return None
        said = f"SNR against the baseline {value:.1f} dB < {required:.1f} dB required"
    return f"{said} (judged by {measure}: {why}; {others})"


# peak RSS of worker processes that load the same file spreads this much (relative) between them:
# resnet18's baseline workers of one run (results/known-answers) peaked at 190-211 MiB, and the demo's
# byte-identical copy at 215 MiB against its baseline's 194. A memory claim needs the variant's peak
# to pass the allowed ratio by more than this
MEMORY_AA_SPREAD = 0.10


class MemoryCheck:
    """Peak RSS of the variant's worker over the baseline's may be at most max_memory_ratio; a growth
    is claimed only beyond the A/A spread of such peaks (MEMORY_AA_SPREAD), and never for the identity
    control (its file is the baseline's bytes)."""

    def evaluate(self, evidence: Evidence) -> CheckResult:
        base, var = evidence.baseline_peak_rss_bytes, evidence.variant_peak_rss_bytes
        if not base or var is None or evidence.is_identity:
            return CheckResult()
        ratio = var / base
        allowed = evidence.policy.rules.max_memory_ratio
        if ratio <= allowed + FLOAT_SLACK:
            return CheckResult()
        if var - base * allowed <= base * MEMORY_AA_SPREAD:
            return CheckResult(
                notes=[
                    f"peak RSS {var / 2**20:.0f} MiB vs baseline {base / 2**20:.0f} MiB ({ratio:.2f}x) is past "
                    f"max_memory_ratio {allowed:.2f} by less than two workers of the same file differ "
                    f"({MEMORY_AA_SPREAD:.0%}): not claimed"
                ]
            )
        return CheckResult(
            reasons=[
                Reason(
                    ReasonCode.MEMORY_GREW,
                    f"peak RSS {var / 2**20:.0f} MiB vs baseline {base / 2**20:.0f} MiB: {ratio:.2f}x > "
                    f"{allowed:.2f} allowed (by more than the {MEMORY_AA_SPREAD:.0%} two workers of one file differ)",
                )
            ]
        )


SPEED_CHECK = SpeedupCheck()
VERDICT_CHECKS: tuple[VerdictCheck, ...] = (SPEED_CHECK, QualityCheck(), MemoryCheck())


def decide(evidence: Evidence) -> Verdict:
    """ACCEPT or REJECT with reasons, hints and realization."""
    if evidence.failure is not None:
        return Verdict.failed(evidence.failure, evidence.failure_kind)
    reasons: list[Reason] = []
    notes: list[str] = list(evidence.extra_notes)
    said = host_state_note(evidence.host_state, evidence.speedup)
    if said and evidence.stopped_by != PairStop.UNUSUAL_HOST_STATE:  # that one's reason says it
        notes.append(said)
    speed_ok = True
    for check in VERDICT_CHECKS:
        result = check.evaluate(evidence)
        reasons.extend(result.reasons)
        notes.extend(result.notes)
        if check is SPEED_CHECK:
            speed_ok = not result.reasons
    hints = hardware_hints(evidence) if not speed_ok else []
    realization = None
    reduction = mac_reduction(evidence.baseline_facts, evidence.variant_facts)
    if reduction and evidence.speedup is not None:
        realization = evidence.speedup.ratio / reduction
    decision = Decision.ACCEPT if not reasons else Decision.REJECT
    return Verdict(decision, tuple(reasons), tuple(hints), tuple(notes), realization)


def _is_float16(recipe: str, facts: dict[str, Any]) -> bool:
    """An fp16 recipe, or (a candidate file) weights mostly float16 by the artifact's facts."""
    dtypes = facts.get("weight_dtypes") or {}
    if dtypes and dtypes.get("float16", 0) > sum(dtypes.values()) / 2:
        return True
    try:
        return any(step.name == "fp16" for step in parse_recipe(recipe).steps)
    except SpeedproofError:
        return False


def int4_hints(evidence: Evidence) -> list[str]:
    """Why 4-bit weights (MatMulNBits) may not pay on this CPU: a missing instruction set, or
    matmuls that are bound by compute rather than by reading their weights."""
    hints = []
    flags = set(evidence.host_cpu_flags)
    if evidence.host_isa == "x86_64" and not set(X86_INT4_FLAGS) & flags:
        hints.append(
            "4-bit weights on an x86 CPU without AVX2 or AVX512-VNNI: onnxruntime's MatMulNBits kernels need "
            "them, and without them unpack the weights to float32 for every matmul"
        )
    elif evidence.host_isa == "aarch64" and not set(ARM_INT8_FLAGS) & flags:
        hints.append(
            "4-bit weights on an ARM CPU without dot-product instructions (no asimddp): MatMulNBits' int8 "
            "compute (accuracy_level=4) has no fast kernel here"
        )
    batch = evidence.policy.schedule.batch_size
    if batch >= INT4_COMPUTE_BOUND_BATCH:
        hints.append(
            f"at batch {batch} every weight read serves {batch} rows: the matmuls are bound by compute, not by "
            "reading weights, so the 4-bit weights' smaller reads save little; what can still gain is the int8 "
            "arithmetic of accuracy_level=4 (with VNNI), far less than the file's shrinkage suggests"
        )
    else:
        weights_mb = (evidence.baseline_facts.get("bytes") or 0) / 2**20
        hints.append(
            "4-bit weights save memory traffic, which pays where matmuls wait on reading weights too large for "
            f"the CPU's caches; this model's float weights are {weights_mb:.1f} MB, and matmuls whose weights stay "
            "in cache gain nothing from smaller ones while unpacking the 4-bit blocks costs time"
        )
    return hints


def _mostly_8bit(facts: dict[str, Any]) -> bool:
    """Whether most of an artifact's weights are 8-bit integers (a quantized file)."""
    dtypes = facts.get("weight_dtypes") or {}
    total = sum(dtypes.values())
    return bool(total) and (dtypes.get("int8", 0) + dtypes.get("uint8", 0)) > total / 2


def openvino_int8_text() -> str:
    return (
        "int8 on OpenVINO on an x86 CPU without VNNI or AMX (no avx512_vnni, avx_vnni or amx_int8): its CPU plugin "
        "still runs the quantized layers in u8/i8, with AVX2 multiply-adds whose 16-bit sums can saturate (OpenVINO's "
        "saturation note: NNCF's quantizer, the int8-nncf recipe, avoids it), and gains less than with VNNI"
    )


def hardware_hints(evidence: Evidence) -> list[str]:
    """Why the hardware may not deliver the gain (only given when the speed requirement failed)."""
    hints = []
    base, facts = evidence.baseline_facts, evidence.variant_facts or {}
    reduction = mac_reduction(base, facts)
    params, nonzero = facts.get("params"), facts.get("nonzero_params")
    base_params, base_nonzero = base.get("params"), base.get("nonzero_params")
    if params and nonzero is not None and base_params and base_nonzero:
        zero_share = 1 - nonzero / params
        base_zero_share = 1 - base_nonzero / base_params
        if (
            zero_share - base_zero_share > 0.2
            and (reduction is None or reduction < 1 / SMALLER_BELOW)
            and not _mostly_8bit(facts)  # int8 weights that round to zero were not pruned
        ):
            hints.append(
                f"{zero_share:.0%} of the weights are zero, but dense kernels multiply the zeros too: the MACs "
                "are unchanged. Structured pruning (whole channels or heads) shrinks the work itself; 2:4 "
                "sparsity needs sparse tensor cores"
            )
    ops = set((facts.get("op_histogram") or {}).keys())
    if ops & INT8_OPS and not evidence.gpu_target:
        if evidence.host_isa == "x86_64" and not set(X86_INT8_FLAGS) & set(evidence.host_cpu_flags):
            hints.append(
                openvino_int8_text()
                if evidence.backend == "openvino"
                else "int8 on an x86 CPU without VNNI or AMX (no avx512_vnni, avx_vnni or amx_int8): int8 dot "
                "products take several instructions each, plus the (de)quantize steps, so int8 is often "
                "slower than float32 here"
            )
        elif evidence.host_isa == "aarch64" and not set(ARM_INT8_FLAGS) & set(evidence.host_cpu_flags):
            hints.append(
                "int8 on an ARM CPU without dot-product instructions (no asimddp): int8 matmuls gain little "
                "over float32"
            )
    if "com.microsoft.MatMulNBits" in ops and not evidence.gpu_target:
        hints.extend(int4_hints(evidence))
    if not evidence.gpu_target and _is_float16(evidence.recipe, facts):
        flags = X86_FP16_FLAGS if evidence.host_isa == "x86_64" else ARM_FP16_FLAGS
        if not set(flags) & set(evidence.host_cpu_flags):
            hints.append(
                f"float16 on a CPU without native half-precision arithmetic (no {' or '.join(flags)}): every "
                "operation converts to float32 and back, so the half-size file usually runs slower; keep float32 "
                "on this CPU, or use float16 on a GPU"
            )
    alignment = facts.get("alignment") or {}
    if evidence.gpu_target and alignment.get("multiple_of_8") is not None and alignment["multiple_of_8"] < 1.0:
        examples = ", ".join(str(item) for item in (alignment.get("misaligned_examples") or [])[:4])
        hints.append(
            f"only {alignment['multiple_of_8']:.0%} of the layer widths are multiples of 8 "
            f"({examples}): tensor cores want multiples of 8 (fp16) or 16 (int8); try round_to=8"
        )
    if evidence.launch_bound is not None:
        hints.append(launch_bound_text(evidence.launch_bound))
    hints.extend(two_four_hints(evidence.semi_structured))
    hints.extend(tensorrt_hints(evidence.tensorrt))
    larger = evidence.larger_batch_speedup
    if larger is not None and larger.ci_low >= evidence.policy.rules.min_speedup:
        hints.append(
            f"at batch {evidence.larger_batch_size} the speedup is {interval_text(larger)}: the gain appears "
            "only at larger batch sizes"
        )
    return hints
