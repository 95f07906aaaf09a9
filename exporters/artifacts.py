"""Typed artifacts: each kind of deployable file (an ONNX file with its external data; a
`.pt2` torch.export program; a TensorRT engine next) says how it is recognised, checked, described by its
facts, and which inputs it declares. Whatever handles artifacts asks the kind; a new kind is one
class here (or in a module of its own) plus a line in ARTIFACT_KINDS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.errors import SpeedproofError
from targets.inputs import ModelInput


class ArtifactKind(ABC):
    """How one kind of artifact file is checked and described."""

    name: str
    suffixes: tuple[str, ...]

    def matches(self, path: Path) -> bool:
        return path.suffix in self.suffixes

    @abstractmethod
    def load_checked(self, path: Path) -> Any:
        """Parse and check the file; errors name the file. Returns the parsed form (kind-specific)."""

    @abstractmethod
    def facts(
        self, path: Path, parsed: Any | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None
    ) -> dict[str, Any]:
        """The artifact facts of the record (bytes, zipped bytes, params, MACs, ...); `input_shapes`
        (each input's whole shape at batch 1) resolves the symbolic dims MACs need."""

    @abstractmethod
    def model_inputs(self, parsed: Any) -> list[ModelInput]:
        """The inputs the artifact declares, dims as declared."""


class OnnxArtifact(ArtifactKind):
    """An ONNX model file, with external data (kept in the model's own folder) counted as part of it."""

    name = "onnx"
    suffixes = (".onnx",)

    def load_checked(self, path: Path) -> Any:
        from exporters.onnx_file import load_onnx_model

        return load_onnx_model(path)

    def facts(
        self, path: Path, parsed: Any | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None
    ) -> dict[str, Any]:
        from exporters.artifact_facts import artifact_facts

        return artifact_facts(path, parsed, input_shapes).as_dict()

    def model_inputs(self, parsed: Any) -> list[ModelInput]:
        from exporters.onnx_file import read_model_inputs

        return read_model_inputs(parsed)


class TorchProgramArtifact(ArtifactKind):
    """A torch.export program (`torch.export.save`), the artifact of the torch backend."""

    name = "pt2"
    suffixes = (".pt2",)

    def load_checked(self, path: Path) -> Any:
        from targets.backends.torch.programs import load_program

        return load_program(path)

    def facts(
        self, path: Path, parsed: Any | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None
    ) -> dict[str, Any]:
        from exporters.torch_program import program_facts

        return program_facts(path, parsed[0] if parsed is not None else None).as_dict()

    def model_inputs(self, parsed: Any) -> list[ModelInput]:
        from exporters.torch_program import program_inputs

        program, names = parsed
        return program_inputs(program, names)


ARTIFACT_KINDS: dict[str, ArtifactKind] = {kind.name: kind for kind in (OnnxArtifact(), TorchProgramArtifact())}


@dataclass(frozen=True)
class Artifact:
    """A file of a known kind."""

    path: Path
    kind: ArtifactKind

    def facts(
        self, parsed: Any | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None
    ) -> dict[str, Any]:
        return self.kind.facts(self.path, parsed, input_shapes)


def artifact_at(path: Path) -> Artifact:
    """The artifact at `path`, its kind known from the file name."""
    for kind in ARTIFACT_KINDS.values():
        if kind.matches(path):
            return Artifact(path, kind)
    known = ", ".join(suffix for kind in ARTIFACT_KINDS.values() for suffix in kind.suffixes)
    raise SpeedproofError(f"{path}: not an artifact speedproof can run (known kinds: {known})")
