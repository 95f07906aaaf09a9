"""The sensitivity job (`speedproof sensitivity`): prune each layer group of a model alone at a
structured recipe's ratio and rank the groups by the accuracy that costs; optionally (`--speed`)
A/B-verify each single-group variant against the baseline on the target, as `verify` would."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.models.sources import source_label
from harness.progress import ProgressCallback, no_progress
from harness.recipes.grammar import Recipe, parse_recipe
from harness.recipes.sensitivity import layer_sensitivities, pruned_alone, sensitivity_ratios
from harness.records.provenance import new_run_id
from harness.records.run_record import Record
from harness.records.store import check_writable_folder, kept_run_folder, write_record
from harness.variants.preparation import prepare_source
from harness.verdict.policy import target_policy
from harness.verdict.verify import ModelOnTarget, VerifyContext, reference_cell, verification_record, verify_variant
from targets.errors import UsageError
from targets.runners.base import Runner
from targets.runners.choose import runner_for
from targets.runners.compatibility import require_one_backend, resolve_target

DEFAULT_RECIPE = "structured:0.5"


@dataclass(frozen=True)
class SensitivityRequest(ModelOnTarget):
    recipe: str = DEFAULT_RECIPE
    speed: bool = False  # also A/B each single-group variant against the baseline


def probed_recipe(text: str) -> Recipe:
    """The structured recipe whose ratio, importance and round_to each group is pruned at."""
    recipe = parse_recipe(text)
    step = recipe.steps[0]
    others = set(step.options) - {"importance", "round_to"}
    if len(recipe.steps) != 1 or step.name != "structured" or others:
        raise UsageError(
            f"--recipe {text!r}: sensitivity prunes one layer group at a time with a structured recipe: "
            "structured:R[:importance=l1|l2|random][:round_to=N] (no recovery, steps or chains)"
        )
    return recipe


def run_sensitivity(
    request: SensitivityRequest, progress: ProgressCallback = no_progress, runner: Runner | None = None
) -> tuple[Record, Path]:
    recipe = probed_recipe(request.recipe)
    step = recipe.steps[0]
    assert step.value is not None
    ratio, importance, round_to = step.value, str(step.option("importance")), int(step.option("round_to"))
    check_writable_folder(request.out_dir)
    runner = runner or runner_for(request.remote, request.ssh_config, request.target, progress)
    resolved = resolve_target(request.target, request.threads, runner, request.backend)
    require_one_backend(resolved, "sensitivity")
    policy = target_policy(resolved.profile, request.policy_file, cli_overrides=request.policy_overrides)
    run_id = new_run_id()
    work_dir = kept_run_folder(request.out_dir, f"sensitivity-{source_label(request.model)}", run_id)
    prepared, builder = prepare_source(
        request.model,
        [parse_recipe("baseline"), recipe],
        request.input_shapes,
        resolved,
        runner,
        work_dir,
        progress,
        request.inputs,
    )
    model = prepared.source.torch_model()
    baseline_accuracy, found = layer_sensitivities(model, ratio, importance, round_to, progress)
    weighted = sensitivity_ratios(found, ratio)
    builder.artifact_dir.mkdir(parents=True, exist_ok=True)
    baseline = builder.build(parse_recipe("baseline"), 0)
    if not baseline.ok:
        raise UsageError(f"the baseline of {request.model} could not be built: {baseline.error}")
    prepared = replace(prepared, variants=[baseline])
    context = VerifyContext(resolved, policy, runner, request.protocol, progress=progress)
    backend = resolved.profile.backends[0]
    cells = [reference_cell(prepared, baseline, backend, policy)] if request.speed else []
    layers = []
    for rank, item in enumerate(sorted(found, key=lambda item: -item.drop), start=1):
        entry: dict[str, Any] = {
            "rank": rank,
            "layer": item.group.name,
            "layers": list(item.group.layers),
            "channels": item.group.channels,
            "accuracy": round(item.accuracy, 4),
            "drop": round(item.drop, 4),
            "params_kept": item.params_kept,
            "weighted_ratio": weighted[item.group.name],
        }
        if request.speed:
            label = f"{item.group.name} alone at {recipe.text}"
            progress(f"[{rank}/{len(found)}] A/B {label}")
            alone = replace(model, module=pruned_alone(model, item.group, ratio, importance, round_to))
            built = builder.build_module(label, alone, rank)
            cell = verify_variant(prepared, baseline, built, backend, context)
            cells.append(cell)
            entry["speedup"] = cell.speedup
            entry["decision"] = str(cell.verdict.decision) if cell.verdict else None
        layers.append(entry)
    section = {
        "model": prepared.source.name,
        "recipe": recipe.text,
        "ratio": ratio,
        "baseline_accuracy": round(baseline_accuracy, 4),
        "data": "the source's labelled test data (eval_data)",
        "layers": layers,
        "speed": request.speed,
    }
    record = verification_record("sensitivity", context, run_id, request.model, prepared, cells, work_dir)
    data = record.with_section("sensitivity", section).as_dict()
    path = write_record(data, request.out_dir, label=f"sensitivity-{prepared.source.name}")
    return data, path
