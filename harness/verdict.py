"""The verdict on one variant: ACCEPT only when the speedup interval clears the policy's threshold
and quality and memory hold; otherwise REJECT with every reason that applies, each a code and a
sentence with the numbers, plus hardware hints and how much of the MAC reduction the hardware
delivered (`realization`).

Pure logic on measurements already taken, so every boundary can be tested on synthetic numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.policy import Policy
from harness.speedup import SpeedupEstimate

ACCEPT = "ACCEPT"
REJECT = "REJECT"
REASON_CODES = (
    "NO_REAL_SPEEDUP",
    "SLOWER",
    "INCONCLUSIVE",
    "ACCURACY_DROP",
    "FIDELITY_LOW",
    "MEMORY_GREW",
    "FAILED",
    "FELL_BACK",
)
# an artifact counts as smaller on a measure when it is below this share of the baseline's
SMALLER_BELOW = 0.95
INT8_OPS = frozenset(
    {"QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul"}
)
X86_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
ARM_INT8_FLAGS = ("asimddp",)
# limits hold at equality: 0.50 - 0.49 must count as a drop of exactly 0.01
FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Verdict:
    decision: str
    reasons: tuple[Reason, ...] = ()
    hints: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    realization: float | None = None

    @property
    def accepted(self) -> bool:
        return self.decision == ACCEPT

    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": [reason.as_dict() for reason in self.reasons],
            "hints": list(self.hints),
            "notes": list(self.notes),
            "realization": self.realization,
        }


@dataclass(frozen=True)
class Evidence:
    """Everything the verdict is decided on (all already measured)."""

    recipe: str
    policy: Policy
    baseline_facts: dict[str, Any]
    variant_facts: dict[str, Any] | None
    speedup: SpeedupEstimate | None = None
    stopped_by: str | None = None
    failure: str | None = None
    failure_kind: str | None = None  # "fell_back" for FELL_BACK
    baseline_quality: dict[str, Any] | None = None
    variant_quality: dict[str, Any] | None = None
    latency_only: bool = False  # random weights: quality is not judged
    baseline_peak_rss_bytes: int | None = None
    variant_peak_rss_bytes: int | None = None
    host_isa: str = "x86_64"
    host_cpu_flags: tuple[str, ...] = ()
    gpu_target: bool = False
    emulated: bool = False
    larger_batch_speedup: SpeedupEstimate | None = None
    larger_batch_size: int | None = None
    pairs_time_s: float | None = None
    is_identity: bool = False  # the identity recipe: never accepted, whatever the noise says
    extra_notes: tuple[str, ...] = field(default=())


def interval_text(estimate: SpeedupEstimate) -> str:
    return f"{estimate.ratio:.2f}x [{estimate.ci_low:.2f}, {estimate.ci_high:.2f}]"


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
    for key, label in (("zipped_bytes", "zipped"), ("params", "in params"), ("macs", "in MACs")):
        base, var = baseline_facts.get(key), variant_facts.get(key)
        if base and var and var < base * SMALLER_BELOW:
            phrases.append(f"{base / var:.1f}x smaller {label}")
    base_nonzero, var_nonzero = baseline_facts.get("nonzero_params"), variant_facts.get("nonzero_params")
    if base_nonzero and var_nonzero is not None and var_nonzero < base_nonzero * SMALLER_BELOW:
        phrases.append(f"{var_nonzero / base_nonzero:.0%} of the baseline's non-zero weights")
    return phrases


def decide(evidence: Evidence) -> Verdict:
    """ACCEPT or REJECT with reasons, hints and realization."""
    if evidence.failure is not None:
        code = "FELL_BACK" if evidence.failure_kind == "fell_back" else "FAILED"
        return Verdict(REJECT, (Reason(code, evidence.failure),))
    reasons: list[Reason] = []
    notes: list[str] = list(evidence.extra_notes)
    speed_ok = _speed_reasons(evidence, reasons)
    _quality_reasons(evidence, reasons, notes)
    _memory_reasons(evidence, reasons)
    hints = _hints(evidence) if not speed_ok else []
    realization = None
    reduction = mac_reduction(evidence.baseline_facts, evidence.variant_facts)
    if reduction and evidence.speedup is not None:
        realization = evidence.speedup.ratio / reduction
    decision = ACCEPT if not reasons else REJECT
    return Verdict(decision, tuple(reasons), tuple(hints), tuple(notes), realization)


def _speed_reasons(evidence: Evidence, reasons: list[Reason]) -> bool:
    """Append the speed reason (at most one); return whether the speed requirement holds."""
    policy, estimate = evidence.policy, evidence.speedup
    if estimate is None:
        reasons.append(Reason("INCONCLUSIVE", "no speedup was measured"))
        return False
    measured = f"{policy.metric} speedup {interval_text(estimate)} at batch {policy.batch_size}"
    if evidence.emulated:
        reasons.append(Reason("INCONCLUSIVE", f"{measured} was timed under emulation, which never decides a verdict"))
        return False
    if evidence.stopped_by == "too_little_data":
        reasons.append(
            Reason(
                "INCONCLUSIVE",
                f"only {estimate.pairs} burst pairs fit in max_pair_duration_s = {policy.max_pair_duration_s:g} s "
                f"(min_pairs = {policy.min_pairs}); {measured} is not enough to decide",
            )
        )
        return False
    required = f"{policy.min_speedup:.2f} required"
    if evidence.is_identity and estimate.ci_low >= policy.min_speedup:
        reasons.append(
            Reason(
                "NO_REAL_SPEEDUP",
                f"identity compresses nothing, so {measured} is noise or a re-export artifact, not a speedup",
            )
        )
        return False
    if estimate.ci_low >= policy.min_speedup:
        return True
    if estimate.ci_high < 1.0:
        reasons.append(
            Reason("SLOWER", f"{measured}: the whole {estimate.confidence:.0%} interval lies below 1.00 ({required})")
        )
    elif estimate.ci_high >= policy.min_speedup:
        took = f" after {evidence.pairs_time_s:.0f} s" if evidence.pairs_time_s is not None else ""
        reasons.append(
            Reason(
                "INCONCLUSIVE",
                f"{measured} still straddles {policy.min_speedup:.2f}{took} ({estimate.pairs} burst pairs); "
                "a longer max_pair_duration_s or a quieter machine may decide it",
            )
        )
    else:
        smaller = size_reductions(evidence.baseline_facts, evidence.variant_facts or {})
        what = ", ".join(smaller) if smaller else "not smaller either (zipped size, params, non-zeros, MACs)"
        reasons.append(Reason("NO_REAL_SPEEDUP", f"{what}; {measured} < {required}"))
    return False


def _quality_reasons(evidence: Evidence, reasons: list[Reason], notes: list[str]) -> None:
    policy, quality, base = evidence.policy, evidence.variant_quality, evidence.baseline_quality
    if not quality:
        notes.append("quality was not measured")
        return
    if quality.get("metric") == "accuracy" and base and base.get("accuracy") is not None:
        drop = base["accuracy"] - quality["accuracy"]
        if drop > policy.max_accuracy_drop + FLOAT_SLACK:
            reasons.append(
                Reason(
                    "ACCURACY_DROP",
                    f"top-1 accuracy {quality['accuracy']:.1%} vs baseline {base['accuracy']:.1%}: a drop of "
                    f"{drop * 100:.1f} pts > {policy.max_accuracy_drop * 100:.1f} allowed",
                )
            )
        return
    if quality.get("metric") == "fidelity":
        if evidence.latency_only:
            notes.append("fidelity not judged: the source has random weights (latency only)")
            return
        if policy.min_fidelity > 0 and quality["top1_agreement"] < policy.min_fidelity - FLOAT_SLACK:
            reasons.append(
                Reason(
                    "FIDELITY_LOW",
                    f"top-1 agreement with the baseline {quality['top1_agreement']:.1%} < "
                    f"{policy.min_fidelity:.1%} required (mean cosine {quality.get('mean_cosine', float('nan')):.4f})",
                )
            )


def _memory_reasons(evidence: Evidence, reasons: list[Reason]) -> None:
    base, var = evidence.baseline_peak_rss_bytes, evidence.variant_peak_rss_bytes
    if not base or var is None:
        return
    ratio = var / base
    if ratio > evidence.policy.max_memory_ratio + FLOAT_SLACK:
        reasons.append(
            Reason(
                "MEMORY_GREW",
                f"peak RSS {var / 2**20:.0f} MiB vs baseline {base / 2**20:.0f} MiB: {ratio:.2f}x > "
                f"{evidence.policy.max_memory_ratio:.2f} allowed",
            )
        )


def _hints(evidence: Evidence) -> list[str]:
    """Why the hardware may not deliver the gain (only given when the speed requirement failed)."""
    hints = []
    base, facts = evidence.baseline_facts, evidence.variant_facts or {}
    reduction = mac_reduction(base, facts)
    params, nonzero = facts.get("params"), facts.get("nonzero_params")
    base_params, base_nonzero = base.get("params"), base.get("nonzero_params")
    if params and nonzero is not None and base_params and base_nonzero:
        zero_share = 1 - nonzero / params
        base_zero_share = 1 - base_nonzero / base_params
        if zero_share - base_zero_share > 0.2 and (reduction is None or reduction < 1 / SMALLER_BELOW):
            hints.append(
                f"{zero_share:.0%} of the weights are zero, but dense kernels multiply the zeros too: the MACs "
                "are unchanged. Structured pruning (whole channels or heads) shrinks the work itself; 2:4 "
                "sparsity needs sparse tensor cores"
            )
    ops = set((facts.get("op_histogram") or {}).keys())
    if ops & INT8_OPS and not evidence.gpu_target:
        if evidence.host_isa == "x86_64" and not set(X86_INT8_FLAGS) & set(evidence.host_cpu_flags):
            hints.append(
                "int8 on an x86 CPU without VNNI or AMX (no avx512_vnni, avx_vnni or amx_int8): int8 dot "
                "products take several instructions each, plus the (de)quantize steps, so int8 is often "
                "slower than float32 here"
            )
        elif evidence.host_isa == "aarch64" and not set(ARM_INT8_FLAGS) & set(evidence.host_cpu_flags):
            hints.append(
                "int8 on an ARM CPU without dot-product instructions (no asimddp): int8 matmuls gain little "
                "over float32"
            )
    alignment = facts.get("alignment") or {}
    if evidence.gpu_target and alignment.get("multiple_of_8") is not None and alignment["multiple_of_8"] < 1.0:
        examples = ", ".join(str(item) for item in (alignment.get("misaligned_examples") or [])[:4])
        hints.append(
            f"only {alignment['multiple_of_8']:.0%} of the layer widths are multiples of 8 "
            f"({examples}): tensor cores want multiples of 8 (fp16) or 16 (int8); try round_to=8"
        )
    larger = evidence.larger_batch_speedup
    if larger is not None and larger.ci_low >= evidence.policy.min_speedup:
        hints.append(
            f"at batch {evidence.larger_batch_size} the speedup is {interval_text(larger)}: the gain appears "
            "only at larger batch sizes"
        )
    return hints
