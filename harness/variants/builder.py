"""Build the variants of one baseline: for each recipe, transform (torch level, then ONNX level),
export, check, describe the artifact by its facts, and evaluate its quality on the target's
backend. A recipe that fails is recorded with its reason; the others still build."""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from exporters.artifacts import artifact_at
from exporters.onnx_transforms import copy_model
from exporters.torch_to_onnx import check_outputs_match
from harness.models.data import TorchModel
from harness.models.sources import ResolvedSource
from harness.models.torch_sources import export_torch_model
from harness.models.user_data import UserData
from harness.progress import ProgressCallback
from harness.recipes.apply_torch import apply_torch_steps, copy_torch_model
from harness.recipes.catalogue import RecipeStep
from harness.recipes.grammar import Recipe, parse_recipe
from harness.records.store import safe_file_name
from harness.variants.candidates import LoadedCandidate
from harness.variants.quality import (
    EVALUATION_BATCH,
    QualityBackend,
    accuracy,
    data_feeds,
    fidelity,
    generated_feeds,
    is_class_scores,
    top1_accuracy,
)
from targets.errors import BackendFellBack, FailureKind, SpeedproofError
from targets.inputs import ModelInput
from targets.profiles import BackendSpec

CALIBRATION_BATCH = 8


@dataclass
class BuiltVariant:
    """One recipe's outcome: its artifact and facts, or why it failed."""

    recipe: str
    status: str = "failed"  # "ok" | "failed"
    error: str | None = None
    artifact_path: Path | None = None
    artifact: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    build_s: float | None = None
    # FELL_BACK when evaluating quality found the backend running elsewhere than asked
    failure_kind: FailureKind = FailureKind.ERROR
    candidate: dict[str, Any] | None = None  # a model the user made elsewhere: where it came from, what made it
    # several backends in one run: quality on each further backend (against the baseline there), or why
    # it could not be evaluated there (error, failure kind)
    quality_on: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_on: dict[str, tuple[str, FailureKind]] = field(default_factory=dict)

    def on_backend(self, backend: str) -> BuiltVariant:
        """This variant as the cells of `backend` see it: its quality there, or failed when it could not be
        evaluated there. The first backend's (the build's own) is the variant itself."""
        if backend in self.failed_on:
            error, kind = self.failed_on[backend]
            return replace(self, status="failed", error=error, failure_kind=kind)
        if backend in self.quality_on:
            return replace(self, quality=self.quality_on[backend])
        return self

    @property
    def is_identity_control(self) -> bool:
        """The `identity` recipe, or a candidate that is the baseline file itself: never to be accepted."""
        if self.candidate is not None:
            return bool(self.candidate.get("same_as_baseline"))
        try:
            return parse_recipe(self.recipe).is_identity
        except SpeedproofError:
            return False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "status": self.status,
            "error": self.error,
            "artifact": self.artifact,
            "quality": self.quality,
            "steps": self.steps,
            "warnings": self.warnings,
            "build_s": self.build_s,
            **({"candidate": self.candidate} if self.candidate is not None else {}),
        }


@dataclass
class VariantBuilder:
    """Everything the recipes of one run share: the source, where artifacts go, how quality is
    evaluated (backend and threads of the target), and the baseline's reference outputs."""

    source: ResolvedSource
    model_inputs: list[ModelInput]
    overrides: dict[str | None, tuple[int, ...]]
    artifact_dir: Path
    quality: QualityBackend
    progress: ProgressCallback
    artifact_kind: str = "onnx"  # "pt2": torch.export programs, for the torch backend
    data: UserData | None = None  # --data: quality (and the timed feed) on the user's inputs
    calibration_data: UserData | None = None  # --calibration-data, else --data
    metric_fn: str | None = None  # --metric-fn: the user's task metric on the outputs for --data
    output_names: tuple[str, ...] = ()  # the baseline's, given to a metric function for every variant
    mac_shapes: dict[str, tuple[int, ...]] | None = None  # each input's shape at batch 1, for MACs
    _baseline_path: Path | None = None
    _baseline_outputs: list[list[np.ndarray]] | None = None
    _fidelity_feeds: list[dict[str, np.ndarray]] | None = None

    def build_all(self, recipes: list[Recipe]) -> list[BuiltVariant]:
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        built = []
        for index, recipe in enumerate(recipes):
            self.progress(f"variant [{index + 1}/{len(recipes)}] {recipe.text}")
            built.append(self.build(recipe, index))
        return built

    def build(self, recipe: Recipe, index: int) -> BuiltVariant:
        variant = BuiltVariant(recipe.text)
        started = time.monotonic()
        try:
            stem = self.artifact_dir / f"{index:02d}-{safe_file_name(recipe.text)}"
            if self.artifact_kind == "pt2":
                variant.artifact_path = self._make_program(recipe, stem.with_name(f"{stem.name}.pt2"), variant)
            else:
                variant.artifact_path = self._make_artifact(recipe, stem.with_name(f"{stem.name}.onnx"), variant)
            if recipe.is_baseline:
                self._baseline_path = variant.artifact_path
            artifact = artifact_at(variant.artifact_path)
            # the baseline ONNX file was loaded and checked when the source was resolved
            reuse_source = recipe.is_baseline and artifact.kind.name == "onnx"
            parsed = self.source.model if reuse_source else artifact.kind.load_checked(artifact.path)
            variant.artifact = artifact.facts(parsed, self.mac_shapes)
            variant.quality = self._quality(variant.artifact_path, is_reference=recipe.is_baseline)
            variant.status = "ok"
        except BackendFellBack as error:
            variant.error, variant.failure_kind = str(error), FailureKind.FELL_BACK
        except SpeedproofError as error:
            variant.error = str(error)
        except Exception as error:  # a bug or a library failure in one recipe must not stop the others
            variant.error = f"{type(error).__name__}: {error} (at {_last_frame(error)})"
        if not variant.ok:
            self._remove_partial_files(index, variant)
        variant.build_s = round(time.monotonic() - started, 2)
        return variant

    def build_candidate(self, candidate: LoadedCandidate) -> BuiltVariant:
        """A candidate measured like a built variant: its facts and quality, on the target's backend."""
        variant = BuiltVariant(candidate.spec.label, candidate=candidate.entry, artifact_path=candidate.artifact_path)
        if candidate.entry["same_as_baseline"]:
            variant.warnings.append(
                f"candidate {candidate.spec.source} is the baseline file itself (same sha256): it is judged as an "
                "identity control, which is never accepted"
            )

        def describe() -> None:
            variant.artifact = artifact_at(candidate.artifact_path).facts(candidate.parsed, self.mac_shapes)
            variant.quality = self._quality(candidate.artifact_path, is_reference=False)

        return self._measured(variant, describe)

    def build_module(self, label: str, model: TorchModel, index: int) -> BuiltVariant:
        """A torch model transformed outside the recipes (one layer pruned alone, for sensitivity),
        exported and measured like a built variant; ONNX artifacts only."""
        variant = BuiltVariant(label)

        def describe() -> None:
            if self.artifact_kind != "onnx":
                raise SpeedproofError(
                    f"{label}: only ONNX artifacts are built from a transformed module; measure with "
                    "--backend onnxruntime"
                )
            path = self.artifact_dir / f"{index:02d}-{safe_file_name(label)}.onnx"
            variant.artifact_path = export_torch_model(model, path)
            artifact = artifact_at(variant.artifact_path)
            variant.artifact = artifact.facts(artifact.kind.load_checked(artifact.path), self.mac_shapes)
            variant.quality = self._quality(variant.artifact_path, is_reference=False)

        return self._measured(variant, describe, index)

    def _measured(self, variant: BuiltVariant, describe: Callable[[], None], index: int | None = None) -> BuiltVariant:
        """Run `describe` (facts and quality into `variant`); its error is the variant's, and with
        `index` a failed variant's partial files are removed."""
        started = time.monotonic()
        try:
            describe()
            variant.status = "ok"
        except BackendFellBack as error:
            variant.error, variant.failure_kind = str(error), FailureKind.FELL_BACK
        except SpeedproofError as error:
            variant.error = str(error)
        if not variant.ok and index is not None:
            self._remove_partial_files(index, variant)
        variant.build_s = round(time.monotonic() - started, 2)
        return variant

    def quality_on_backend(self, backend: BackendSpec, variants: list[BuiltVariant]) -> None:
        """Evaluate every built variant's quality again on `backend` (its fidelity against the baseline
        there): a runtime can lose accuracy another keeps (int8 sums that saturate). The first variant
        is the baseline."""
        saved = self.quality, self._baseline_outputs
        self.quality, self._baseline_outputs = replace(self.quality, backend=backend), None
        try:
            for index, variant in enumerate(variants):
                if not variant.ok or variant.artifact_path is None or variant.quality is None:
                    continue
                self.progress(f"quality of {variant.recipe} on {backend.name}")
                try:
                    variant.quality_on[backend.name] = self._quality(variant.artifact_path, is_reference=index == 0)
                except BackendFellBack as error:
                    variant.failed_on[backend.name] = (str(error), FailureKind.FELL_BACK)
                except SpeedproofError as error:
                    variant.failed_on[backend.name] = (str(error), FailureKind.ERROR)
        finally:
            self.quality, self._baseline_outputs = saved

    def _remove_partial_files(self, index: int, variant: BuiltVariant) -> None:
        """A failed variant leaves no half-made artifact behind (the source file is never touched)."""
        sources = {path.resolve() for path in (self.source.onnx_path, self.source.program_path) if path is not None}
        for leftover in self.artifact_dir.glob(f"{index:02d}-*"):
            if leftover.resolve() not in sources:
                leftover.unlink(missing_ok=True)
        variant.artifact_path = None

    def _make_artifact(self, recipe: Recipe, path: Path, variant: BuiltVariant) -> Path:
        if recipe.is_baseline:
            # a user's ONNX file is measured where it is (it may have external data beside it)
            if self.source.kind == "onnx-file":
                return self.source.onnx_path
            return _link_or_copy(self.source.onnx_path, path)
        if recipe.is_identity:
            # the baseline's graph and weights in a file of its own: exporting the module again would
            # cost seconds (a resnet18: 4-8 s) to make the same graph
            return copy_model(self.source.onnx_path, path)
        torch_steps, onnx_steps = recipe.torch_steps(), recipe.onnx_steps()
        current = self.source.onnx_path
        transformed = None
        if torch_steps:
            transformed, variant.steps = apply_torch_steps(self.source.torch_model(), torch_steps)
            current = export_torch_model(transformed, path if not onnx_steps else _step_path(path, 0))
        for number, step in enumerate(onnx_steps, start=1):
            destination = path if number == len(onnx_steps) else _step_path(path, number)
            self._apply_onnx_step(step, current, destination, variant)
            if current != self.source.onnx_path and current != destination:
                current.unlink(missing_ok=True)  # an intermediate of this chain
            current = destination
        if [step.name for step in onnx_steps] == ["fp16"] and self.source.is_torch:
            # a float16 artifact still computes the same function: hold it to float16's tolerance
            transformed = transformed or self.source.torch_model()
            names = [model_input.name for model_input in self.model_inputs]
            check_outputs_match(transformed.module, transformed.example_inputs, current, names, precision="float16")
        return current

    def _make_program(self, recipe: Recipe, path: Path, variant: BuiltVariant) -> Path:
        """The variant as a torch.export program: the recipe's torch-level steps, then `fp16` as a
        cast of the module (the other ONNX-level steps have no torch form). A program source is its
        own baseline, measured where it is."""
        from exporters.torch_program import export_program, program_example_inputs
        from targets.backends.torch.programs import load_program

        onnx_steps = [step.name for step in recipe.onnx_steps()]
        if [name for name in onnx_steps if name != "fp16"]:
            raise SpeedproofError(
                f"recipe {recipe.text!r}: its steps {', '.join(onnx_steps)} work on ONNX graphs and the torch "
                "backend runs torch.export programs; measure it with --backend onnxruntime"
            )
        names = [model_input.name for model_input in self.model_inputs]
        program_path = self.source.program_path
        if program_path is not None:
            if recipe.is_baseline:
                return program_path
            if recipe.is_identity:
                shutil.copyfile(program_path, path)
                return path
            program, _ = load_program(program_path)
            module: Any = program.module()
            examples = program_example_inputs(program, names, self.overrides)
        else:
            torch_model = self.source.torch_model()
            if recipe.torch_steps():
                torch_model, variant.steps = apply_torch_steps(torch_model, recipe.torch_steps())
            elif recipe.is_identity or onnx_steps:
                torch_model = copy_torch_model(torch_model)  # a module of its own, never the baseline's
            module, examples = torch_model.module, torch_model.example_inputs
        if onnx_steps:  # fp16
            module = module.half()
            examples = tuple(example.half() if example.is_floating_point() else example for example in examples)
            variant.steps.append({"step": "fp16"})
        return export_program(module, examples, path, names)

    def _apply_onnx_step(self, step: RecipeStep, source: Path, destination: Path, variant: BuiltVariant) -> None:
        assert step.kind.apply_onnx is not None, f"not an ONNX-level step: {step.name}"
        notes = step.kind.apply_onnx(step, source, destination, _OnnxBuild(self, variant))
        variant.steps.append({"step": step.name, **dict(step.options), **(notes or {})})

    def calibration_feeds(self, samples: int, variant: BuiltVariant) -> list[dict[str, np.ndarray]]:
        """Representative inputs for calibration: --calibration-data, else --data, else the source's
        data, else generated (with a warning)."""
        given = self.calibration_data or self.data
        if given is not None:
            if given.samples < samples:
                variant.warnings.append(f"asked for {samples} calibration samples, {given.source} has {given.samples}")
            return given.batches(self.model_inputs, CALIBRATION_BATCH, self.overrides, limit=samples)
        has_data = "calibration_data" in self.source.provides
        representative = self.source.torch_model().calibration_inputs() if has_data else None
        if representative is not None:
            if len(representative) < samples:
                variant.warnings.append(
                    f"asked for {samples} calibration samples, the source has {len(representative)}"
                )
            return data_feeds(self.model_inputs, representative[:samples], CALIBRATION_BATCH)
        variant.warnings.append(
            f"calibrated on {samples} generated inputs because neither --data, --calibration-data nor the source "
            "gives calibration data; scales fitted to random inputs may not suit real data"
        )
        return generated_feeds(self.model_inputs, self.overrides, samples)

    def _quality(self, path: Path, is_reference: bool) -> dict[str, Any]:
        if self.data is not None:
            return self._quality_on_data(path, is_reference, self.data)
        if "eval_data" in self.source.provides:
            eval_data = self.source.torch_model().eval_data
            assert eval_data is not None
            return accuracy(self.quality, path, self.model_inputs, eval_data)
        if self._fidelity_feeds is None:
            self._fidelity_feeds = generated_feeds(self.model_inputs, self.overrides)
        return self._fidelity(path, is_reference, "generated")

    def _quality_on_data(self, path: Path, is_reference: bool, data: UserData) -> dict[str, Any]:
        """The task metric, else accuracy against the labels for class scores, else fidelity; all on
        the user's data."""
        if self.metric_fn is not None:
            from harness.models.user_functions import task_metric

            # one sample per call, so outputs whose size depends on the input (detections) stay apart
            feeds = data.batches(self.model_inputs, 1, self.overrides)
            outputs = self.quality.all_outputs(path, feeds)
            score = task_metric(self.metric_fn, outputs, self.output_names, data.labels, self.artifact_dir)
            return {"metric": "task", "score": score, "metric_fn": self.metric_fn, "samples": data.samples}
        if self._fidelity_feeds is None:
            self._fidelity_feeds = data.batches(self.model_inputs, EVALUATION_BATCH, self.overrides)
        labels = data.labels
        if labels is not None and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
            first = self.quality.first_output(path, self._fidelity_feeds)
            if is_class_scores(first):
                return {**top1_accuracy(first, labels), "data": data.source}
        quality = self._fidelity(path, is_reference, "data")
        if labels is not None and not quality.get("reference"):
            quality["note"] = (
                "the labels were not used: they are not one class index per sample for class scores; a "
                "--metric-fn judges the outputs against them"
            )
        return quality

    def _fidelity(self, path: Path, is_reference: bool, inputs: str) -> dict[str, Any]:
        """Closeness to the baseline's outputs on the fidelity feeds (computed once another variant needs it)."""
        if is_reference:
            return {"metric": "fidelity", "reference": True}
        assert self._fidelity_feeds is not None
        if self._baseline_outputs is None:
            reference = self._baseline_path or self.source.onnx_path
            self._baseline_outputs = self.quality.all_outputs(reference, self._fidelity_feeds)
        outputs = self.quality.all_outputs(path, self._fidelity_feeds)
        return fidelity(outputs, self._baseline_outputs, self.output_names, inputs)


@dataclass(frozen=True)
class _OnnxBuild:
    """What an ONNX-level step of one variant may ask of its build (calibration data)."""

    builder: VariantBuilder
    variant: BuiltVariant

    def calibration_feeds(self, samples: int) -> list[dict[str, np.ndarray]]:
        return self.builder.calibration_feeds(samples, self.variant)


def _step_path(path: Path, number: int) -> Path:
    return path.with_name(f"{path.stem}.step{number}.onnx")


def _link_or_copy(source: Path, destination: Path) -> Path:
    """A hard link where the file system allows it (zoo exports can be 100 MB), else a copy."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)
    return destination


def _last_frame(error: Exception) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown location"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"
