"""The bench job: measure one model (and its variants) on one target profile, one worker process
per cell, and write the result record.

A cell is (variant, backend, batch size); variants come from the recipes (the baseline is always
one). A variant or cell that fails is recorded as failed, with its reason, and the rest still run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.measure.statistics import coefficient_of_variation, summarize_latencies_ns, throughput_per_s
from harness.progress import ProgressCallback, no_progress
from harness.records.cells import BenchCell, CellKey, CellStatus, Measurement
from harness.records.provenance import new_run_id
from harness.records.run_record import Record, RecordHeader, RunRecord
from harness.records.store import check_writable_folder, write_record
from harness.variants.builder import BuiltVariant
from harness.variants.preparation import PreparedVariants, model_source_entry, prepare_variants
from targets.backends.torch.semi_structured import two_four_hints
from targets.errors import FailureKind, SpeedproofError
from targets.host.fingerprint import HostFingerprint, load_average_1m
from targets.inputs import InputSettings
from targets.profiles import BackendSpec, ResolvedProfile
from targets.runners.base import CellResult, Runner, WorkerRequest
from targets.runners.choose import runner_for
from targets.runners.compatibility import resolve_target
from targets.runners.protocol import MeasurementProtocol
from targets.runners.timing import TimingStop

NOISY_CV = 0.10
# share of all CPUs that other processes used while a cell was timed
NOISY_OTHER_CPU_SHARE = 0.25


@dataclass(frozen=True)
class BenchRequest:
    model: str
    target: str | None = None  # None: the built-in profile that suits the host
    backend: str | None = None  # None: the profile's first
    remote: str | None = None  # ssh://... : measure on that machine (targets.runners.ssh)
    ssh_config: Path | None = None
    batch_sizes: tuple[int, ...] | None = None  # None: the profile's
    threads: int | None = None  # None: the profile's
    input_shapes: tuple[str, ...] = ()
    inputs: InputSettings = field(default_factory=InputSettings)  # --batch-axis, --input-value
    recipes: tuple[str, ...] = ()  # recipe strings; the baseline is always measured
    candidates: tuple[str, ...] = ()  # PATH[=LABEL]: models the user compressed elsewhere, measured beside it
    protocol: MeasurementProtocol = field(default_factory=MeasurementProtocol)
    out_dir: Path = Path("results")


@dataclass(frozen=True)
class CellPlan:
    model: str
    variant: BuiltVariant
    backend: BackendSpec
    batch_size: int

    @property
    def key(self) -> CellKey:
        return CellKey(self.model, self.variant.recipe, self.backend.name, self.batch_size)


def run_bench(
    request: BenchRequest,
    runner: Runner | None = None,
    progress: ProgressCallback = no_progress,
) -> tuple[Record, Path]:
    """Build the requested variants, measure every cell, write the record to `request.out_dir`;
    return it and its path.

    Raises SpeedproofError for problems that concern the whole run (bad model, unknown target or
    recipe, unresolvable input shape); problems of one variant or cell become failed cells.
    """
    check_writable_folder(request.out_dir)
    runner = runner or runner_for(request.remote, request.ssh_config, request.target, progress)
    host = runner.fingerprint()
    resolved = resolve_target(request.target, request.threads, runner, request.backend)
    batch_sizes = request.batch_sizes or resolved.profile.batch_sizes
    if any(batch <= 0 for batch in batch_sizes):
        raise SpeedproofError(f"--batch sizes must be positive integers, got {list(batch_sizes)}")
    run_id = new_run_id()

    with tempfile.TemporaryDirectory(prefix="speedproof-export-") as export_dir:
        prepared = prepare_variants(
            request.model,
            request.recipes,
            request.input_shapes,
            resolved,
            runner,
            Path(export_dir),
            progress,
            candidate_texts=request.candidates,
            inputs=request.inputs,
        )
        plans = [
            CellPlan(prepared.source.name, variant, backend, batch)
            for variant in prepared.variants
            for backend in resolved.profile.backends
            for batch in batch_sizes
        ]
        context = _RunContext(prepared, resolved, request.protocol, runner, host)
        cells = []
        for index, plan in enumerate(plans, start=1):
            progress(
                f"[{index}/{len(plans)}] {plan.model} {plan.variant.recipe} {plan.backend.name} batch {plan.batch_size}"
            )
            cells.append(_measure_planned_cell(plan, context))

    record = RunRecord(
        header=RecordHeader.new("bench", host, resolved, run_id),
        protocol=request.protocol.as_dict(),
        model_source=model_source_entry(request.model, prepared),
        variants=[variant.as_dict() for variant in prepared.variants],
        cells=tuple(cells),
    ).as_dict()
    path = write_record(record, request.out_dir, label=f"bench-{prepared.source.name}")
    return record, path


@dataclass(frozen=True)
class _RunContext:
    """What every cell of one run shares."""

    prepared: PreparedVariants
    resolved: ResolvedProfile
    protocol: MeasurementProtocol
    runner: Runner
    host: HostFingerprint


def _measure_planned_cell(plan: CellPlan, context: _RunContext) -> BenchCell:
    provider = plan.backend.options.get("execution_provider")
    variant = plan.variant

    def failed(error: str, kind: FailureKind = FailureKind.ERROR) -> BenchCell:
        return BenchCell.failed(plan.key, provider, error, variant.artifact, variant.quality, kind)

    if not variant.ok or variant.artifact_path is None:
        return failed(f"variant {variant.recipe!r} could not be built: {variant.error}", variant.failure_kind)
    try:
        specs = context.prepared.timed_specs(plan.batch_size)
    except SpeedproofError as error:
        return failed(str(error))
    load_average = load_average_1m()
    worker_request = WorkerRequest.for_cell(
        str(variant.artifact_path.resolve()),
        plan.backend,
        context.resolved,
        specs,
        plan.batch_size,
        context.protocol,
    )
    result = context.runner.run_cell(worker_request, timeout_s=context.protocol.cell_timeout_s())
    if not result.ok:
        return failed(result.error or "worker failed without a message", result.kind or FailureKind.ERROR)
    measurement = _measurement(result, plan.batch_size)
    return BenchCell(
        key=plan.key,
        provider=result.provider,
        status=CellStatus.OK,
        artifact=variant.artifact,
        quality=variant.quality,
        measurement=measurement,
        warnings=tuple(_warnings(result, measurement.cv, context, load_average)),
    )


def _measurement(result: CellResult, batch_size: int) -> Measurement:
    summary = summarize_latencies_ns(result.latencies_ns)
    duration_s = float(result.duration_s or 0.0)
    return Measurement(
        latency_ms=summary.as_dict(),
        cv=coefficient_of_variation(summary),
        iterations=len(result.latencies_ns),
        duration_s=duration_s,
        throughput_per_s=throughput_per_s(batch_size, len(result.latencies_ns), duration_s),
        cold_start_ms=result.cold_start_ms,
        memory=result.memory,
        latencies_ns=result.latencies_ns,
        clock=result.clock,
        runtime=result.runtime or None,
    )


def _warnings(result: CellResult, cv: float, context: _RunContext, load_average: float | None) -> list[str]:
    host, resolved = context.host, context.resolved
    warnings = list(resolved.notes)
    if cv > NOISY_CV:
        warnings.append(f"noisy: coefficient of variation {cv:.1%} exceeds {NOISY_CV:.0%}")
    if load_average is not None and load_average > host.logical_cores:
        warnings.append(
            f"noisy: host load average {load_average:.2f} exceeded its {host.logical_cores} CPUs when the cell started"
        )
    if result.other_processes_cpu_share > NOISY_OTHER_CPU_SHARE:
        warnings.append(
            f"noisy: other processes used {result.other_processes_cpu_share:.0%} of the host's CPU time during timing"
        )
    if result.stopped_by == TimingStop.MAX_DURATION:
        warnings.append("stopped at --max-duration-s before --min-iterations was reached")
    warnings.extend(result.warnings)
    warnings.extend(two_four_hints(result.runtime.get("semi_structured")))
    if host.emulated:
        warnings.append("emulated: timings come from an emulator and say nothing about the real hardware")
    return warnings
