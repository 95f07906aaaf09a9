"""The words of a verdict: the decision, the reason codes (with the sentence each stands for), and
the verdict itself as it is written into records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.errors import FailureKind, TextEnum


class Decision(TextEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"


class ReasonCode(TextEnum):
    """Why a variant was rejected. The docstring of each member is what `--help` and the docs say."""

    NO_REAL_SPEEDUP = "NO_REAL_SPEEDUP"
    SLOWER = "SLOWER"
    INCONCLUSIVE = "INCONCLUSIVE"
    ACCURACY_DROP = "ACCURACY_DROP"
    FIDELITY_LOW = "FIDELITY_LOW"
    MEMORY_GREW = "MEMORY_GREW"
    FAILED = "FAILED"
    FELL_BACK = "FELL_BACK"
    MEMORY_EXCEEDED = "MEMORY_EXCEEDED"

    @property
    def meaning(self) -> str:
        return REASON_MEANINGS[self]

    @classmethod
    def for_failure(cls, kind: FailureKind | None) -> ReasonCode:
        """FELL_BACK for a backend that ran something other than asked, MEMORY_EXCEEDED for a model that
        did not fit the profile's memory cap; FAILED for anything else."""
        if kind == FailureKind.FELL_BACK:
            return cls.FELL_BACK
        if kind == FailureKind.MEMORY_EXCEEDED:
            return cls.MEMORY_EXCEEDED
        return cls.FAILED


REASON_MEANINGS = {
    ReasonCode.NO_REAL_SPEEDUP: "the interval's upper end is below min_speedup (but not below 1): smaller, not "
    "faster; inside ±3% of 1.00 it says the same speed",
    ReasonCode.SLOWER: "the whole interval lies below 1.00",
    ReasonCode.INCONCLUSIVE: "out of time with the interval straddling min_speedup (the message gives the smallest "
    "speedup the run could detect and the contention), too few pairs, the host away from its usual speed for the "
    "baseline the whole run, or emulated timings",
    ReasonCode.ACCURACY_DROP: "labelled data: top-1 accuracy, or the --metric-fn's score, fell by more than "
    "max_accuracy_drop",
    ReasonCode.FIDELITY_LOW: "no labels: closeness to the baseline's outputs is below the policy's threshold for the "
    "measure that judges them (top-1 agreement and min_fidelity for class scores, min_cosine or min_snr_db "
    "otherwise)",
    ReasonCode.MEMORY_GREW: "peak RSS grew beyond max_memory_ratio of the baseline's, by more than two workers of "
    "the same file differ (10%); never for the identity control",
    ReasonCode.FAILED: "the variant could not be built, or a worker failed, crashed or hung",
    ReasonCode.FELL_BACK: "the backend ran on something other than what was asked",
    ReasonCode.MEMORY_EXCEEDED: "a worker's resident memory passed the profile's memory cap (resources.memory_gb): "
    "the model does not fit that target; the message gives the peak",
}
# the reason codes that say the speed requirement was not shown (at most one per verdict)
SPEED_CODES = frozenset({ReasonCode.NO_REAL_SPEEDUP, ReasonCode.SLOWER, ReasonCode.INCONCLUSIVE})
# the reason codes that mean nothing was measured: a failed run, not a result
FAILURE_CODES = frozenset({ReasonCode.FAILED, ReasonCode.FELL_BACK, ReasonCode.MEMORY_EXCEEDED})


# the reason codes about quality and memory: the speed requirement may still have held
QUALITY_CODES = frozenset({ReasonCode.ACCURACY_DROP, ReasonCode.FIDELITY_LOW, ReasonCode.MEMORY_GREW})


class NextStep(TextEnum):
    """What to do with a variant, in the words of before/after compression reports."""

    KEEP = "keep"  # accepted: ship it
    TUNE = "tune"  # the speed requirement held, quality or memory did not: fine-tune more, distil, prune less
    REJECT = "reject"  # no real speedup on this hardware (or it does not fit): no fine-tuning fixes that
    REMEASURE = "remeasure"  # the interval did not decide, or nothing was measured: fix the run, measure again
    FIX = "fix"  # the variant (or its baseline) could not be built: measuring again cannot help

    @property
    def advice(self) -> str:
        return NEXT_STEP_ADVICE[self]


NEXT_STEP_ADVICE = {
    NextStep.KEEP: "keep it: faster on this target with quality and memory held",
    NextStep.TUNE: "tune it: the speedup is real here, the quality or memory is not yet (more fine-tuning, "
    "distillation, a milder ratio)",
    NextStep.REJECT: "reject it: no real speedup on this hardware, which no fine-tuning fixes (the hints say what "
    "might)",
    NextStep.REMEASURE: "measure again: the run did not decide (a longer budget, a quieter host) or could not "
    "measure (the message says why)",
    NextStep.FIX: "fix the build first: the variant could not be made (the message says why); measuring again "
    "cannot help",
}


def next_step_for(decision: Decision, codes: list[ReasonCode]) -> NextStep:
    """keep on ACCEPT; reject when the speed requirement failed on its own evidence (or the model
    does not fit); tune when only quality or memory failed; remeasure when nothing decided."""
    if decision == Decision.ACCEPT:
        return NextStep.KEEP
    found = set(codes)
    if found & {ReasonCode.NO_REAL_SPEEDUP, ReasonCode.SLOWER, ReasonCode.MEMORY_EXCEEDED}:
        return NextStep.REJECT
    if found & {ReasonCode.INCONCLUSIVE, ReasonCode.FAILED, ReasonCode.FELL_BACK}:
        return NextStep.REMEASURE
    if found & QUALITY_CODES:
        return NextStep.TUNE
    return NextStep.REMEASURE


def reason_codes_help() -> str:
    """Every reason code with its meaning, for --help."""
    return "; ".join(f"{code}: {code.meaning}" for code in ReasonCode)


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": str(self.code), "message": self.message}


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: tuple[Reason, ...] = ()
    hints: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    realization: float | None = None
    not_built: bool = False  # the variant or its baseline could not be built: the next step is to fix that

    @property
    def accepted(self) -> bool:
        return self.decision == Decision.ACCEPT

    def codes(self) -> list[ReasonCode]:
        return [reason.code for reason in self.reasons]

    @property
    def next_step(self) -> NextStep:
        return NextStep.FIX if self.not_built else next_step_for(self.decision, self.codes())

    @classmethod
    def failed(cls, message: str, kind: FailureKind | None = None, not_built: bool = False) -> Verdict:
        """The verdict on a variant that produced no measurement (`not_built`: it could not be made)."""
        return cls(Decision.REJECT, (Reason(ReasonCode.for_failure(kind), message),), not_built=not_built)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": str(self.decision),
            "reasons": [reason.as_dict() for reason in self.reasons],
            "hints": list(self.hints),
            "notes": list(self.notes),
            "realization": self.realization,
            "next_step": str(self.next_step),
        }
