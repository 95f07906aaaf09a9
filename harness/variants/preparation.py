"""Prepare the variants of one run: parse the recipes, resolve the model source, and build every
recipe's artifact with its facts and quality. Every job that measures variants (bench, verify,
gate, compare, variants) prepares them here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from exporters.artifacts import artifact_at
from harness.decoders.sources import is_decoder_source
from harness.models.data import DATA_KINDS
from harness.models.sources import (
    ResolvedSource,
    is_program_source,
    resolve_model_source,
    source_holds_torch_module,
)
from harness.models.user_data import UserData, check_data_source, load_user_data, merge_overrides
from harness.progress import ProgressCallback, no_progress
from harness.recipes.grammar import Recipe, check_recipes_apply, parse_recipe_list
from harness.variants.builder import BuiltVariant, VariantBuilder
from harness.variants.candidates import candidate_folder, load_candidate, parse_candidates
from harness.variants.quality import QualityBackend
from targets.backends import backend_entry
from targets.cache_files import file_sha256
from targets.errors import SpeedproofError, UsageError
from targets.inputs import InputSettings, InputSpec, ModelInput, resolve_input_specs, shape_overrides
from targets.profiles import ResolvedProfile
from targets.runners.base import Runner


@dataclass(frozen=True)
class PreparedVariants:
    source: ResolvedSource
    model_inputs: list[ModelInput]
    overrides: dict[str | None, tuple[int, ...]]
    variants: list[BuiltVariant]
    data: UserData | None = None  # --data: also the timed feed
    data_entries: dict[str, Any] | None = None  # what the record says of --data, --calibration-data, --metric-fn

    def timed_specs(self, batch_size: int) -> list[InputSpec]:
        """The inputs of a timed cell at `batch_size`: the user's data when given, else generated."""
        specs = resolve_input_specs(self.model_inputs, batch_size, self.overrides)
        return self.data.timed_specs(specs, self.model_inputs) if self.data is not None else specs


def prepare_variants(
    model: str,
    recipe_texts: tuple[str, ...],
    input_shapes: tuple[str, ...],
    resolved: ResolvedProfile,
    runner: Runner,
    work_dir: Path,
    progress: ProgressCallback = no_progress,
    candidate_texts: tuple[str, ...] = (),
    inputs: InputSettings | None = None,
) -> PreparedVariants:
    """Parse recipes and candidates (before any slow export), resolve the source, build every variant
    into `work_dir/artifacts`, then load each candidate beside them. Errors about the whole run raise
    (a candidate that is missing or whose interface differs from the baseline's is one); one recipe's
    failure is recorded."""
    recipes = parse_recipe_list(recipe_texts)
    candidates = parse_candidates(candidate_texts, [recipe.text for recipe in recipes])
    prepared, builder = prepare_source(model, recipes, input_shapes, resolved, runner, work_dir, progress, inputs)
    # candidates are loaded and checked against the baseline's interface before the recipes are built
    # (which can take minutes): a file with other inputs is an error at once
    source = prepared.source
    baseline_file = source.program_path if builder.artifact_kind == "pt2" and source.program_path else source.onnx_path
    baseline_sha256 = file_sha256(baseline_file) if candidates else ""  # hashed once, not once per candidate
    loaded = [
        load_candidate(
            candidate,
            source,
            prepared.model_inputs,
            baseline_file,
            baseline_sha256,
            prepared.overrides,
            candidate_folder(builder.artifact_dir, len(recipes) + offset, candidate.label),
            builder.artifact_kind,
        )
        for offset, candidate in enumerate(candidates)
    ]
    variants = builder.build_all(recipes)
    for offset, candidate in enumerate(loaded):
        progress(f"candidate [{offset + 1}/{len(loaded)}] {candidate.spec.label}")
        if not variants[0].ok:
            variants.append(
                BuiltVariant(candidate.spec.label, error=f"the baseline could not be built: {variants[0].error}")
            )
        else:
            variants.append(builder.build_candidate(candidate))
    for backend in resolved.profile.backends[1:]:
        builder.quality_on_backend(backend, variants)
    return replace(prepared, variants=variants)


def prepare_source(
    model: str,
    recipes: list[Recipe],
    input_shapes: tuple[str, ...],
    resolved: ResolvedProfile,
    runner: Runner,
    work_dir: Path,
    progress: ProgressCallback = no_progress,
    inputs: InputSettings | None = None,
) -> tuple[PreparedVariants, VariantBuilder]:
    """Check that `recipes` apply to the source, resolve it, read --data and --calibration-data, and
    return the run's inputs (no variants built yet) with the builder that builds them one by one."""
    if is_decoder_source(model):
        raise UsageError(
            f"{model} is a generative decoder: `speedproof verify` times it phase by phase (prefill, time to first "
            "token, time per token); this command takes models of one forward pass so far"
        )
    source_is = "a torch.export program (no module to transform)" if is_program_source(model) else "an ONNX file"
    check_recipes_apply(recipes, source_holds_torch_module(model), source_name=model, source_is=source_is)
    overrides = shape_overrides(list(input_shapes))
    inputs = inputs or InputSettings()
    inputs.check()
    check_data_settings(inputs)
    progress(f"preparing {model}")
    source = resolve_model_source(model, overrides, work_dir, progress)
    model_inputs = inputs.apply(artifact_at(source.onnx_path).kind.model_inputs(source.model))
    if source.kind not in ("onnx-file", "program"):
        overrides = {}  # exported with only the batch axis dynamic: the graph has every other dim
    data = calibration = None
    if inputs.data is not None:
        progress(f"reading --data {inputs.data}")
        data = load_user_data(inputs.data, model_inputs, "--data", work_dir)
        overrides = merge_overrides(
            overrides, data.sample_overrides(model_inputs), model_inputs, f"--data {inputs.data}"
        )
    if inputs.calibration_data is not None:
        calibration = load_user_data(inputs.calibration_data, model_inputs, "--calibration-data", work_dir)
    if source.kind == "onnx-file" or data is not None:
        _check_shapes_resolve(model_inputs, overrides)
    backend = resolved.profile.backends[0]
    artifact_kind = backend_entry(backend.name).artifact_kind
    others = [
        other.name for other in resolved.profile.backends if backend_entry(other.name).artifact_kind != artifact_kind
    ]
    if others:
        raise UsageError(
            f"--backend {','.join(spec.name for spec in resolved.profile.backends)}: {backend.name} runs "
            f"{artifact_kind} artifacts and {', '.join(others)} another kind; backends judged in one run must run "
            "the same artifact (e.g. onnxruntime,openvino): run the others separately"
        )
    if artifact_kind == "genai-folder":
        raise UsageError(
            f"--backend {backend.name} runs generative decoders (a zoo decoder, a Hugging Face folder, an ONNX Runtime "
            f"GenAI folder); {model} is not one: measure it with --backend onnxruntime"
        )
    if artifact_kind == "pt2" and source.kind == "onnx-file":
        raise SpeedproofError(
            f"model {model!r} is an ONNX file; the {backend.name} backend runs torch.export programs built from "
            "a torch model: give a zoo name or package.module:function, or measure with --backend onnxruntime"
        )
    builder = VariantBuilder(
        source=source,
        model_inputs=model_inputs,
        overrides=overrides,
        artifact_dir=work_dir / "artifacts",
        quality=QualityBackend(runner, backend, resolved.threads),
        progress=progress,
        artifact_kind=artifact_kind,
        data=data,
        calibration_data=calibration,
        metric_fn=inputs.metric_fn,
        output_names=tuple(output.name for output in source.model.graph.output),
        mac_shapes=_mac_shapes(model_inputs, overrides),
    )
    entries = {
        "data": data.entry() if data is not None else None,
        "calibration_data": calibration.entry() if calibration is not None else None,
        "metric_fn": inputs.metric_fn,
    }
    return PreparedVariants(source, model_inputs, overrides, [], data, entries), builder


def check_data_settings(inputs: InputSettings) -> None:
    """--data, --calibration-data and --metric-fn name things that exist, and --metric-fn has data."""
    from harness.models.sources import check_function_spec

    if inputs.data is not None:
        check_data_source(inputs.data, "--data")
    if inputs.calibration_data is not None:
        check_data_source(inputs.calibration_data, "--calibration-data")
    if inputs.metric_fn is not None:
        check_function_spec(inputs.metric_fn, f"--metric-fn {inputs.metric_fn!r}")
        if inputs.data is None:
            raise SpeedproofError(
                f"--metric-fn {inputs.metric_fn}: a task metric is computed on the outputs for your data; give "
                "--data FILE.npz (with its labels) too"
            )


def _mac_shapes(
    model_inputs: list[ModelInput], overrides: dict[str | None, tuple[int, ...]]
) -> dict[str, tuple[int, ...]] | None:
    """Each input's whole shape at batch 1 (what MACs are counted at), when the shapes resolve there."""
    try:
        return {spec.name: spec.shape for spec in resolve_input_specs(model_inputs, 1, overrides)}
    except SpeedproofError:
        return None


def _check_shapes_resolve(model_inputs: list[ModelInput], overrides: dict[str | None, tuple[int, ...]]) -> None:
    """Raise the --input-shape error now if a non-batch dim cannot be resolved."""
    batch_dims = [
        item.dims[item.batch_axis]
        for item in model_inputs
        if item.batch_axis is not None and item.batch_axis < len(item.dims)
    ]
    declared_batch = next((dim for dim in batch_dims if isinstance(dim, int)), 1)
    resolve_input_specs(model_inputs, declared_batch, overrides)


def model_source_entry(spec: str, prepared: PreparedVariants) -> dict[str, Any]:
    source = prepared.source
    return {
        "spec": spec,
        "kind": source.kind,
        "latency_only": source.latency_only,
        "inputs": [model_input.as_dict() for model_input in prepared.model_inputs],
        "provides": {kind: kind in source.provides for kind in DATA_KINDS},
        **{key: value for key, value in (prepared.data_entries or {}).items() if value is not None},
    }
