"""The pruning sweep (the compare job): structured against unstructured pruning at several sparsity
levels (and 2:4 semi-structured once), each verified A/B against the baseline, so the gap between
"smaller" and "faster" shows in one table and one plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.models.sources import source_label
from harness.progress import ProgressCallback, no_progress
from harness.records.provenance import new_run_id
from harness.records.run_record import Record
from harness.records.store import check_writable_folder, kept_run_folder, write_record
from harness.variants.preparation import prepare_variants
from harness.verdict.policy import target_policy
from harness.verdict.rules import mac_reduction
from harness.verdict.verify import ModelOnTarget, VerifyContext, verification_record, verify_prepared
from targets.errors import UsageError
from targets.runners.base import Runner
from targets.runners.choose import runner_for
from targets.runners.compatibility import resolve_target

DEFAULT_SPARSITIES = (0.3, 0.5, 0.7, 0.9)
SEMI_STRUCTURED_SPARSITY = 0.5  # 2 of every 4 weights


@dataclass(frozen=True)
class CompareRequest(ModelOnTarget):
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES
    finetune_epochs: int = 0
    batch_sizes: tuple[int, ...] = ()  # also A/B at these, for each variant's speedup curve
    candidates: tuple[str, ...] = ()  # PATH[=LABEL]: files compressed elsewhere, compared beside the sweep


def compare_recipes(sparsities: tuple[float, ...], finetune_epochs: int = 0) -> list[tuple[str, float, str]]:
    """(kind, sparsity, recipe) for every point of the comparison."""
    if not sparsities:
        raise UsageError("--sparsity needs at least one level, e.g. 0.3,0.5,0.7,0.9")
    for level in sparsities:
        if not 0.0 < level < 1.0:
            raise UsageError(f"--sparsity levels must lie strictly between 0 and 1, got {level:g}")
    if len(set(sparsities)) != len(sparsities):
        raise UsageError(f"--sparsity has a level twice: {', '.join(f'{s:g}' for s in sparsities)}")
    suffix = f":finetune={finetune_epochs}" if finetune_epochs else ""
    points = []
    for level in sorted(sparsities):
        points.append(("structured", level, f"structured:{level:g}{suffix}"))
        points.append(("unstructured", level, f"unstructured:{level:g}{suffix}"))
    points.append(("semi-structured", SEMI_STRUCTURED_SPARSITY, f"semi-structured{suffix}"))
    return points


def run_compare(
    request: CompareRequest, progress: ProgressCallback = no_progress, runner: Runner | None = None
) -> tuple[Record, Path]:
    check_writable_folder(request.out_dir)
    runner = runner or runner_for(request.remote, request.ssh_config, request.target, progress)
    resolved = resolve_target(request.target, request.threads, runner, request.backend)
    policy = target_policy(resolved.profile, request.policy_file, cli_overrides=request.policy_overrides)
    points = compare_recipes(request.sparsities, request.finetune_epochs)
    context = VerifyContext(
        resolved, policy, runner, request.protocol, progress=progress, curve_batch_sizes=request.batch_sizes
    )
    run_id = new_run_id()
    work_dir = kept_run_folder(request.out_dir, f"compare-{source_label(request.model)}", run_id)
    recipes = tuple(recipe for _, _, recipe in points)
    prepared = prepare_variants(
        request.model,
        recipes,
        request.input_shapes,
        resolved,
        runner,
        work_dir,
        progress,
        candidate_texts=request.candidates,
        inputs=request.inputs,
    )
    cells = verify_prepared(prepared, context)
    labels = [variant.recipe for variant in prepared.variants if variant.candidate is not None]
    cell_dicts = [cell.as_dict() for cell in cells]
    sweep = {
        "model": prepared.source.name,
        "points": [  # one sweep per backend (--backend onnxruntime,openvino), each against its own baseline
            {**point, "backend": backend.name}
            for backend in resolved.profile.backends
            for point in _points(points, [cell for cell in cell_dicts if cell["backend"] == backend.name], labels)
        ],
    }
    verified = verification_record("compare", context, run_id, request.model, prepared, cells, work_dir)
    record = verified.with_section("compare", sweep).as_dict()
    path = write_record(record, request.out_dir, label=f"compare-{prepared.source.name}")
    return record, path


def _points(
    points: list[tuple[str, float, str]], cells: list[dict[str, Any]], candidate_labels: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """One point per recipe of the sweep, then one per candidate (at the share of its weights that are zero)."""
    by_recipe = {cell["variant"]: cell for cell in cells if not cell.get("reference")}
    baseline = next(cell for cell in cells if cell.get("reference"))
    base_facts = baseline.get("artifact") or {}
    out = []
    candidates = [
        ("candidate", _zero_share(by_recipe[label].get("artifact") or {}), label) for label in candidate_labels
    ]
    for kind, level, recipe in [*points, *candidates]:
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


def _zero_share(facts: dict[str, Any]) -> float:
    """The share of a file's weights that are zero: where a candidate stands on the sparsity axis."""
    return round(1 - facts["nonzero_params"] / facts["params"], 4) if facts.get("params") else 0.0
