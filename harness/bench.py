"""`speedproof bench`: measure one model on one target profile, one worker process per cell,
and write the result record.

A cell is (variant, backend, batch size); variants come from `--recipes` (the baseline is always
one). A variant or cell that fails is recorded as failed, with its reason, and the rest still run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.errors import SpeedproofError
from harness.inputs import DEFAULT_SEED, InputSpec, ModelInput, resolve_input_specs
from harness.protocol import MeasurementProtocol
from harness.provenance import new_run_id, record_header
from harness.results_store import Record, write_record
from harness.statistics import coefficient_of_variation, summarize_latencies_ns, throughput_per_s
from harness.variants import BuiltVariant
from harness.variants_run import model_source_entry, prepare_variants
from targets.compatibility import resolve_target_for_host
from targets.host import HostFingerprint, fingerprint_host, load_average_1m
from targets.local_runner import LocalWorkerRunner
from targets.profiles import BackendSpec, ResolvedProfile

NOISY_CV = 0.10
# share of all CPUs that other processes used while a cell was timed
NOISY_OTHER_CPU_SHARE = 0.25


class CellRunner(Protocol):
    def run_cell(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BenchRequest:
    model: str
    target: str | None = None  # None: the built-in profile that suits the host
    batch_sizes: tuple[int, ...] | None = None  # None: the profile's
    threads: int | None = None  # None: the profile's
    input_shapes: tuple[str, ...] = ()
    recipes: tuple[str, ...] = ()  # recipe strings; the baseline is always measured
    protocol: MeasurementProtocol = field(default_factory=MeasurementProtocol)
    out_dir: Path = Path("results")


@dataclass(frozen=True)
class CellPlan:
    model: str
    variant: BuiltVariant
    backend: BackendSpec
    batch_size: int


ProgressCallback = Callable[[str], None]


def _no_progress(message: str) -> None:
    pass


def run_bench(
    request: BenchRequest,
    runner: CellRunner | None = None,
    progress: ProgressCallback = _no_progress,
    host: HostFingerprint | None = None,
) -> tuple[Record, Path]:
    """Build the requested variants, measure every cell, write the record to `request.out_dir`;
    return it and its path.

    Raises SpeedproofError for problems that concern the whole run (bad model, unknown target or
    recipe, unresolvable input shape); problems of one variant or cell become failed cells.
    """
    host = host or fingerprint_host()
    resolved = resolve_target_for_host(request.target, request.threads, host)
    batch_sizes = request.batch_sizes or resolved.profile.batch_sizes
    if any(batch <= 0 for batch in batch_sizes):
        raise SpeedproofError(f"--batch sizes must be positive integers, got {list(batch_sizes)}")
    runner = runner or LocalWorkerRunner()
    run_id = new_run_id()

    with tempfile.TemporaryDirectory(prefix="speedproof-export-") as export_dir:
        prepared = prepare_variants(
            request.model, request.recipes, request.input_shapes, resolved, Path(export_dir), progress
        )
        plans = [
            CellPlan(prepared.source.name, variant, backend, batch)
            for variant in prepared.variants
            for backend in resolved.profile.backends
            for batch in batch_sizes
        ]
        context = _RunContext(prepared.model_inputs, prepared.overrides, resolved, request.protocol, runner, host)
        cells = []
        for index, plan in enumerate(plans, start=1):
            progress(
                f"[{index}/{len(plans)}] {plan.model} {plan.variant.recipe} {plan.backend.name} batch {plan.batch_size}"
            )
            cells.append(_measure_planned_cell(plan, context))

    record: Record = {
        **record_header("bench", host, resolved, run_id),
        "protocol": request.protocol.as_dict(),
        "model_source": model_source_entry(request.model, prepared),
        "variants": [variant.as_dict() for variant in prepared.variants],
        "cells": cells,
    }
    path = write_record(record, request.out_dir, label=f"bench-{prepared.source.name}")
    return record, path


def build_worker_request(
    artifact_path: Path,
    backend: BackendSpec,
    resolved: ResolvedProfile,
    specs: list[InputSpec],
    batch_size: int,
    protocol: MeasurementProtocol,
) -> dict[str, Any]:
    """What a worker (one-shot or live) needs to load and time one artifact."""
    return {
        "artifact_path": str(artifact_path.resolve()),
        "backend": backend.name,
        "options": backend.options,
        "threads": resolved.threads,
        "cpu_affinity": list(resolved.cpu_affinity),
        "inputs": [spec.as_dict() for spec in specs],
        "seed": DEFAULT_SEED,
        "batch_size": batch_size,
        "protocol": protocol.as_dict(),
    }


@dataclass(frozen=True)
class _RunContext:
    """What every cell of one run shares."""

    model_inputs: list[ModelInput]
    overrides: dict[str | None, tuple[int, ...]]
    resolved: ResolvedProfile
    protocol: MeasurementProtocol
    runner: CellRunner
    host: HostFingerprint


def _measure_planned_cell(plan: CellPlan, context: _RunContext) -> dict[str, Any]:
    cell = _empty_cell(plan)
    if not plan.variant.ok:
        cell["error"] = f"variant {plan.variant.recipe!r} could not be built: {plan.variant.error}"
        return cell
    try:
        specs = resolve_input_specs(context.model_inputs, plan.batch_size, context.overrides)
    except SpeedproofError as error:
        cell["error"] = str(error)
        return cell
    load_average = load_average_1m()
    worker_request = build_worker_request(
        plan.variant.artifact_path,  # type: ignore[arg-type]
        plan.backend,
        context.resolved,
        specs,
        plan.batch_size,
        context.protocol,
    )
    result = context.runner.run_cell(worker_request, timeout_s=context.protocol.cell_timeout_s())
    if result.get("status") != "ok":
        cell["error"] = result.get("error") or "worker failed without a message"
        return cell
    return _fill_measured_cell(cell, result, plan, context.resolved, context.host, load_average)


def _empty_cell(plan: CellPlan) -> dict[str, Any]:
    return {
        "model": plan.model,
        "variant": plan.variant.recipe,
        "backend": plan.backend.name,
        "provider": plan.backend.options.get("execution_provider"),
        "batch_size": plan.batch_size,
        "status": "failed",
        "error": None,
        "artifact": plan.variant.artifact,
        "quality": plan.variant.quality,
        "latency_ms": None,
        "cv": None,
        "iterations": 0,
        "duration_s": None,
        "throughput_per_s": None,
        "cold_start_ms": None,
        "memory": None,
        "warnings": [],
    }


def _fill_measured_cell(
    cell: dict[str, Any],
    result: dict[str, Any],
    plan: CellPlan,
    resolved: ResolvedProfile,
    host: HostFingerprint,
    load_average: float | None,
) -> dict[str, Any]:
    latencies_ns = result["latencies_ns"]
    summary = summarize_latencies_ns(latencies_ns)
    cv = coefficient_of_variation(summary)
    warnings = list(resolved.notes)
    if cv > NOISY_CV:
        warnings.append(f"noisy: coefficient of variation {cv:.1%} exceeds {NOISY_CV:.0%}")
    if load_average is not None and load_average > host.logical_cores:
        warnings.append(
            f"noisy: host load average {load_average:.2f} exceeded its {host.logical_cores} CPUs when the cell started"
        )
    other_share = result.get("other_processes_cpu_share") or 0.0
    if other_share > NOISY_OTHER_CPU_SHARE:
        warnings.append(f"noisy: other processes used {other_share:.0%} of the host's CPU time during timing")
    if result.get("stopped_by") == "max_duration":
        warnings.append("stopped at --max-duration-s before --min-iterations was reached")
    if host.emulated:
        warnings.append("emulated: timings come from an emulator and say nothing about the real hardware")
    memory_cap = resolved.profile.resources.memory_bytes
    if memory_cap and result["memory"]["peak_rss_bytes"] > memory_cap:
        warnings.append(
            f"memory: peak RSS {result['memory']['peak_rss_bytes'] / 2**20:.0f} MiB exceeds the profile's cap of "
            f"{memory_cap / 2**20:.0f} MiB"
        )
    cell.update(
        status="ok",
        provider=result["provider"],
        latency_ms=summary.as_dict(),
        cv=cv,
        iterations=len(latencies_ns),
        duration_s=result["duration_s"],
        throughput_per_s=throughput_per_s(plan.batch_size, len(latencies_ns), result["duration_s"]),
        cold_start_ms=result["cold_start_ms"],
        memory=result["memory"],
        warnings=warnings,
        latencies_ns=latencies_ns,
    )
    return cell
