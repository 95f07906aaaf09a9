"""Typed result cells: what one (variant, backend, batch) measurement or verdict produced, built in
one place and serialised to the record's JSON by `as_dict`. A failed or skipped cell has one
constructor each, so no command writes a cell (or a verdict) by hand."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from harness.verdict.reasons import Verdict
from targets.errors import FailureKind, TextEnum

NOT_MEASURED = "-"  # backend and batch size of a cell that never reached a backend


class CellStatus(TextEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CellKey:
    """What a cell measures; `variant` is the recipe string exactly as written."""

    model: str
    variant: str
    backend: str
    batch_size: int | str  # NOT_MEASURED for a cell that never reached a backend


def _identity_fields(
    key: CellKey,
    provider: str | None,
    status: CellStatus,
    error: str | None,
    artifact: dict[str, Any] | None,
    quality: dict[str, Any] | None,
) -> dict[str, Any]:
    """The fields every measured or failed cell starts with, in record order."""
    return {
        "model": key.model,
        "variant": key.variant,
        "backend": key.backend,
        "provider": provider,
        "batch_size": key.batch_size,
        "status": str(status),
        "error": error,
        "artifact": artifact,
        "quality": quality,
    }


@dataclass(frozen=True)
class Measurement:
    """One-shot timing of a cell (bench): the summary and every iteration."""

    latency_ms: dict[str, float]
    cv: float
    iterations: int
    duration_s: float
    throughput_per_s: float
    cold_start_ms: dict[str, float] | None
    memory: dict[str, int] | None
    latencies_ns: list[int]
    clock: str = "host"  # host perf_counter, or a device's events (device-kernel, device-end-to-end)
    runtime: dict[str, Any] | None = None  # what the backend decided on load (which 2:4 layers run sparse)


@dataclass(frozen=True)
class BenchCell:
    key: CellKey
    provider: str | None
    status: CellStatus
    error: str | None = None
    artifact: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    measurement: Measurement | None = None
    warnings: tuple[str, ...] = ()
    failure_kind: FailureKind | None = None  # why a failed cell failed (fell_back, crashed, hung, error)

    @classmethod
    def failed(
        cls,
        key: CellKey,
        provider: str | None,
        error: str,
        artifact: Any = None,
        quality: Any = None,
        kind: FailureKind = FailureKind.ERROR,
    ) -> BenchCell:
        return cls(key, provider, CellStatus.FAILED, error, artifact, quality, failure_kind=kind)

    def as_dict(self) -> dict[str, Any]:
        measured = self.measurement
        data: dict[str, Any] = {
            **_identity_fields(self.key, self.provider, self.status, self.error, self.artifact, self.quality),
            "failure_kind": None if self.failure_kind is None else str(self.failure_kind),
            "latency_ms": measured.latency_ms if measured else None,
            "cv": measured.cv if measured else None,
            "iterations": measured.iterations if measured else 0,
            "duration_s": measured.duration_s if measured else None,
            "throughput_per_s": measured.throughput_per_s if measured else None,
            "cold_start_ms": measured.cold_start_ms if measured else None,
            "memory": measured.memory if measured else None,
            "clock": measured.clock if measured else None,
            "runtime": measured.runtime if measured else None,
            "warnings": list(self.warnings),
        }
        if measured:
            data["latencies_ns"] = measured.latencies_ns
        return data


@dataclass(frozen=True)
class GatePlacement:
    """Where a gate cell belongs: its check, its target, and whether its variant is required."""

    check: int
    target: str
    required: bool
    remote: str | None = None  # ssh://... or a cluster's worker, when the check was measured on another machine
    host: dict[str, Any] | None = None  # that machine's fingerprint (the record's header has this host's)


@dataclass(frozen=True)
class VerdictCell:
    """One variant's A/B comparison against its baseline and its verdict (verify, gate, compare);
    the baseline's own cell is the `reference` and has no verdict."""

    key: CellKey
    provider: str | None
    status: CellStatus
    error: str | None = None
    artifact: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    speedup: dict[str, Any] | None = None
    verdict: Verdict | None = None
    ab: dict[str, Any] | None = None
    latency_ms: dict[str, float] | None = None
    memory: dict[str, int] | None = None
    warnings: tuple[str, ...] = ()
    reference: bool = False
    larger_batch_speedup: dict[str, Any] | None = None
    throughput_speedup: dict[str, Any] | None = None  # policy throughput_batch_size: the second requirement
    batch_curve: list[dict[str, Any]] | None = None  # verify --batch-sizes: the speedup at each
    placement: GatePlacement | None = None
    skip_reason: str | None = None
    # a reference cell on a second backend: its baseline A/B against the first backend's (harness.verdict.verify)
    runtime_switch: dict[str, Any] | None = None
    # a generative decoder's cell: each phase's A/B (prefill@N, ttft@N, decode@N), the judged one also above
    phases: dict[str, dict[str, Any]] | None = None

    @classmethod
    def failed(
        cls,
        key: CellKey,
        error: str,
        reference: bool = False,
        verdict: Verdict | None = None,
        placement: GatePlacement | None = None,
    ) -> VerdictCell:
        """A cell that produced no measurement; a variant's carries a REJECT (FAILED) verdict."""
        if verdict is None and not reference:
            verdict = Verdict.failed(error)
        return cls(key, None, CellStatus.FAILED, error, verdict=verdict, reference=reference, placement=placement)

    @classmethod
    def skipped(cls, key: CellKey, reason: str, placement: GatePlacement) -> VerdictCell:
        """A cell of a target this host cannot run."""
        return cls(key, None, CellStatus.SKIPPED, placement=placement, skip_reason=reason)

    def placed(self, placement: GatePlacement) -> VerdictCell:
        return replace(self, placement=placement)

    def as_dict(self) -> dict[str, Any]:
        placement = self.placement
        if self.status == CellStatus.SKIPPED:
            assert placement is not None
            return {
                "check": placement.check,
                "target": placement.target,
                "model": self.key.model,
                "variant": self.key.variant,
                "backend": self.key.backend,
                "batch_size": self.key.batch_size,
                "status": str(self.status),
                "skipped": self.skip_reason,
                "required": placement.required,
                "verdict": None,
            }
        quality = self.quality or {}
        data: dict[str, Any] = {
            **_identity_fields(self.key, self.provider, self.status, self.error, self.artifact, self.quality),
            "accuracy": quality.get("accuracy") if quality.get("metric") == "accuracy" else None,
            "fidelity": quality.get("top1_agreement") if quality.get("metric") == "fidelity" else None,
            "speedup": self.speedup,
            "verdict": self.verdict.as_dict() if self.verdict else None,
            "ab": self.ab,
            "latency_ms": self.latency_ms,
            "memory": self.memory,
            "warnings": list(self.warnings),
        }
        if self.reference:
            data["reference"] = True
        if self.larger_batch_speedup is not None:
            data["larger_batch_speedup"] = self.larger_batch_speedup
        if self.throughput_speedup is not None:
            data["throughput_speedup"] = self.throughput_speedup
        if self.batch_curve is not None:
            data["batch_curve"] = self.batch_curve
        if self.runtime_switch is not None:
            data["runtime_switch"] = self.runtime_switch
        if self.phases is not None:
            data["phases"] = self.phases
        if placement is not None:
            data.update(check=placement.check, target=placement.target, required=placement.required)
            if placement.remote is not None:
                data["remote"] = placement.remote
            if placement.host is not None:
                data["host"] = placement.host
        return data
