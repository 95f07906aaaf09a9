"""The decoder verify job (`speedproof verify` on a decoder source): build the baseline and each recipe's
variant as ONNX Runtime GenAI folders, add the candidate folders, then A/B each variant against the baseline
phase by phase — prefill at each prompt length, time to first token, time per decoded token — with the same
live workers, alternating bursts and block interval as every other A/B (`harness.measure.ab_pair`), and give
each an ACCEPT/REJECT verdict on the phase the policy's metric names (decode_ms_per_token by default).

The phases the policy does not judge are measured and reported with their intervals too, on a shorter budget
each (SIDE_PHASE_BUDGET_S): a variant faster per token but slower on the prompt is a finding the record says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.decoders.build import DecoderBuildPlan, build_decoders, folder_facts, plan_for
from harness.decoders.quality import measure_quality, quality_text
from harness.decoders.scenario import DecoderScenario, Phase, prompt_token_ids
from harness.decoders.sources import DecoderSource, genai_folder_source, prompt_fits, resolve_decoder_source
from harness.measure.ab_pair import PairOutcome, StopRule, run_ab_pair
from harness.measure.schedule import DECODER_METRICS
from harness.progress import ProgressCallback, no_progress
from harness.recipes.grammar import parse_recipe_list
from harness.records.cells import CellKey, CellStatus, VerdictCell
from harness.records.provenance import new_run_id
from harness.records.run_record import Record, RecordHeader, RunRecord
from harness.records.store import check_writable_folder, kept_run_folder, write_record
from harness.verdict.policy import Policy, target_policy
from harness.verdict.reasons import SPEED_CODES, Reason, Verdict
from harness.verdict.rules import Evidence, decide, interval_text
from harness.verdict.verify import require_variants
from targets.errors import SpeedproofError, UsageError
from targets.profiles import ResolvedProfile, load_target
from targets.runners.base import Runner, WorkerRequest
from targets.runners.choose import runner_for
from targets.runners.compatibility import default_target_name, resolve_target
from targets.runners.protocol import MeasurementProtocol

DECODER_BACKEND = "onnxruntime-genai"
# the phases the policy does not judge get this much A/B time each (or the policy's, if shorter): enough for an
# interval to report, not for a verdict
SIDE_PHASE_BUDGET_S = 10.0
# a decoder's iteration is a whole phase (a long prompt's prefill takes seconds): one untimed iteration after
# the first warms it up, and its workers may take this long to load a large model
DECODER_PROTOCOL = MeasurementProtocol(
    warmup_min_iterations=1, warmup_min_duration_s=0.0, min_iterations=1, min_duration_s=0.0, max_duration_s=60.0
)
DECODER_LOAD_TIMEOUT_S = 300.0
# the A/B bursts of a phase last the policy's burst_duration_s and hold at least one iteration; the
# shared-worker layout of sub-ms models and its minimum span do not apply (a phase of even a tiny decoder is a
# whole generation step, and one process per side holds it)
TOKEN_SEED = 0


@dataclass(frozen=True)
class DecoderVerifyRequest:
    model: str
    recipes: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()  # FOLDER[=LABEL]
    target: str | None = None
    backend: str | None = None
    threads: int | None = None
    policy_file: Path | None = None
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    scenario: DecoderScenario = field(default_factory=DecoderScenario)
    data: Path | None = None  # a text file: perplexity on it (pydoc-lm: its held-out topics without one)
    out_dir: Path = Path("results")


@dataclass
class DecoderVariant:
    """One side of the comparisons: a recipe's build or a candidate folder."""

    label: str
    plan: DecoderBuildPlan | None  # None: a candidate
    folder: Path | None = None
    facts: dict[str, Any] | None = None
    error: str | None = None
    quality: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.folder is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.label,
            "candidate": self.plan is None,
            "build": None if self.plan is None else self.plan.as_dict(),
            "artifact": self.facts,
            "error": self.error,
            "quality": self.quality,
        }


def run_decoder_verify(request: DecoderVerifyRequest, progress: ProgressCallback = no_progress) -> tuple[Record, Path]:
    """Verify every recipe and candidate of the request on the decoder scenario; write the record."""
    check_writable_folder(request.out_dir)
    require_variants(request.recipes, request.candidates)
    scenario = request.scenario
    progress(f"decoder {request.model}: reading it")
    source = resolve_decoder_source(request.model, progress)
    recipes = parse_recipe_list(request.recipes)
    plans = [plan_for(recipe, source) for recipe in recipes]  # every recipe checked before anything is built
    candidates = [_candidate(text, source) for text in request.candidates]
    prompt_fits(source, scenario.longest(), "--prompt-tokens/--decode-tokens")
    for label, candidate in candidates:
        prompt_fits(candidate, scenario.longest(), f"--candidate {label}")
    prompt_ids = prompt_token_ids(scenario, source.folder)
    text = quality_text(source, request.data)
    runner = runner_for(None, None, request.target, progress)
    resolved = decoder_target(request.target, request.backend, request.threads, runner)
    policy = target_policy(resolved.profile, request.policy_file, decoder=True, cli_overrides=request.policy_overrides)
    run_id = new_run_id()
    work_dir = kept_run_folder(request.out_dir, f"verify-{source.name}", run_id)
    variants = _build_all(source, plans, candidates, work_dir / "artifacts", progress)
    progress(f"quality of {len(variants)} folders on {text.what}, from their ONNX decoders")
    qualities = measure_quality([variant.folder if variant.ok else None for variant in variants], text, source.name)
    for variant, quality in zip(variants, qualities, strict=True):
        variant.quality = quality
    run = DecoderRun(source, scenario, prompt_ids, resolved, policy, runner, progress)
    cells = verify_decoder_variants(run, variants)
    record = RunRecord(
        header=RecordHeader.new("verify", runner.fingerprint(), resolved, run_id),
        policy=policy.as_dict(),
        protocol=DECODER_PROTOCOL.as_dict(),
        model_source={"spec": request.model, **source.as_dict()},
        artifact_dir=str((work_dir / "artifacts").resolve()),
        variants=[variant.as_dict() for variant in variants],
        cells=tuple(cells),
        sections={
            "decoder": {
                "scenario": scenario.as_dict(),
                "quality": text.as_dict(),
                **({"trained": source.facts} if "held_out_perplexity" in source.facts else {}),
                "phases": [phase.key for phase in scenario.phases()],
                "judged": DECODER_METRICS[policy.schedule.metric],
                "backend": DECODER_BACKEND,
            }
        },
    ).as_dict()
    path = write_record(record, request.out_dir, label=f"verify-{source.name}")
    return record, path


def decoder_target(target: str | None, backend: str | None, threads: int | None, runner: Runner) -> ResolvedProfile:
    """The target, on this machine's CPU, running the decoder backend."""
    if backend not in (None, DECODER_BACKEND):
        raise UsageError(
            f"--backend {backend}: a decoder is measured with {DECODER_BACKEND} (ONNX Runtime GenAI); leave "
            "--backend out"
        )
    profile = load_target(target or default_target_name(runner.fingerprint(), runner.can_run))
    if DECODER_BACKEND not in [backend.name for backend in profile.backends] or profile.remote is not None:
        raise UsageError(
            f"target {profile.name} ({profile.source}) has no {DECODER_BACKEND} backend: speedproof measures decoders "
            "on this machine's CPU so far (x86-cpu); GPU, edge and remote targets are not supported for decoders yet"
        )
    return resolve_target(target, threads, runner, DECODER_BACKEND)


def _candidate(text: str, source: DecoderSource) -> tuple[str, DecoderSource]:
    path_text, _, label = text.partition("=")
    path = Path(path_text)
    if not (path / "genai_config.json").is_file():
        raise UsageError(
            f"--candidate {text}: {path} is not an ONNX Runtime GenAI folder (no genai_config.json); a decoder "
            "candidate is a folder the model builder (or Olive) made"
        )
    candidate = genai_folder_source(path, name=label or None)
    if candidate.vocab_size != source.vocab_size:
        raise UsageError(
            f"--candidate {text}: its vocabulary has {candidate.vocab_size} tokens, {source.name}'s "
            f"{source.vocab_size}; a candidate must take the same token ids as its baseline"
        )
    return label or path.resolve().name, candidate


def _build_all(
    source: DecoderSource,
    plans: Sequence[DecoderBuildPlan],
    candidates: Sequence[tuple[str, DecoderSource]],
    artifacts: Path,
    progress: ProgressCallback,
) -> list[DecoderVariant]:
    """Every recipe built (a failure recorded, the rest going on), then the candidates as they are."""
    artifacts.mkdir(parents=True)
    destinations = [artifacts / f"{index:02d}-{folder_name(plan.recipe)}" for index, plan in enumerate(plans)]
    progress(
        f"building {source.name} [{', '.join(plan.recipe for plan in plans)}] with ONNX Runtime GenAI's model builder"
    )
    variants: list[DecoderVariant] = []
    for plan, outcome in zip(plans, build_decoders(plans, source, destinations), strict=True):
        variant = DecoderVariant(plan.recipe, plan)
        if isinstance(outcome, SpeedproofError):
            variant.error = str(outcome)
            progress(f"  {plan.recipe} failed to build: {outcome}")
        else:
            variant.facts, variant.folder = outcome, Path(outcome["path"])
            progress(f"  {plan.recipe}: built in {outcome['build_s']:.1f} s, {outcome['bytes'] / 1e6:.1f} MB")
        variants.append(variant)
    for label, candidate in candidates:
        variants.append(
            DecoderVariant(
                label,
                None,
                candidate.folder,
                folder_facts(candidate.folder, DecoderBuildPlan(label), candidate.layers, 0.0),
            )
        )
    return variants


def folder_name(text: str) -> str:
    """A recipe as a folder name: letters, digits and -_.= kept, the rest _, at most 60 characters."""
    return "".join(char if char.isalnum() or char in "-_.=" else "_" for char in text)[:60]


@dataclass(frozen=True)
class DecoderRun:
    """What every phase pair of one decoder verification shares."""

    source: DecoderSource
    scenario: DecoderScenario
    prompt_ids: list[int] | None
    resolved: ResolvedProfile
    policy: Policy
    runner: Runner
    progress: ProgressCallback = no_progress


def verify_decoder_variants(run: DecoderRun, variants: list[DecoderVariant]) -> list[VerdictCell]:
    """The baseline's reference cell, then each variant's verdict cell."""
    source, baseline = run.source, variants[0]
    key = CellKey(source.name, baseline.label, DECODER_BACKEND, 1)
    cells = [
        VerdictCell(
            key,
            "cpu" if baseline.ok else None,
            CellStatus.OK if baseline.ok else CellStatus.FAILED,
            error=baseline.error,
            artifact=baseline.facts,
            quality=baseline.quality,
            reference=True,
        )
    ]
    cells.extend(verify_decoder_variant(run, baseline, variant) for variant in variants[1:])
    return cells


def phase_request(
    folder: Path, phase: Phase, scenario: DecoderScenario, prompt_ids: list[int] | None, resolved: ResolvedProfile
) -> WorkerRequest:
    options: dict[str, Any] = {
        "phase": phase.kind,
        "prompt_tokens": phase.prompt_tokens,
        "decode_tokens": scenario.decode_tokens,
        "seed": TOKEN_SEED,
    }
    if prompt_ids is not None:
        options["prompt_ids"] = prompt_ids[: phase.prompt_tokens]
    return WorkerRequest(
        artifact_path=str(folder),
        backend=DECODER_BACKEND,
        options=options,
        threads=resolved.threads,
        cpu_affinity=tuple(resolved.cpu_affinity),
        inputs=(),
        batch_size=1,
        protocol=DECODER_PROTOCOL,
        memory_cap_bytes=resolved.profile.resources.memory_bytes,
    )


def verify_decoder_variant(
    run: DecoderRun,
    baseline: DecoderVariant,
    variant: DecoderVariant,
    judged_only: bool = False,
    max_pair_s: float | None = None,
) -> VerdictCell:
    """Each phase's A/B pair, and the verdict on the judged phase; a failure is the cell's REJECT. `judged_only`:
    the judged phase(s) alone (a search's trial); `max_pair_s`: no pair runs longer (a search's budget)."""
    source, scenario, policy, progress = run.source, run.scenario, run.policy, run.progress
    key = CellKey(source.name, variant.label, DECODER_BACKEND, 1)
    failure = None
    if not baseline.ok:
        failure = f"the baseline could not be built: {baseline.error}"
    elif not variant.ok:
        failure = str(variant.error)
    if failure is not None:
        return replace(VerdictCell.failed(key, failure), artifact=variant.facts, quality=variant.quality)
    assert baseline.folder is not None and variant.folder is not None
    judged_kind = DECODER_METRICS[policy.schedule.metric]
    stop_rule = StopRule(policy.rules.min_speedup, policy.rules.confidence)
    outcomes: dict[str, PairOutcome] = {}
    phases = [phase for phase in scenario.phases() if phase.kind == judged_kind or not judged_only]
    for phase in sorted(phases, key=lambda item: item.kind != judged_kind):  # the judged phase first
        schedule = replace(
            policy.schedule,
            metric=phase.metric,
            fresh_workers_below_ms=0.0,
            min_span_s=0.0,
        )
        if phase.kind != judged_kind:
            schedule = replace(schedule, max_pair_duration_s=min(schedule.max_pair_duration_s, SIDE_PHASE_BUDGET_S))
        if max_pair_s is not None:  # never below what min_pairs needs
            least = schedule.burst_duration_s * 2 * schedule.min_pairs
            schedule = replace(schedule, max_pair_duration_s=min(schedule.max_pair_duration_s, max(max_pair_s, least)))
        progress(f"A/B {source.name}: baseline vs {variant.label}, {phase.key} ({phase.unit})")
        outcome = run_ab_pair(
            phase_request(baseline.folder, phase, scenario, run.prompt_ids, run.resolved),
            phase_request(variant.folder, phase, scenario, run.prompt_ids, run.resolved),
            schedule,
            stop_rule,
            run.runner,
            DECODER_LOAD_TIMEOUT_S,
            progress=progress,
        )
        if outcome.speedup is not None:
            progress(f"  {phase.key}: {interval_text(outcome.speedup)} after {len(outcome.bursts)} pairs")
        outcomes[phase.key] = outcome
    return decoder_verdict_cell(key, source, baseline, variant, phases, outcomes, policy, judged_kind)


def decoder_verdict_cell(
    key: CellKey,
    source: DecoderSource,
    baseline: DecoderVariant,
    variant: DecoderVariant,
    phases: list[Phase],
    outcomes: dict[str, PairOutcome],
    policy: Policy,
    judged_kind: str,
) -> VerdictCell:
    """The verdict on the judged phase(s) (all of them must pay), the other phases as findings."""
    judged = [phase for phase in phases if phase.kind == judged_kind]
    verdicts = [
        (phase, _phase_verdict(phase, outcomes[phase.key], baseline, variant, source, policy)) for phase in judged
    ]
    rejected = [(phase, verdict) for phase, verdict in verdicts if not verdict.accepted]
    phase, verdict = rejected[0] if rejected else min(verdicts, key=lambda item: _ci_low(outcomes[item[0].key]))
    notes = list(verdict.notes) + _phase_findings(variant.label, phases, outcomes, judged_kind, policy)
    reasons = [reason for _, other in rejected for reason in other.reasons]
    verdict = replace(
        verdict, reasons=tuple(dict.fromkeys(reasons)) or verdict.reasons, notes=tuple(dict.fromkeys(notes))
    )
    main = outcomes[phase.key]
    prefills = [item for item in phases if item.kind == "prefill"]
    memory_phase = max(prefills, key=lambda item: item.prompt_tokens) if prefills else phase
    memory = outcomes[memory_phase.key].variant.memory
    return VerdictCell(
        key,
        "cpu",
        CellStatus.OK if all(outcome.status == "ok" for outcome in outcomes.values()) else CellStatus.FAILED,
        error=next((outcome.error for outcome in outcomes.values() if outcome.error), None),
        artifact=variant.facts,
        quality=variant.quality,
        speedup=main.speedup.as_dict() if main.speedup is not None else None,
        verdict=verdict,
        ab=main.as_dict(),
        latency_ms=main.variant.latency_ms,
        memory=memory,
        phases={item.key: _phase_entry(item, outcomes[item.key]) for item in phases},
    )


def _ci_low(outcome: PairOutcome) -> float:
    return outcome.speedup.ci_low if outcome.speedup is not None else float("-inf")


def _phase_verdict(
    phase: Phase,
    outcome: PairOutcome,
    baseline: DecoderVariant,
    variant: DecoderVariant,
    source: DecoderSource,
    policy: Policy,
) -> Verdict:
    evidence = decoder_evidence(baseline, variant, source, policy, outcome)
    verdict = decide(evidence)
    return replace(  # a speed reason says its phase; quality and memory are the folder's own
        verdict,
        reasons=tuple(
            Reason(reason.code, f"{phase.key}: {reason.message}") if reason.code in SPEED_CODES else reason
            for reason in verdict.reasons
        ),
    )


def decoder_evidence(
    baseline: DecoderVariant,
    variant: DecoderVariant,
    source: DecoderSource,
    policy: Policy,
    outcome: PairOutcome | None = None,
) -> Evidence:
    """What the rules know of a decoder variant: its facts and quality, and, once a phase's pair ran
    (`outcome`), that pair's speedup, stop, memory and host state."""
    timed: dict[str, Any] = {}
    if outcome is not None:
        timed = {
            "speedup": outcome.speedup,
            "stopped_by": outcome.stopped_by,
            "failure": None if outcome.status == "ok" else str(outcome.error),
            "failure_kind": outcome.error_kind,
            "baseline_peak_rss_bytes": (outcome.baseline.memory or {}).get("peak_rss_bytes"),
            "variant_peak_rss_bytes": (outcome.variant.memory or {}).get("peak_rss_bytes"),
            "pairs_time_s": outcome.duration_s,
            "contended_pairs": outcome.contended_pairs(),
            "host_state": outcome.host_state,
        }
    return Evidence(
        recipe=variant.label,
        policy=policy,
        baseline_facts=baseline.facts or {},
        variant_facts=variant.facts,
        baseline_quality=baseline.quality,
        variant_quality=variant.quality,
        latency_only=source.latency_only,
        backend=DECODER_BACKEND,
        is_identity=variant.plan is not None and variant.plan.identity,
        **timed,
    )


def _phase_findings(
    label: str, phases: list[Phase], outcomes: dict[str, PairOutcome], judged_kind: str, policy: Policy
) -> list[str]:
    """A line per phase the policy does not judge: its speedup, and whether it is clearly slower or faster."""
    lines = []
    for phase in phases:
        if phase.kind == judged_kind:
            continue
        outcome = outcomes[phase.key]
        estimate = outcome.speedup
        if estimate is None:
            lines.append(f"{label} {phase.key}: not measured ({outcome.error or 'no pairs'})")
            continue
        # a side phase's short budget may leave too few blocks for the policy's level: then it only leans
        sure = estimate.coverage >= policy.rules.confidence
        short = f"too few blocks in its budget for {policy.rules.confidence:.0%}; not judged"
        if estimate.ci_high < 1.0:
            finding = (
                f"SLOWER on this phase (the whole interval below 1.00), though the policy judges {judged_kind}"
                if sure
                else f"leans slower on this phase ({short})"
            )
        elif estimate.ci_low >= policy.rules.min_speedup:
            finding = "pays on this phase too" if sure else f"leans faster on this phase ({short})"
        elif estimate.same_speed():
            finding = "the same speed on this phase"
        else:
            finding = f"undecided on this phase in its {outcome.duration_s:.0f} s (not judged)"
        level = f"{estimate.coverage:.0%} interval" if estimate.coverage == estimate.coverage else "interval"
        lines.append(
            f"{label} {phase.key}: {interval_text(estimate)} ({level} over {estimate.units} blocks): {finding}"
        )
    return lines


def _phase_entry(phase: Phase, outcome: PairOutcome) -> dict[str, Any]:
    base, var = outcome.baseline.latency_ms or {}, outcome.variant.latency_ms or {}
    return {
        "kind": phase.kind,
        "prompt_tokens": phase.prompt_tokens,
        "unit": phase.unit,
        "status": outcome.status,
        "error": outcome.error,
        "speedup": outcome.speedup.as_dict() if outcome.speedup is not None else None,
        "baseline_ms": base.get("p50"),
        "variant_ms": var.get("p50"),
        # decode: tokens per second of one sequence (batch 1), from the median time per token
        **(
            {
                "baseline_tokens_per_s": round(1000.0 / base["p50"], 2) if base.get("p50") else None,
                "variant_tokens_per_s": round(1000.0 / var["p50"], 2) if var.get("p50") else None,
            }
            if phase.kind == "decode"
            else {}
        ),
        "pairs": len(outcome.bursts),
        "stopped_by": None if outcome.stopped_by is None else str(outcome.stopped_by),
        "duration_s": round(outcome.duration_s, 2),
        "baseline_memory": outcome.baseline.memory,
        "variant_memory": outcome.variant.memory,
        "bursts": outcome.bursts,
    }
