"""The verify job: build the variants, compare each against the baseline in a same-session A/B run,
and give each an ACCEPT/REJECT verdict under the policy. The gate and the pruning sweep verify
through `verify_prepared` too.

A cell is (variant, backend) at the schedule's batch size. The baseline's cell is the reference
and has no verdict; a variant that failed to build, or whose pair failed, is REJECTED with FAILED
(or FELL_BACK) while the others still run.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.measure.ab_pair import PairOutcome, StopRule, ab_pair_steps, run_ab_pairs_in_turn
from harness.measure.host_state import LevelHistory
from harness.measure.schedule import ABSchedule
from harness.measure.speedup import SpeedupEstimate
from harness.models.sources import source_label
from harness.progress import ProgressCallback, no_progress
from harness.recipes.grammar import parse_recipe_list
from harness.records.cells import CellKey, CellStatus, VerdictCell
from harness.records.provenance import new_run_id
from harness.records.run_record import Record, RecordHeader, RunRecord
from harness.records.store import check_writable_folder, kept_run_folder, write_record
from harness.variants.builder import BuiltVariant
from harness.variants.preparation import PreparedVariants, model_source_entry, prepare_variants
from harness.verdict.batch_curve import BatchPoint, curve_text
from harness.verdict.policy import Policy, target_policy
from harness.verdict.reasons import SPEED_CODES, Verdict
from harness.verdict.rules import Evidence, decide, interval_text, mac_reduction
from targets.errors import SpeedproofError, UsageError
from targets.inputs import InputSettings
from targets.profiles import BackendSpec, ResolvedProfile
from targets.runners.base import Runner, WorkerRequest
from targets.runners.choose import runner_for
from targets.runners.compatibility import resolve_target
from targets.runners.protocol import MeasurementProtocol

# extra reduction in MACs that makes a larger-batch probe worth its time
PROBE_MIN_MAC_REDUCTION = 1.05


@dataclass(frozen=True)
class ModelOnTarget:
    """A model measured on a target, as every job that verifies takes it (verify, compare, search, sensitivity): the
    target, the inputs and the policy and protocol of `verify`; the jobs add their own fields."""

    model: str
    target: str | None = None
    backend: str | None = None  # None: the profile's first
    remote: str | None = None  # ssh://... : measure on that machine (targets.runners.ssh)
    ssh_config: Path | None = None
    threads: int | None = None
    input_shapes: tuple[str, ...] = ()
    inputs: InputSettings = field(default_factory=InputSettings)  # --batch-axis, --input-value, --data, ...
    policy_file: Path | None = None
    policy_overrides: dict[str, Any] = field(default_factory=dict)  # from the command line
    protocol: MeasurementProtocol = field(default_factory=MeasurementProtocol)
    out_dir: Path = Path("results")


@dataclass(frozen=True)
class VerifyRequest(ModelOnTarget):
    recipes: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()  # PATH[=LABEL]: models the user compressed elsewhere
    batch_sizes: tuple[int, ...] = ()  # also A/B at these, for the speedup curve (the policy's decides)


@dataclass(frozen=True)
class VerifyContext:
    """What every pair of one verification shares."""

    resolved: ResolvedProfile
    policy: Policy
    runner: Runner
    protocol: MeasurementProtocol
    progress: ProgressCallback = no_progress
    curve_batch_sizes: tuple[int, ...] = ()  # the speedup curve's batch sizes besides the policy's


def run_verify(
    request: VerifyRequest,
    progress: ProgressCallback = no_progress,
    runner: Runner | None = None,
) -> tuple[Record, Path]:
    """Verify every recipe of the request and write the record; return it and its path."""
    check_writable_folder(request.out_dir)
    require_variants(request.recipes, request.candidates)
    runner = runner or runner_for(request.remote, request.ssh_config, request.target, progress)
    resolved = resolve_target(request.target, request.threads, runner, request.backend)
    policy = target_policy(resolved.profile, request.policy_file, cli_overrides=request.policy_overrides)
    context = VerifyContext(
        resolved, policy, runner, request.protocol, progress=progress, curve_batch_sizes=request.batch_sizes
    )
    run_id = new_run_id()
    work_dir = kept_run_folder(request.out_dir, f"verify-{source_label(request.model)}", run_id)
    prepared = prepare_variants(
        request.model,
        request.recipes,
        request.input_shapes,
        resolved,
        runner,
        work_dir,
        progress,
        candidate_texts=request.candidates,
        inputs=request.inputs,
    )
    check_batches_fit(prepared, context)
    cells = verify_prepared(prepared, context)
    record = verification_record("verify", context, run_id, request.model, prepared, cells, work_dir).as_dict()
    path = write_record(record, request.out_dir, label=f"verify-{prepared.source.name}")
    return record, path


def check_batches_fit(prepared: PreparedVariants, context: VerifyContext) -> None:
    """Raise a UsageError, before anything is measured, when the inputs at a batch size the run will
    use (the policy's, its throughput and probe batches, the curve's) pass the memory cap, naming the
    option that asked for it."""
    schedule = context.policy.schedule
    asked = [
        ("--batch-size", schedule.batch_size, ""),
        ("--throughput-batch-size", schedule.throughput_batch_size, "; or 0 to measure no throughput pair"),
        ("--probe-batch-size", schedule.probe_batch_size, "; or 0 to probe no larger batch"),
        *(("--batch-sizes", size, "") for size in context.curve_batch_sizes),
    ]
    for option, batch, turn_off in asked:
        if batch:
            try:
                prepared.timed_specs(batch)
            except SpeedproofError as error:
                raise UsageError(f"{option} {batch} (the policy's, or the option's): {error}{turn_off}") from None


def require_variants(recipe_texts: tuple[str, ...], candidate_texts: tuple[str, ...] = ()) -> None:
    """Refuse a verification with nothing to verify: it would accept every variant of none."""
    if len(parse_recipe_list(recipe_texts)) < 2 and not candidate_texts:
        raise SpeedproofError(
            f"nothing to verify in --recipes {','.join(recipe_texts)!r}: name at least one recipe besides the baseline"
            " or a --candidate file"
        )


def verification_record(
    command: str,
    context: VerifyContext,
    run_id: str,
    model_spec: str,
    prepared: PreparedVariants,
    cells: list[VerdictCell],
    work_dir: Path,
) -> RunRecord:
    """The record of a verification of one model on one target (verify, compare); its artifacts
    are kept in `work_dir`."""
    return RunRecord(
        header=RecordHeader.new(command, context.runner.fingerprint(), context.resolved, run_id),
        policy=context.policy.as_dict(),
        protocol=context.protocol.as_dict(),
        model_source=model_source_entry(model_spec, prepared),
        artifact_dir=str((work_dir / "artifacts").resolve()),
        variants=[variant.as_dict() for variant in prepared.variants],
        cells=tuple(cells),
    )


def verify_prepared(prepared: PreparedVariants, context: VerifyContext) -> list[VerdictCell]:
    """One reference cell for the baseline and one verdict cell per other variant, per backend. The
    variants' main pairs run in turn (`run_ab_pairs_in_turn`: a fast model's blocks of each variant
    between the others'), then each variant's further pairs and verdict."""
    cells = []
    backends = context.resolved.profile.backends
    for backend in backends:
        baseline = prepared.variants[0].on_backend(backend.name)
        reference = reference_cell(prepared, baseline, backend, context.policy)
        if backend is not backends[0] and baseline.ok:
            reference = replace(
                reference, runtime_switch=runtime_switch(prepared, baseline, backends[0], backend, context)
            )
        cells.append(reference)
        others = [variant.on_backend(backend.name) for variant in prepared.variants[1:]]
        measured = _main_pairs_in_turn(prepared, baseline, others, backend, context)
        for variant in others:
            cells.append(verify_variant(prepared, baseline, variant, backend, context, measured.get(variant.recipe)))
    return cells


def runtime_switch(
    prepared: PreparedVariants, baseline: BuiltVariant, first: BackendSpec, backend: BackendSpec, context: VerifyContext
) -> dict[str, Any]:
    """The baseline on `backend` A/B against the baseline on `first`: switching runtime is itself a change a
    user can make, judged by the same interval. Its speedup, pairs and time; or the error when it failed."""
    context.progress(f"A/B {prepared.source.name}: baseline on {first.name} vs baseline on {backend.name}")
    entry: dict[str, Any] = {"from_backend": first.name, "to_backend": backend.name}
    try:
        steps = _pair_steps(prepared, baseline, baseline, first, context, variant_backend=backend)
        outcome = run_ab_pairs_in_turn([steps])[0]
    except SpeedproofError as error:
        return {**entry, "error": str(error)}
    if outcome.status != "ok" or outcome.speedup is None:
        return {**entry, "error": outcome.error or "no speedup was estimated"}
    context.progress(
        f"  {backend.name} vs {first.name}: {interval_text(outcome.speedup)} after {len(outcome.bursts)} pairs"
    )
    return {
        **entry,
        "speedup": outcome.speedup.as_dict(),
        "pairs": len(outcome.bursts),
        "duration_s": round(outcome.duration_s, 2),
        "latency_ms": {"from": outcome.baseline.latency_ms, "to": outcome.variant.latency_ms},
    }


def _main_pairs_in_turn(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variants: list[BuiltVariant],
    backend: BackendSpec,
    context: VerifyContext,
) -> dict[str, PairOutcome | SpeedproofError]:
    """The main A/B pair of every variant that was built, run in turn; a pair that could not be set up is
    its SpeedproofError."""
    measured: dict[str, PairOutcome | SpeedproofError] = {}
    steps, labels = [], []
    for index, variant in enumerate(variants, start=1):
        if not (baseline.ok and variant.ok):
            continue  # verify_variant says why
        announce = f"[{index}/{len(variants)}] A/B {prepared.source.name}: baseline vs {variant.recipe}"
        try:
            steps.append(_announced(announce, _pair_steps(prepared, baseline, variant, backend, context), context))
        except SpeedproofError as error:
            measured[variant.recipe] = error
            continue
        labels.append(variant.recipe)
    if len(steps) > 1:
        context.progress(f"{len(steps)} A/B pairs of {prepared.source.name} take turns, a block of each at a time")
    measured.update(zip(labels, run_ab_pairs_in_turn(steps), strict=True))
    return measured


def _announced(
    text: str, steps: Generator[None, None, PairOutcome], context: VerifyContext
) -> Generator[None, None, PairOutcome]:
    """`steps`, saying `text` when the pair's first turn comes."""
    context.progress(text)
    return (yield from steps)


def _key(prepared: PreparedVariants, variant: BuiltVariant, backend: BackendSpec, policy: Policy) -> CellKey:
    return CellKey(prepared.source.name, variant.recipe, backend.name, policy.schedule.batch_size)


def _unmeasured_cell(
    prepared: PreparedVariants, variant: BuiltVariant, backend: BackendSpec, policy: Policy
) -> VerdictCell:
    """A variant's cell before its pair ran: the artifact's facts and quality, not yet a measurement."""
    return VerdictCell(
        key=_key(prepared, variant, backend, policy),
        provider=backend.options.get("execution_provider"),
        status=CellStatus.FAILED,
        artifact=variant.artifact,
        quality=variant.quality,
        warnings=tuple(variant.warnings),
    )


def reference_cell(
    prepared: PreparedVariants, baseline: BuiltVariant, backend: BackendSpec, policy: Policy
) -> VerdictCell:
    return replace(
        _unmeasured_cell(prepared, baseline, backend, policy),
        status=CellStatus.OK if baseline.ok else CellStatus.FAILED,
        error=baseline.error,
        reference=True,
    )


def verify_variant(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variant: BuiltVariant,
    backend: BackendSpec,
    context: VerifyContext,
    measured: PairOutcome | SpeedproofError | None = None,
) -> VerdictCell:
    """The A/B pairs of `variant` against `baseline` on `backend` (and the throughput, probe and curve
    pairs the policy asks for) and the verdict; a failure is the cell's REJECT, never an exception.
    `measured`: the main pair's outcome (or why it could not run) when it ran already, in turn with others."""
    policy = context.policy
    cell = _unmeasured_cell(prepared, variant, backend, policy)
    evidence = replace(variant_evidence(prepared, baseline, variant, context), backend=backend.name)
    failure, failure_kind = None, None
    if not baseline.ok:
        failure, failure_kind = f"the baseline could not be built: {baseline.error}", baseline.failure_kind
    elif not variant.ok and backend.name in variant.failed_on:  # built, but its quality could not run there
        failure, failure_kind = (
            f"{backend.name} could not run {variant.recipe!r}: {variant.error}",
            variant.failure_kind,
        )
    elif not variant.ok:
        failure, failure_kind = f"variant {variant.recipe!r} could not be built: {variant.error}", variant.failure_kind
    if failure is not None:
        return replace(cell, error=failure, verdict=Verdict.failed(failure, failure_kind, not_built=True))
    try:
        if isinstance(measured, SpeedproofError):
            raise measured
        outcome = measured or _measure_pair(prepared, baseline, variant, backend, policy.schedule.batch_size, context)
    except SpeedproofError as error:
        return replace(cell, error=str(error), verdict=Verdict.failed(str(error)))
    cell = replace(cell, ab=outcome.as_dict())
    if outcome.status != "ok":
        return replace(cell, error=outcome.error, verdict=Verdict.failed(outcome.error or "", outcome.error_kind))
    cell = replace(
        cell,
        status=CellStatus.OK,
        provider=outcome.variant.provider,
        speedup=outcome.speedup.as_dict() if outcome.speedup else None,
        latency_ms=outcome.variant.latency_ms,
        memory=outcome.variant.memory,
        warnings=(
            *cell.warnings,
            *(f"{label} worker: {warning}" for label, side in outcome.sides() for warning in side.warnings),
        ),
    )
    evidence = replace(
        evidence,
        speedup=outcome.speedup,
        stopped_by=outcome.stopped_by,
        pairs_time_s=outcome.duration_s,
        contended_pairs=outcome.contended_pairs(),
        host_state=outcome.host_state,
        launch_bound=outcome.variant.launch_bound,
        semi_structured=outcome.variant.runtime.get("semi_structured"),
        tensorrt=outcome.variant.runtime.get("tensorrt"),
        baseline_peak_rss_bytes=(outcome.baseline.memory or {}).get("peak_rss_bytes"),
        variant_peak_rss_bytes=(outcome.variant.memory or {}).get("peak_rss_bytes"),
    )
    throughput_batch = policy.schedule.throughput_batch_size
    if throughput_batch:
        context.progress(f"  {variant.recipe}: throughput at batch {throughput_batch}")
        try:
            second = _measure_pair(prepared, baseline, variant, backend, throughput_batch, context, "throughput")
        except SpeedproofError as error:
            return replace(cell, status=CellStatus.FAILED, error=str(error), verdict=Verdict.failed(str(error)))
        if second.status != "ok":
            failure = f"throughput pair at batch {throughput_batch}: {second.error}"
            return replace(
                cell, status=CellStatus.FAILED, error=failure, verdict=Verdict.failed(failure, second.error_kind)
            )
        if second.speedup is not None:
            cell = replace(cell, throughput_speedup={"batch_size": throughput_batch, **second.speedup.as_dict()})
        evidence = replace(
            evidence,
            also=replace(
                evidence,
                policy=policy.with_values(
                    {"metric": "throughput", "batch_size": throughput_batch, "throughput_batch_size": 0}
                ),
                speedup=second.speedup,
                stopped_by=second.stopped_by,
                pairs_time_s=second.duration_s,
                contended_pairs=second.contended_pairs(),
                host_state=second.host_state,
                launch_bound=second.variant.launch_bound,
            ),
        )
    verdict = decide(evidence)
    probe = _larger_batch_probe(prepared, baseline, variant, backend, context, verdict, evidence)
    if probe is not None:
        probe_batch = policy.schedule.probe_batch_size
        cell = replace(cell, larger_batch_speedup={"batch_size": probe_batch, **probe.as_dict()})
        verdict = decide(replace(evidence, larger_batch_speedup=probe, larger_batch_size=probe_batch))
    if outcome.speedup:
        context.progress(
            f"  {variant.recipe}: {interval_text(outcome.speedup)} after {len(outcome.bursts)} pairs "
            f"({outcome.duration_s:.1f} s) -> {verdict.decision} {' '.join(map(str, verdict.codes()))}"
        )
    if context.curve_batch_sizes:
        points = _batch_curve(prepared, baseline, variant, backend, context, outcome.speedup)
        cell = replace(cell, batch_curve=[point.as_dict() for point in points])
        curve = f"{variant.recipe}: {curve_text(points, policy.rules.min_speedup)}"  # notes are said per model
        verdict = replace(verdict, notes=(*verdict.notes, curve))
    return replace(cell, verdict=verdict)


def _batch_curve(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variant: BuiltVariant,
    backend: BackendSpec,
    context: VerifyContext,
    deciding: SpeedupEstimate | None,
) -> list[BatchPoint]:
    """The A/B speedup at every curve batch size; the policy's batch size reuses the deciding pair."""
    deciding_batch = context.policy.schedule.batch_size
    points = [BatchPoint(deciding_batch, deciding)]
    for batch_size in sorted(set(context.curve_batch_sizes) - {deciding_batch}):
        context.progress(f"  {variant.recipe} at batch {batch_size}")
        try:
            outcome = _measure_pair(prepared, baseline, variant, backend, batch_size, context)
        except SpeedproofError as error:
            points.append(BatchPoint(batch_size, None, str(error)))
            continue
        points.append(BatchPoint(batch_size, outcome.speedup if outcome.status == "ok" else None, outcome.error))
    return sorted(points, key=lambda point: point.batch_size)


def variant_evidence(
    prepared: PreparedVariants, baseline: BuiltVariant, variant: BuiltVariant, context: VerifyContext
) -> Evidence:
    """What the rules know of a variant before its pairs run: facts, quality, the host."""
    is_identity = variant.is_identity_control
    host = context.runner.fingerprint()
    return Evidence(
        recipe=variant.recipe,
        policy=context.policy,
        baseline_facts=baseline.artifact or {},
        variant_facts=variant.artifact,
        baseline_quality=baseline.quality,
        variant_quality=variant.quality,
        latency_only=prepared.source.latency_only,
        host_isa=host.isa,
        host_cpu_flags=tuple(host.cpu_flags),
        gpu_target=context.resolved.profile.requires.cuda_device,
        emulated=host.emulated,
        is_identity=is_identity,
    )


def _measure_pair(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variant: BuiltVariant,
    backend: BackendSpec,
    batch_size: int,
    context: VerifyContext,
    metric: str | None = None,
) -> PairOutcome:
    """One A/B pair at `batch_size`, on the policy's metric unless `metric` says another."""
    return run_ab_pairs_in_turn([_pair_steps(prepared, baseline, variant, backend, context, batch_size, metric)])[0]


def _pair_steps(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variant: BuiltVariant,
    backend: BackendSpec,
    context: VerifyContext,
    batch_size: int | None = None,
    metric: str | None = None,
    variant_backend: BackendSpec | None = None,
) -> Generator[None, None, PairOutcome]:
    """The steps of one A/B pair (`ab_pair_steps`), at the policy's batch size and metric unless given;
    the variant runs on `variant_backend` when given (the baseline across runtimes), else on `backend`."""
    batch_size = batch_size or context.policy.schedule.batch_size
    specs = prepared.timed_specs(batch_size)
    requests = [
        WorkerRequest.for_cell(
            str(built.artifact_path.resolve()),  # type: ignore[union-attr]
            on_backend,
            context.resolved,
            specs,
            batch_size,
            context.protocol,
        )
        for built, on_backend in ((baseline, backend), (variant, variant_backend or backend))
    ]
    rules = context.policy.rules
    schedule = replace(context.policy.schedule, batch_size=batch_size, metric=metric or context.policy.schedule.metric)
    if context.runner.fingerprint().emulated:  # its timings decide nothing: no fresh workers per pair
        schedule = replace(schedule, fresh_workers_below_ms=0.0)
    return ab_pair_steps(
        requests[0],
        requests[1],
        schedule,
        StopRule(min_speedup=rules.min_speedup, confidence=rules.confidence),
        runner=context.runner,
        load_timeout_s=context.protocol.load_allowance_s + context.protocol.warmup_min_duration_s,
        progress=context.progress,
        history=_level_history(requests[0], schedule, context.runner),
    )


def _level_history(request: WorkerRequest, schedule: ABSchedule, runner: Runner) -> LevelHistory | None:
    """This host's earlier levels of the baseline under the same settings (none for emulated hosts,
    whose timings decide nothing)."""
    host = runner.fingerprint()
    if host.emulated:
        return None
    settings = {
        "backend": request.backend,
        "options": request.options,
        "threads": request.threads,
        "batch_size": schedule.batch_size,
        "metric": schedule.metric,
    }
    return LevelHistory.for_artifact(request.artifact_path, f"{host.hostname} {host.cpu_model}", settings)


def _larger_batch_probe(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variant: BuiltVariant,
    backend: BackendSpec,
    context: VerifyContext,
    verdict: Verdict,
    evidence: Evidence,
) -> SpeedupEstimate | None:
    """With `probe_batch_size`, a variant with fewer MACs that missed the threshold is also compared
    at that batch size; the result only adds a hint, it never changes the decision."""
    schedule = context.policy.schedule
    reduction = mac_reduction(evidence.baseline_facts, evidence.variant_facts)
    if (
        not schedule.probe_batch_size
        or schedule.probe_batch_size == schedule.batch_size
        or not SPEED_CODES & set(verdict.codes())
        or reduction is None
        or reduction < PROBE_MIN_MAC_REDUCTION
    ):
        return None
    context.progress(f"  probing {variant.recipe} at batch {schedule.probe_batch_size}")
    try:
        outcome = _measure_pair(prepared, baseline, variant, backend, schedule.probe_batch_size, context)
    except SpeedproofError:
        return None
    return outcome.speedup if outcome.status == "ok" else None
