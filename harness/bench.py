"""`speedproof bench`: measure one model on one target profile, one worker process per cell,
and write the result record.

A cell is (artifact, backend, batch size). A cell that fails is recorded as failed, with its
reason, and the remaining cells still run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from exporters.onnx_file import artifact_facts, read_model_inputs
from harness import __version__
from harness.errors import SpeedproofError
from harness.inputs import DEFAULT_SEED, ModelInput, resolve_input_specs, shape_overrides
from harness.model_sources import ModelArtifact, resolve_model_source
from harness.protocol import MeasurementProtocol
from harness.provenance import git_commit, new_run_id, utc_now_iso
from harness.results_store import SCHEMA_VERSION, Record, write_record
from harness.statistics import coefficient_of_variation, summarize_latencies_ns, throughput_per_s
from targets.compatibility import default_target_name, reasons_host_cannot_run
from targets.host import HostFingerprint, fingerprint_host, load_average_1m
from targets.local_runner import LocalWorkerRunner
from targets.profiles import BackendSpec, ResolvedProfile, load_target, resolve_profile

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
    protocol: MeasurementProtocol = field(default_factory=MeasurementProtocol)
    out_dir: Path = Path("results")


@dataclass(frozen=True)
class CellPlan:
    model: str
    variant: str
    backend: BackendSpec
    batch_size: int


ProgressCallback = Callable[[str], None]


def _no_progress(message: str) -> None:
    pass


def check_target_runs_here(request: BenchRequest, host: HostFingerprint) -> ResolvedProfile:
    profile = load_target(request.target or default_target_name(host))
    reasons = reasons_host_cannot_run(profile, host)
    if reasons:
        raise SpeedproofError(f"this host cannot run target {profile.name}: {'; '.join(reasons)}")
    return resolve_profile(profile, host, request.threads)


def run_bench(
    request: BenchRequest,
    runner: CellRunner | None = None,
    progress: ProgressCallback = _no_progress,
    host: HostFingerprint | None = None,
) -> tuple[Record, Path]:
    """Measure every cell, write the record to `request.out_dir`; return it and its path.

    Raises SpeedproofError for problems that concern the whole run (bad model, unknown target,
    unresolvable input shape); problems of one cell become a failed cell.
    """
    host = host or fingerprint_host()
    resolved = check_target_runs_here(request, host)
    overrides = shape_overrides(list(request.input_shapes))
    batch_sizes = request.batch_sizes or resolved.profile.batch_sizes
    if any(batch <= 0 for batch in batch_sizes):
        raise SpeedproofError(f"--batch sizes must be positive integers, got {list(batch_sizes)}")
    runner = runner or LocalWorkerRunner()
    run_id = new_run_id()

    with tempfile.TemporaryDirectory(prefix="speedproof-export-") as export_dir:
        progress(f"preparing {request.model}")
        artifact = resolve_model_source(request.model, overrides, Path(export_dir))
        facts = artifact_facts(artifact.onnx_path, artifact.model).as_dict()
        model_inputs = read_model_inputs(artifact.model)
        # a shape problem common to every batch size is the user's to fix: stop before measuring
        if artifact.kind == "onnx-file":
            _check_shapes_resolve(model_inputs, overrides)
        else:
            overrides = {}  # exported with only the batch axis dynamic: the graph has every other dim

        plans = [
            CellPlan(artifact.name, "baseline", backend, batch)
            for backend in resolved.profile.backends
            for batch in batch_sizes
        ]
        context = _RunContext(artifact, facts, model_inputs, overrides, resolved, request.protocol, runner, host)
        cells = []
        for index, plan in enumerate(plans, start=1):
            progress(f"[{index}/{len(plans)}] {plan.model} {plan.backend.name} batch {plan.batch_size}")
            cells.append(_measure_planned_cell(plan, context))

    commit, dirty = git_commit()
    record: Record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": utc_now_iso(),
        "tool_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "command": "bench",
        "host": host.as_dict(),
        "target": resolved.as_dict(),
        "protocol": request.protocol.as_dict(),
        "model_source": {
            "spec": request.model,
            "kind": artifact.kind,
            "latency_only": artifact.latency_only,
            "inputs": [model_input.as_dict() for model_input in model_inputs],
        },
        "cells": cells,
    }
    path = write_record(record, request.out_dir, label=f"bench-{artifact.name}")
    return record, path


def _check_shapes_resolve(model_inputs: list[ModelInput], overrides: dict[str | None, tuple[int, ...]]) -> None:
    """Raise the --input-shape error now if a non-batch dim cannot be resolved."""
    first_dims = [model_input.dims[0] for model_input in model_inputs if model_input.dims]
    declared_batch = next((dim for dim in first_dims if isinstance(dim, int)), 1)
    resolve_input_specs(model_inputs, declared_batch, overrides)


@dataclass(frozen=True)
class _RunContext:
    """What every cell of one run shares."""

    artifact: ModelArtifact
    facts: dict[str, Any]
    model_inputs: list[ModelInput]
    overrides: dict[str | None, tuple[int, ...]]
    resolved: ResolvedProfile
    protocol: MeasurementProtocol
    runner: CellRunner
    host: HostFingerprint


def _measure_planned_cell(plan: CellPlan, context: _RunContext) -> dict[str, Any]:
    cell = _empty_cell(plan, context.facts)
    try:
        specs = resolve_input_specs(context.model_inputs, plan.batch_size, context.overrides)
    except SpeedproofError as error:
        cell["error"] = str(error)
        return cell
    load_average = load_average_1m()
    worker_request = {
        "artifact_path": str(context.artifact.onnx_path.resolve()),
        "backend": plan.backend.name,
        "options": plan.backend.options,
        "threads": context.resolved.threads,
        "cpu_affinity": list(context.resolved.cpu_affinity),
        "inputs": [spec.as_dict() for spec in specs],
        "seed": DEFAULT_SEED,
        "batch_size": plan.batch_size,
        "protocol": context.protocol.as_dict(),
    }
    result = context.runner.run_cell(worker_request, timeout_s=context.protocol.cell_timeout_s())
    if result.get("status") != "ok":
        cell["error"] = result.get("error") or "worker failed without a message"
        return cell
    return _fill_measured_cell(cell, result, plan, context.resolved, context.host, load_average)


def _empty_cell(plan: CellPlan, facts: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": plan.model,
        "variant": plan.variant,
        "backend": plan.backend.name,
        "provider": plan.backend.options.get("execution_provider"),
        "batch_size": plan.batch_size,
        "status": "failed",
        "error": None,
        "artifact": facts,
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
