"""`speedproof variants`: resolve the model source and the target, build every recipe's artifact
with its facts and quality, and write the artifacts and a result record. `speedproof bench
--recipes` prepares its variants through the same `prepare_variants`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.onnx_file import read_model_inputs
from harness.errors import SpeedproofError
from harness.inputs import ModelInput, resolve_input_specs, shape_overrides
from harness.model_data import DATA_KINDS
from harness.model_sources import ResolvedSource, is_onnx_file_source, resolve_model_source
from harness.provenance import new_run_id, record_header
from harness.recipes import check_recipes_apply, parse_recipe_list
from harness.results_store import Record, write_record
from harness.variants import BuiltVariant, ProgressCallback, VariantBuilder
from targets.compatibility import resolve_target_for_host
from targets.host import HostFingerprint, fingerprint_host
from targets.profiles import ResolvedProfile

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _no_progress(message: str) -> None:
    pass


@dataclass(frozen=True)
class PreparedVariants:
    source: ResolvedSource
    model_inputs: list[ModelInput]
    overrides: dict[str | None, tuple[int, ...]]
    variants: list[BuiltVariant]


def prepare_variants(
    model: str,
    recipe_texts: tuple[str, ...],
    input_shapes: tuple[str, ...],
    resolved: ResolvedProfile,
    work_dir: Path,
    progress: ProgressCallback = _no_progress,
) -> PreparedVariants:
    """Parse recipes (before any slow export), resolve the source, build every variant into
    `work_dir/artifacts`. Errors about the whole run raise; one recipe's failure is recorded."""
    recipes = parse_recipe_list(recipe_texts)
    check_recipes_apply(recipes, source_is_torch=not is_onnx_file_source(model), source_name=model)
    overrides = shape_overrides(list(input_shapes))
    progress(f"preparing {model}")
    source = resolve_model_source(model, overrides, work_dir, progress)
    model_inputs = read_model_inputs(source.model)
    if source.kind == "onnx-file":
        _check_shapes_resolve(model_inputs, overrides)
    else:
        overrides = {}  # exported with only the batch axis dynamic: the graph has every other dim
    builder = VariantBuilder(
        source=source,
        model_inputs=model_inputs,
        overrides=overrides,
        artifact_dir=work_dir / "artifacts",
        quality_backend=resolved.profile.backends[0],
        threads=resolved.threads,
        progress=progress,
    )
    return PreparedVariants(source, model_inputs, overrides, builder.build_all(recipes))


def _check_shapes_resolve(model_inputs: list[ModelInput], overrides: dict[str | None, tuple[int, ...]]) -> None:
    """Raise the --input-shape error now if a non-batch dim cannot be resolved."""
    first_dims = [model_input.dims[0] for model_input in model_inputs if model_input.dims]
    declared_batch = next((dim for dim in first_dims if isinstance(dim, int)), 1)
    resolve_input_specs(model_inputs, declared_batch, overrides)


def model_source_entry(spec: str, prepared: PreparedVariants) -> dict[str, Any]:
    source = prepared.source
    return {
        "spec": spec,
        "kind": source.kind,
        "latency_only": source.latency_only,
        "inputs": [model_input.as_dict() for model_input in prepared.model_inputs],
        "provides": {kind: kind in source.provides for kind in DATA_KINDS},
    }


@dataclass(frozen=True)
class VariantsRequest:
    model: str
    recipes: tuple[str, ...]
    target: str | None = None
    threads: int | None = None
    input_shapes: tuple[str, ...] = ()
    out_dir: Path = Path("results")


def run_variants(
    request: VariantsRequest, progress: ProgressCallback = _no_progress, host: HostFingerprint | None = None
) -> tuple[Record, Path]:
    """Build the variants into a new folder under `out_dir` and write the record beside it."""
    host = host or fingerprint_host()
    resolved = resolve_target_for_host(request.target, request.threads, host)
    run_id = new_run_id()
    name = Path(request.model).stem if is_onnx_file_source(request.model) else request.model
    label = "variants-" + _UNSAFE_NAME_CHARS.sub("_", name)
    work_dir = request.out_dir / f"{label}-{run_id[:8]}"
    if work_dir.exists():
        raise SpeedproofError(f"{work_dir} already exists; it is never overwritten")
    prepared = prepare_variants(request.model, request.recipes, request.input_shapes, resolved, work_dir, progress)
    record: Record = {
        **record_header("variants", host, resolved, run_id),
        "model_source": model_source_entry(request.model, prepared),
        "artifact_dir": str((work_dir / "artifacts").resolve()),
        "variants": [variant.as_dict() for variant in prepared.variants],
    }
    return record, write_record(record, request.out_dir, label=label)
