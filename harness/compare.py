"""`speedproof compare`: structured against unstructured pruning at several sparsity levels (and
2:4 semi-structured once), each measured A/B against the baseline, so the gap between "smaller"
and "faster" shows in one table and one plot."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SpeedproofError
from harness.policy import build_policy
from harness.protocol import MeasurementProtocol
from harness.provenance import new_run_id
from harness.results_store import Record, write_record
from harness.variants_run import prepare_variants
from harness.verdict import mac_reduction
from harness.verify import ProgressCallback, VerifyContext, no_progress, verification_record, verify_prepared
from targets.compatibility import resolve_target_for_host
from targets.host import HostFingerprint, fingerprint_host

DEFAULT_SPARSITIES = (0.3, 0.5, 0.7, 0.9)
SEMI_STRUCTURED_SPARSITY = 0.5  # 2 of every 4 weights


@dataclass(frozen=True)
class CompareRequest:
    model: str
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES
    finetune_epochs: int = 0
    target: str | None = None
    threads: int | None = None
    input_shapes: tuple[str, ...] = ()
    policy_file: Path | None = None
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    protocol: MeasurementProtocol = field(default_factory=MeasurementProtocol)
    out_dir: Path = Path("results")


def compare_recipes(sparsities: tuple[float, ...], finetune_epochs: int = 0) -> list[tuple[str, float, str]]:
    """(kind, sparsity, recipe) for every point of the comparison."""
    if not sparsities:
        raise SpeedproofError("--sparsity needs at least one level, e.g. 0.3,0.5,0.7,0.9")
    for level in sparsities:
        if not 0.0 < level < 1.0:
            raise SpeedproofError(f"--sparsity levels must lie strictly between 0 and 1, got {level:g}")
    if len(set(sparsities)) != len(sparsities):
        raise SpeedproofError(f"--sparsity has a level twice: {', '.join(f'{s:g}' for s in sparsities)}")
    suffix = f":finetune={finetune_epochs}" if finetune_epochs else ""
    points = []
    for level in sorted(sparsities):
        points.append(("structured", level, f"structured:{level:g}{suffix}"))
        points.append(("unstructured", level, f"unstructured:{level:g}{suffix}"))
    points.append(("semi-structured", SEMI_STRUCTURED_SPARSITY, f"semi-structured{suffix}"))
    return points


def run_compare(
    request: CompareRequest, progress: ProgressCallback = no_progress, host: HostFingerprint | None = None
) -> tuple[Record, Path]:
    host = host or fingerprint_host()
    resolved = resolve_target_for_host(request.target, request.threads, host)
    policy = build_policy(resolved.profile.policy, request.policy_file, request.policy_overrides)
    points = compare_recipes(request.sparsities, request.finetune_epochs)
    context = VerifyContext(resolved, policy, host, request.protocol, progress=progress)
    run_id = new_run_id()
    with tempfile.TemporaryDirectory(prefix="speedproof-compare-") as work_dir:
        prepared = prepare_variants(
            request.model,
            tuple(recipe for _, _, recipe in points),
            request.input_shapes,
            resolved,
            Path(work_dir),
            progress,
        )
        cells = verify_prepared(prepared, context)
    record = verification_record("compare", host, context, run_id, request.model, prepared, cells)
    record["compare"] = {"model": prepared.source.name, "points": _points(points, cells)}
    path = write_record(record, request.out_dir, label=f"compare-{prepared.source.name}")
    return record, path


def _points(points: list[tuple[str, float, str]], cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_recipe = {cell["variant"]: cell for cell in cells if not cell.get("reference")}
    baseline = next(cell for cell in cells if cell.get("reference"))
    base_facts = baseline.get("artifact") or {}
    out = []
    for kind, level, recipe in points:
        cell = by_recipe[recipe]
        facts = cell.get("artifact") or {}
        base_zipped, zipped = base_facts.get("zipped_bytes"), facts.get("zipped_bytes")
        out.append(
            {
                "kind": kind,
                "sparsity": level,
                "recipe": recipe,
                "speedup": cell.get("speedup"),
                "zipped_reduction": base_zipped / zipped if base_zipped and zipped else None,
                "mac_reduction": mac_reduction(base_facts, facts or None),
                "decision": (cell.get("verdict") or {}).get("decision"),
                "reasons": [reason["code"] for reason in (cell.get("verdict") or {}).get("reasons", [])],
            }
        )
    return out


def compare_table(record: dict[str, Any]) -> str:
    """kind, sparsity, size and MAC reductions, speedup [CI], decision: one row per point."""
    from tabulate import tabulate

    from harness.report_table import speedup_text

    rows = []
    for point in record["compare"]["points"]:
        rows.append(
            [
                point["kind"],
                f"{point['sparsity']:.0%}",
                f"{point['zipped_reduction']:.2f}x" if point["zipped_reduction"] else "-",
                f"{point['mac_reduction']:.2f}x" if point["mac_reduction"] else "-",
                speedup_text(point["speedup"]),
                point["decision"] or "-",
                " ".join(point["reasons"]),
            ]
        )
    headers = ["kind", "sparsity", "zipped smaller", "MACs fewer", "speedup [CI]", "decision", "reasons"]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right")
