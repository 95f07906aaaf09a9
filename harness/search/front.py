"""The trials of a search and what is read from them: each trial's outcome (timed, cut by quality,
failed), the quality score a trial is ranked by, the Pareto front of speedup (the interval's lower
end) against quality, and the best accepted point."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from harness.verdict.rules import judged_measure

TRIAL_STATES = ("timed", "cut_by_quality", "failed", "interrupted")


def quality_score(quality: dict[str, Any] | None, rules: Any) -> float | None:
    """The number a trial's quality is ranked by: top-1 accuracy on labelled data, the task metric's
    score, else the fidelity measure that judges this output (top-1 agreement, cosine, SNR)."""
    if not quality:
        return None
    metric = quality.get("metric")
    if metric == "perplexity":  # a decoder's: lower is better, so the score is its negative
        value = _number(quality.get("perplexity"))
        return None if value is None else -value
    if metric == "accuracy":
        return _number(quality.get("accuracy"))
    if metric == "task":
        return _number(quality.get("score"))
    measure, _ = judged_measure(quality, rules)
    return _number(
        {"top1": quality.get("top1_agreement"), "cosine": quality.get("mean_cosine"), "snr_db": quality.get("snr_db")}[
            measure
        ]
    )


def quality_excess(quality: dict[str, Any] | None, baseline: dict[str, Any] | None, rules: Any) -> float:
    """How far a point's quality lies past the policy's limit (optuna's constraint: feasible at <= 0):
    the accuracy or score drop over max_accuracy_drop, else the fidelity measure's shortfall from its
    threshold (SNR as a share of min_snr_db)."""
    score, base = quality_score(quality, rules), quality_score(baseline, rules)
    if score is None or not quality:
        return 0.0
    if quality.get("metric") == "perplexity":  # the relative growth over max_perplexity_increase
        return score / base - 1.0 - rules.max_perplexity_increase if base else 0.0  # both scores negative
    if quality.get("metric") in ("accuracy", "task"):
        return (base - score) - rules.max_accuracy_drop if base is not None else 0.0
    measure, _ = judged_measure(quality, rules)
    if measure == "top1":
        return rules.min_fidelity - score if rules.min_fidelity > 0 else 0.0
    if measure == "cosine":
        return rules.min_cosine - score if rules.min_fidelity > 0 else 0.0
    return (rules.min_snr_db - score) / max(rules.min_snr_db, 1.0) if rules.min_fidelity > 0 else 0.0


def quality_limit_text(baseline: dict[str, Any] | None, trials: list[dict[str, Any] | None], rules: Any) -> str:
    """The quality limit a search applies, in words: the accuracy or score drop when the baseline has
    one, else the fidelity measure that judges its outputs (the first measured point says which)."""
    if (baseline or {}).get("metric") in ("accuracy", "task"):
        return f"max_accuracy_drop {rules.max_accuracy_drop:g}"
    if (baseline or {}).get("metric") == "perplexity":
        return f"perplexity at most {rules.max_perplexity_increase:+.0%} over the baseline's (max_perplexity_increase)"
    measured = next((quality for quality in trials if quality and quality.get("metric") == "fidelity"), None)
    if measured is None or rules.min_fidelity <= 0:
        return (
            "none (no labelled data, and no point measured yet)" if rules.min_fidelity > 0 else "none (min_fidelity 0)"
        )
    measure, _ = judged_measure(measured, rules)
    return {
        "top1": f"top-1 agreement with the baseline >= {rules.min_fidelity:g}",
        "cosine": f"mean cosine to the baseline >= {rules.min_cosine:g}",
    }.get(measure, f"SNR against the baseline >= {rules.min_snr_db:g} dB")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class SearchTrial:
    """One point of the search and what became of it."""

    number: int
    recipe: str
    family: str
    state: str  # of TRIAL_STATES
    duration_s: float
    quality: dict[str, Any] | None = None
    quality_score: float | None = None
    baseline_quality_score: float | None = None
    quality_excess: float = 0.0  # past the quality limit (> 0: the point fails it)
    cut_reason: str | None = None  # cut_by_quality: the quality rule it failed
    error: str | None = None  # failed: why
    cell: dict[str, Any] | None = None  # timed: the verdict cell, as verify writes it
    artifact_path: str | None = None
    sha256: str | None = None
    repeat_of: int | None = None  # a point measured before, not measured again

    @property
    def measured(self) -> bool:
        """It ran to its outcome (not cut off by an interrupt or a crash)."""
        return self.state != "interrupted"

    @property
    def counts(self) -> bool:
        """A point measured in this trial: what --trials and the budget's estimates count."""
        return self.measured and self.repeat_of is None

    def speedup(self) -> dict[str, Any] | None:
        return (self.cell or {}).get("speedup")

    def speedup_low(self) -> float | None:
        speedup = self.speedup()
        return float(speedup["ci_low"]) if speedup and speedup.get("ci_low") is not None else None

    def decision(self) -> str | None:
        return ((self.cell or {}).get("verdict") or {}).get("decision")

    def reasons(self) -> list[str]:
        return [reason["code"] for reason in ((self.cell or {}).get("verdict") or {}).get("reasons", [])]

    def accepted(self) -> bool:
        return self.state == "timed" and self.decision() == "ACCEPT"

    def speedup_text(self) -> str:
        speedup = self.speedup()
        if not speedup or speedup.get("ratio") is None:
            return "-"
        return f"{speedup['ratio']:.2f}x [{speedup['ci_low']:.2f}, {speedup['ci_high']:.2f}]"

    def quality_drop(self) -> float | None:
        if self.quality_score is None or self.baseline_quality_score is None:
            return None
        return self.baseline_quality_score - self.quality_score

    def cut(self, reasons: Any, duration_s: float) -> SearchTrial:
        """This trial cut by quality before timing, for `reasons` (the quality rule's), after `duration_s`."""
        return replace(
            self,
            state="cut_by_quality",
            cut_reason="; ".join(reason.message for reason in reasons),
            duration_s=duration_s,
        )

    def constraints(self) -> dict[str, float]:
        """optuna's constraints (feasible at <= 0): the quality past the policy's limit, and, for a
        timed point, memory growth past the limit (1 when the verdict says MEMORY_GREW)."""
        return {"quality": self.quality_excess, "memory": 1.0 if "MEMORY_GREW" in self.reasons() else 0.0}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchTrial:
        names = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


def pareto_front(trials: list[SearchTrial]) -> list[SearchTrial]:
    """The timed trials that no other timed trial beats on both the speedup interval's lower end and
    the quality (each recipe once), fastest first."""
    points = {}
    for trial in trials:
        low = trial.speedup_low()
        if trial.state == "timed" and trial.repeat_of is None and low is not None and trial.recipe not in points:
            points[trial.recipe] = (trial, low, trial.quality_score if trial.quality_score is not None else 0.0)
    front = [
        trial
        for trial, low, quality in points.values()
        if not any(
            other_low >= low and other_quality >= quality and (other_low, other_quality) != (low, quality)
            for _, other_low, other_quality in points.values()
        )
    ]
    return sorted(front, key=lambda trial: -(trial.speedup_low() or 0.0))


def best_accepted(trials: list[SearchTrial]) -> SearchTrial | None:
    """The accepted trial with the highest speedup lower end (then the higher quality)."""
    accepted = [trial for trial in trials if trial.accepted() and trial.repeat_of is None]
    if not accepted:
        return None
    return max(accepted, key=lambda trial: (trial.speedup_low() or 0.0, trial.quality_score or 0.0))


def quality_text(trial: SearchTrial) -> str:
    """`top-1 97.8% (-1.4 pts)`, `cosine 0.9981`, `ppl 59.90 (+0.9%)`, or `-`."""
    score = trial.quality_score
    if score is None:
        return "-"
    metric = (trial.quality or {}).get("metric")
    drop = trial.quality_drop()
    if metric == "perplexity":
        base = trial.baseline_quality_score
        return f"ppl {-score:.2f}" + (f" ({score / base - 1:+.1%})" if base else "")
    if metric == "accuracy":
        return f"top-1 {score:.1%}" + (f" ({_signed(-drop * 100, '.1f')} pts)" if drop is not None else "")
    name = "score" if metric == "task" else "fidelity"
    return f"{name} {score:.4g}" + (f" ({_signed(-drop, '.3g')})" if drop is not None else "")


def _signed(value: float, spec: str) -> str:
    """`+0.3`, `-1.4`, and `0.0` rather than `-0.0` for a change that rounds to nothing."""
    text = format(value, "+" + spec)
    return text[1:] if float(text) == 0 else text


def trial_line(trial: SearchTrial) -> str:
    """What became of a trial, in one line (progress and notes)."""
    quality = quality_text(trial)
    if trial.state == "cut_by_quality":
        return f"{quality}: cut by quality, not timed"
    if trial.state == "failed":
        return f"failed: {trial.error}"
    if trial.state == "interrupted":
        return "interrupted before it was told"
    decision = trial.decision() or "-"
    codes = " ".join(trial.reasons())
    return f"{quality} -> {trial.speedup_text()} {decision}{' ' + codes if codes else ''}"


def outcome_summary(trials: list[SearchTrial]) -> dict[str, Any]:
    """The record's view of a search's trials: each trial, the front and the best accepted point (by number),
    the counts of each outcome and of repeats."""
    best = best_accepted(trials)
    return {
        "trials": [trial.as_dict() for trial in trials],
        "front": [trial.number for trial in pareto_front(trials)],
        "best": best.as_dict() if best else None,
        "counts": {
            key: sum(1 for trial in trials if trial.state == key and trial.repeat_of is None) for key in TRIAL_STATES
        },
        "repeats": sum(1 for trial in trials if trial.repeat_of is not None),
    }
