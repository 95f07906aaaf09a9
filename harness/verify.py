"""`speedproof verify`: build the variants, compare each against the baseline in a same-session
A/B run, and give each an ACCEPT/REJECT verdict under the policy. `gate` and `compare` verify
through `verify_prepared` too.

A cell is (variant, backend) at the policy's batch size. The baseline's cell is the reference and
has no verdict; a variant that failed to build, or whose pair failed, is REJECTED with FAILED (or
FELL_BACK) while the others still run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.ab_compare import PairOutcome, WorkerFactory, run_ab_pair, start_live_worker
from harness.bench import build_worker_request
from harness.errors import SpeedproofError
from harness.inputs import resolve_input_specs
from harness.policy import Policy, build_policy
from harness.protocol import MeasurementProtocol
from harness.provenance import new_run_id, record_header
from harness.recipes import parse_recipe
from harness.results_store import Record, write_record
from harness.speedup import SpeedupEstimate
from harness.variants import BuiltVariant
from harness.variants_run import PreparedVariants, model_source_entry, prepare_variants
from harness.verdict import Evidence, Verdict, decide, interval_text, mac_reduction
from targets.compatibility import resolve_target_for_host
from targets.host import HostFingerprint, fingerprint_host
from targets.profiles import BackendSpec, ResolvedProfile

ProgressCallback = Callable[[str], None]
# extra reduction in MACs that makes a larger-batch probe worth its time
PROBE_MIN_MAC_REDUCTION = 1.05


def no_progress(message: str) -> None:
    pass


@dataclass(frozen=True)
class VerifyRequest:
    model: str
    recipes: tuple[str, ...]
    target: str | None = None
    threads: int | None = None
    input_shapes: tuple[str, ...] = ()
    policy_file: Path | None = None
    policy_overrides: dict[str, Any] = field(default_factory=dict)  # from the command line
    protocol: MeasurementProtocol = field(default_factory=MeasurementProtocol)  # warm-up and load allowance
    out_dir: Path = Path("results")


@dataclass(frozen=True)
class VerifyContext:
    """What every pair of one verification shares."""

    resolved: ResolvedProfile
    policy: Policy
    host: HostFingerprint
    protocol: MeasurementProtocol
    worker_factory: WorkerFactory = start_live_worker
    progress: ProgressCallback = no_progress


def run_verify(
    request: VerifyRequest,
    progress: ProgressCallback = no_progress,
    host: HostFingerprint | None = None,
) -> tuple[Record, Path]:
    """Verify every recipe of the request and write the record; return it and its path."""
    host = host or fingerprint_host()
    resolved = resolve_target_for_host(request.target, request.threads, host)
    policy = build_policy(resolved.profile.policy, request.policy_file, request.policy_overrides)
    context = VerifyContext(resolved, policy, host, request.protocol, progress=progress)
    run_id = new_run_id()
    with tempfile.TemporaryDirectory(prefix="speedproof-verify-") as work_dir:
        prepared = prepare_variants(
            request.model, request.recipes, request.input_shapes, resolved, Path(work_dir), progress
        )
        cells = verify_prepared(prepared, context)
    record = verification_record("verify", host, context, run_id, request.model, prepared, cells)
    path = write_record(record, request.out_dir, label=f"verify-{prepared.source.name}")
    return record, path


def verification_record(
    command: str,
    host: HostFingerprint,
    context: VerifyContext,
    run_id: str,
    model_spec: str,
    prepared: PreparedVariants,
    cells: list[dict[str, Any]],
) -> Record:
    """The record of a verification of one model on one target (verify, compare)."""
    return {
        **record_header(command, host, context.resolved, run_id),
        "policy": context.policy.as_dict(),
        "protocol": context.protocol.as_dict(),
        "model_source": model_source_entry(model_spec, prepared),
        "variants": [variant.as_dict() for variant in prepared.variants],
        "cells": cells,
    }


def verify_prepared(prepared: PreparedVariants, context: VerifyContext) -> list[dict[str, Any]]:
    """One reference cell for the baseline and one verdict cell per other variant, per backend."""
    baseline = prepared.variants[0]
    cells = []
    for backend in context.resolved.profile.backends:
        cells.append(_baseline_cell(prepared, baseline, backend, context.policy))
        others = prepared.variants[1:]
        for index, variant in enumerate(others, start=1):
            context.progress(f"[{index}/{len(others)}] A/B {prepared.source.name}: baseline vs {variant.recipe}")
            cells.append(_verify_variant(prepared, baseline, variant, backend, context))
    return cells


def _cell(prepared: PreparedVariants, variant: BuiltVariant, backend: BackendSpec, policy: Policy) -> dict[str, Any]:
    quality = variant.quality or {}
    return {
        "model": prepared.source.name,
        "variant": variant.recipe,
        "backend": backend.name,
        "provider": backend.options.get("execution_provider"),
        "batch_size": policy.batch_size,
        "status": "failed",
        "error": None,
        "artifact": variant.artifact,
        "quality": variant.quality,
        "accuracy": quality.get("accuracy") if quality.get("metric") == "accuracy" else None,
        "fidelity": quality.get("top1_agreement") if quality.get("metric") == "fidelity" else None,
        "speedup": None,
        "verdict": None,
        "ab": None,
        "latency_ms": None,
        "memory": None,
        "warnings": list(variant.warnings),
    }


def _baseline_cell(
    prepared: PreparedVariants, baseline: BuiltVariant, backend: BackendSpec, policy: Policy
) -> dict[str, Any]:
    cell = _cell(prepared, baseline, backend, policy)
    cell["status"] = "ok" if baseline.ok else "failed"
    cell["error"] = baseline.error
    cell["reference"] = True
    return cell


def _verify_variant(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variant: BuiltVariant,
    backend: BackendSpec,
    context: VerifyContext,
) -> dict[str, Any]:
    policy = context.policy
    cell = _cell(prepared, variant, backend, policy)
    evidence = _evidence_base(prepared, baseline, variant, context)
    if not baseline.ok:
        failure = f"the baseline could not be built: {baseline.error}"
    elif not variant.ok:
        failure = f"variant {variant.recipe!r} could not be built: {variant.error}"
    else:
        failure = None
    if failure is not None:
        cell["error"] = failure
        return _with_verdict(cell, decide(Evidence(**{**evidence, "failure": failure})))
    try:
        outcome = _measure_pair(prepared, baseline, variant, backend, policy.batch_size, context)
    except SpeedproofError as error:
        cell["error"] = str(error)
        return _with_verdict(cell, decide(Evidence(**{**evidence, "failure": str(error)})))
    cell["ab"] = outcome.as_dict()
    if outcome.status != "ok":
        cell["error"] = outcome.error
        verdict = decide(Evidence(**{**evidence, "failure": outcome.error, "failure_kind": outcome.error_kind}))
        return _with_verdict(cell, verdict)
    cell.update(
        status="ok",
        provider=outcome.variant.provider,
        speedup=outcome.speedup.as_dict() if outcome.speedup else None,
        latency_ms=outcome.variant.latency_ms,
        memory=outcome.variant.memory,
    )
    evidence.update(
        speedup=outcome.speedup,
        stopped_by=outcome.stopped_by,
        pairs_time_s=outcome.duration_s,
        baseline_peak_rss_bytes=(outcome.baseline.memory or {}).get("peak_rss_bytes"),
        variant_peak_rss_bytes=(outcome.variant.memory or {}).get("peak_rss_bytes"),
    )
    verdict = decide(Evidence(**evidence))
    probe = _larger_batch_probe(prepared, baseline, variant, backend, context, verdict, evidence)
    if probe is not None:
        cell["larger_batch_speedup"] = {"batch_size": policy.probe_batch_size, **probe.as_dict()}
        evidence.update(larger_batch_speedup=probe, larger_batch_size=policy.probe_batch_size)
        verdict = decide(Evidence(**evidence))
    if outcome.speedup:
        context.progress(
            f"  {variant.recipe}: {interval_text(outcome.speedup)} after {outcome.as_dict()['pairs']} pairs "
            f"({outcome.duration_s:.1f} s) -> {verdict.decision} {' '.join(verdict.codes())}"
        )
    return _with_verdict(cell, verdict)


def _evidence_base(
    prepared: PreparedVariants, baseline: BuiltVariant, variant: BuiltVariant, context: VerifyContext
) -> dict[str, Any]:
    try:
        is_identity = [step.name for step in parse_recipe(variant.recipe).steps] == ["identity"]
    except SpeedproofError:
        is_identity = False
    return {
        "recipe": variant.recipe,
        "policy": context.policy,
        "baseline_facts": baseline.artifact or {},
        "variant_facts": variant.artifact,
        "baseline_quality": baseline.quality,
        "variant_quality": variant.quality,
        "latency_only": prepared.source.latency_only,
        "host_isa": context.host.isa,
        "host_cpu_flags": tuple(context.host.cpu_flags),
        "gpu_target": context.resolved.profile.requires.cuda_device,
        "emulated": context.host.emulated,
        "is_identity": is_identity,
    }


def _with_verdict(cell: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    cell["verdict"] = verdict.as_dict()
    return cell


def _measure_pair(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variant: BuiltVariant,
    backend: BackendSpec,
    batch_size: int,
    context: VerifyContext,
) -> PairOutcome:
    specs = resolve_input_specs(prepared.model_inputs, batch_size, prepared.overrides)
    requests = [
        build_worker_request(built.artifact_path, backend, context.resolved, specs, batch_size, context.protocol)  # type: ignore[arg-type]
        for built in (baseline, variant)
    ]
    policy = replace(context.policy, batch_size=batch_size)
    return run_ab_pair(
        requests[0],
        requests[1],
        policy,
        load_timeout_s=context.protocol.load_allowance_s + context.protocol.warmup_min_duration_s,
        worker_factory=context.worker_factory,
        progress=context.progress,
    )


def _larger_batch_probe(
    prepared: PreparedVariants,
    baseline: BuiltVariant,
    variant: BuiltVariant,
    backend: BackendSpec,
    context: VerifyContext,
    verdict: Verdict,
    evidence: dict[str, Any],
) -> SpeedupEstimate | None:
    """With `probe_batch_size`, a variant with fewer MACs that missed the threshold is also compared
    at that batch size; the result only adds a hint, it never changes the decision."""
    policy = context.policy
    speed_codes = {"NO_REAL_SPEEDUP", "SLOWER", "INCONCLUSIVE"}
    reduction = mac_reduction(evidence["baseline_facts"], evidence["variant_facts"])
    if (
        not policy.probe_batch_size
        or policy.probe_batch_size == policy.batch_size
        or not speed_codes & set(verdict.codes())
        or reduction is None
        or reduction < PROBE_MIN_MAC_REDUCTION
    ):
        return None
    context.progress(f"  probing {variant.recipe} at batch {policy.probe_batch_size}")
    try:
        outcome = _measure_pair(prepared, baseline, variant, backend, policy.probe_batch_size, context)
    except SpeedproofError:
        return None
    return outcome.speedup if outcome.status == "ok" else None
