"""Candidates: compressed models the user made elsewhere (ONNX Runtime's quantizer, NNCF, Olive, a
distilled student, ...), given beside the baseline as `PATH[=LABEL]`: an `.onnx` file (with its
external data), a `.pt2` program, or `package.module:function` (loaded contained, like any user
code). Parsed and checked to exist before anything runs; after the baseline is resolved, checked
to have its interface (inputs, outputs), copied beside the record and described by what the file
says made it. They are then measured and judged exactly like a built variant."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from harness.models.sources import ResolvedSource, check_model_source, is_onnx_file_source, resolve_model_source
from harness.records.store import safe_file_name
from targets.cache_files import file_sha256
from targets.errors import InputError, SpeedproofError
from targets.inputs import ModelInput
from targets.onnx_external_data import external_data_locations

LABEL_SEPARATOR = "="
MAX_LABEL_CHARS = 80
# a label never ends like a model file: `a=b.onnx` is one file name
MODEL_SUFFIXES = (".onnx", ".pt2")


@dataclass(frozen=True)
class CandidateSpec:
    """One `--candidate`: the model source it names and the label that names it in tables and records."""

    source: str
    label: str

    @classmethod
    def parse(cls, text: str) -> CandidateSpec:
        spec = cls.parse_unchecked(text)
        try:
            check_model_source(spec.source)
        except SpeedproofError as error:
            raise InputError(f"--candidate {text!r}: {error}") from None
        return spec

    @classmethod
    def parse_unchecked(cls, text: str) -> CandidateSpec:
        """The source and label of `text`, without looking whether the source exists."""
        source, separator, label = text.rpartition(LABEL_SEPARATOR)
        # no label; or the '=' belongs to a file's or folder's name (cand/a=b.onnx, a=b/model.onnx)
        if not separator or not source or "/" in label or os.path.lexists(text) or label.endswith(MODEL_SUFFIXES):
            source, label = text, _default_label(text)
        source, label = source.strip(), label.strip()
        if not source:
            raise InputError(f"--candidate {text!r}: expected PATH[=LABEL], e.g. model_int8.onnx=int8-ort")
        if not label or len(label) > MAX_LABEL_CHARS or not label.isprintable():
            raise InputError(
                f"--candidate {text!r}: the label {label!r} must be 1-{MAX_LABEL_CHARS} printable characters"
            )
        return cls(source, label)


def _default_label(source: str) -> str:
    """A candidate's name when none is given: a file's or folder's name, else the source itself; never
    longer than a label may be (a long path must fail on what it names, not on its length)."""
    path_like = is_onnx_file_source(source) or source.endswith(".pt2") or "/" in source or Path(source).exists()
    label = (Path(source).name or source) if path_like else source
    return label if len(label) <= MAX_LABEL_CHARS else "..." + label[-(MAX_LABEL_CHARS - 3) :]


def parse_candidates(texts: tuple[str, ...], recipe_texts: list[str]) -> list[CandidateSpec]:
    """Every `--candidate`, checked before anything is loaded: each exists, and no two variants of the
    run (recipes and candidates) share a name."""
    candidates = [CandidateSpec.parse(text) for text in texts]
    taken = {text: "a recipe" for text in recipe_texts} | {"baseline": "the baseline"}
    for candidate in candidates:
        if candidate.label in taken:
            raise InputError(
                f"--candidate {candidate.source}: the label {candidate.label!r} already names "
                f"{taken[candidate.label]}; give it another with {candidate.source}=LABEL"
            )
        taken[candidate.label] = "another candidate"
    return candidates


@dataclass(frozen=True)
class LoadedCandidate:
    """A candidate resolved: the artifact to measure (a copy kept with the run) and what the record says of it."""

    spec: CandidateSpec
    artifact_path: Path
    parsed: Any  # the loaded model its kind gives (an onnx.ModelProto for ONNX)
    entry: dict[str, Any]  # the record's `candidate` object: source, path, sha256, producer, same_as_baseline


def load_candidate(
    spec: CandidateSpec,
    baseline: ResolvedSource,
    baseline_inputs: list[ModelInput],
    baseline_artifact: Path,
    baseline_sha256: str,
    overrides: dict[str | None, tuple[int, ...]],
    folder: Path,
    artifact_kind: str,
) -> LoadedCandidate:
    """Resolve `spec` into `folder` (a copy of its file and external data, or its contained export),
    and check it has the baseline's interface; a mismatch is an error naming both sides."""
    folder.mkdir(parents=True, exist_ok=True)
    where = f"candidate {spec.label!r} ({spec.source})"
    try:
        source = resolve_model_source(spec.source, overrides, folder)
    except SpeedproofError as error:
        raise InputError(f"{where}: {error}") from None
    if artifact_kind == "pt2":
        if source.program_path is None:
            raise InputError(
                f"{where}: the torch backend measures torch.export programs; give the candidate as a .pt2 file "
                "(torch.export.save) or measure with --backend onnxruntime"
            )
        original = source.program_path
        artifact_path = folder / original.name
        shutil.copyfile(original, artifact_path)
    else:
        original = source.onnx_path
        artifact_path = _copy_with_external_data(source.onnx_path, source.model, folder)
    from exporters.artifacts import artifact_at

    artifact = artifact_at(artifact_path)
    parsed = source.model if artifact.kind.name == "onnx" else artifact.kind.load_checked(artifact_path)
    check_same_interface(where, baseline_inputs, artifact.kind.model_inputs(parsed))
    if artifact.kind.name == "onnx" and artifact_at(baseline_artifact).kind.name == "onnx":
        check_same_outputs(where, baseline.model, source.model)
    sha256 = file_sha256(artifact_path)
    return LoadedCandidate(
        spec=spec,
        artifact_path=artifact_path,
        parsed=parsed,
        entry={
            "source": spec.source,
            "path": str(original.resolve()) if source.kind in ("onnx-file", "program") else None,
            "kind": source.kind,
            "sha256": sha256,
            "same_as_baseline": sha256 == baseline_sha256,
            **(_producer(source.model) if artifact.kind.name == "onnx" else {}),
        },
    )


def check_same_interface(where: str, baseline: list[ModelInput], candidate: list[ModelInput]) -> None:
    """Inputs of the same names and types, with the same fixed dims past the batch axis."""
    base = {item.name: item for item in baseline}
    mine = {item.name: item for item in candidate}
    # an input the run fixes to a constant (--input-value) may be missing: the candidate is fed without it
    base = {name: item for name, item in base.items() if name in mine or item.constant is None}
    if set(base) != set(mine):
        missing, extra = sorted(set(base) - set(mine)), sorted(set(mine) - set(base))
        parts = ([f"lacks input {', '.join(map(repr, missing))}"] if missing else []) + (
            [f"has input {', '.join(map(repr, extra))} the baseline does not"] if extra else []
        )
        raise InputError(
            f"{where}: {' and '.join(parts)}; baseline inputs: {', '.join(base)}. A candidate is measured on the "
            "baseline's inputs, so it must take the same ones"
        )
    for name, expected in base.items():
        got = mine[name]
        if got.dtype != expected.dtype:
            raise InputError(f"{where}: input {name!r} is {got.dtype}, baseline {expected.dtype}")
        if len(got.dims) != len(expected.dims) or any(
            isinstance(a, int) and isinstance(b, int) and a != b
            for index, (a, b) in enumerate(zip(got.dims, expected.dims, strict=True))
            if index != expected.batch_axis
        ):
            raise InputError(
                f"{where}: input {name!r} has shape {_dims_text(got.dims)}, baseline {_dims_text(expected.dims)}"
            )


def check_same_outputs(where: str, baseline: onnx.ModelProto, candidate: onnx.ModelProto) -> None:
    """As many outputs, each of the same rank, with equal dims where both are fixed."""
    base, mine = _output_dims(baseline), _output_dims(candidate)
    if len(base) != len(mine):
        raise InputError(f"{where}: has {len(mine)} outputs, the baseline {len(base)}")
    for position, ((name, expected), (_, got)) in enumerate(zip(base, mine, strict=True)):
        if expected is None or got is None:
            continue
        if len(expected) != len(got) or any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(expected, got, strict=True)
        ):
            raise InputError(
                f"{where}: output {position} has shape {_dims_text(got)}, the baseline's ({name!r}) "
                f"{_dims_text(expected)}"
            )


OutputDims = tuple[int | str | None, ...]


def _output_dims(model: onnx.ModelProto) -> list[tuple[str, OutputDims | None]]:
    outputs: list[tuple[str, OutputDims | None]] = []
    for value in model.graph.output:
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape"):
            outputs.append((value.name, None))
            continue
        dims = tuple(
            int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else (dim.dim_param or None)
            for dim in tensor_type.shape.dim
        )
        outputs.append((value.name, dims))
    return outputs


def _dims_text(dims: tuple[int | str | None, ...]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in dims) + "]"


def _copy_with_external_data(model_path: Path, model: onnx.ModelProto, folder: Path) -> Path:
    """A copy of an ONNX file and its external data in `folder`, at the same relative locations, so
    what was measured is kept with the run even if the user's file changes."""
    destination = folder / model_path.name
    if model_path.resolve() != destination.resolve():
        shutil.copyfile(model_path, destination)
    for location, data_file in external_data_locations(model, model_path).items():
        target = folder / location
        target.parent.mkdir(parents=True, exist_ok=True)
        if data_file.resolve() != target.resolve():
            shutil.copyfile(data_file, target)
    return destination


def _producer(model: onnx.ModelProto) -> dict[str, Any]:
    """What the file says made it (ONNX Runtime's quantizer, onnxconverter, Olive, ...)."""
    return {
        "producer_name": model.producer_name or None,
        "producer_version": model.producer_version or None,
        "metadata": {prop.key: prop.value for prop in model.metadata_props},
    }


def candidate_folder(artifact_dir: Path, index: int, label: str) -> Path:
    return artifact_dir / f"{index:02d}-candidate-{safe_file_name(label, 60)}"
