"""Model sources: turn what the user named (an .onnx file, a zoo name, package.module:function)
into a checked ONNX artifact on disk, exporting from torch where needed."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from harness.errors import SpeedproofError
from harness.zoo import ZOO, zoo_model

FUNCTION_SOURCE_SEPARATOR = ":"
TORCH_FILE_SUFFIXES = (".pt", ".pt2", ".pth")


@dataclass(frozen=True)
class ModelArtifact:
    """A model source made concrete: its display name, ONNX file and parsed graph."""

    name: str
    kind: str  # "onnx-file" | "zoo" | "function"
    onnx_path: Path
    model: onnx.ModelProto
    latency_only: bool


def cache_dir() -> Path:
    """Per-user cache folder for exported artifacts (XDG_CACHE_HOME, else ~/.cache)."""
    base = os.environ.get("SPEEDPROOF_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "speedproof"
    )
    return Path(base)


def describe_valid_sources() -> str:
    return f"an .onnx file, a zoo name ({', '.join(sorted(ZOO))}), or package.module:function"


def resolve_model_source(spec: str, input_shapes: dict[str | None, tuple[int, ...]], work_dir: Path) -> ModelArtifact:
    """Resolve MODEL; torch sources are exported into `work_dir` (zoo exports are cached)."""
    from exporters.onnx_file import load_onnx_model

    if Path(spec).suffix in TORCH_FILE_SUFFIXES:
        raise SpeedproofError(
            f"model {spec!r}: torch files are not a model source yet; export it to ONNX, or pass "
            "package.module:function that builds the module"
        )
    if spec.endswith(".onnx") or Path(spec).is_file():
        path = Path(spec)
        return ModelArtifact(path.stem, "onnx-file", path, load_onnx_model(path), latency_only=False)
    if spec in ZOO:
        return _export_zoo_model(spec)
    if FUNCTION_SOURCE_SEPARATOR in spec:
        return _export_function_source(spec, input_shapes, work_dir)
    if "/" in spec or "." in Path(spec).name:
        raise SpeedproofError(f"model file not found: {spec}")
    zoo_model(spec)  # raises the "unknown zoo model ..., valid: ..." error
    raise AssertionError("unreachable")


def _export_zoo_model(name: str) -> ModelArtifact:
    from exporters.onnx_file import load_onnx_model
    from exporters.torch_to_onnx import DEFAULT_OPSET, export_to_onnx

    entry = zoo_model(name)
    # weights are seeded, so the export is the same for the same torch and opset: reuse it
    # (the version comes from package metadata: importing torch just for it costs seconds)
    torch_version = importlib.metadata.version("torch")
    path = cache_dir() / "zoo" / f"{name}-torch{torch_version}-opset{DEFAULT_OPSET}.onnx"
    if not path.exists():
        module = entry.build()
        temporary = path.with_suffix(f".{os.getpid()}.partial.onnx")
        export_to_onnx(module, [_example_tensor(entry.input_shape)], temporary)
        os.replace(temporary, path)
    return ModelArtifact(name, "zoo", path, load_onnx_model(path), latency_only=entry.latency_only)


def _example_tensor(shape: Sequence[int]) -> Any:
    import torch

    generator = torch.Generator().manual_seed(0)
    # export at batch 2: a batch of 1 would let the exporter specialise the batch dim to 1
    return torch.randn((2, *shape[1:]), generator=generator)


def _export_function_source(
    spec: str, input_shapes: dict[str | None, tuple[int, ...]], work_dir: Path
) -> ModelArtifact:
    import torch

    from exporters.onnx_file import load_onnx_model
    from exporters.torch_to_onnx import export_to_onnx

    module_name, _, function_name = spec.partition(FUNCTION_SOURCE_SEPARATOR)
    if not module_name or not function_name:
        raise SpeedproofError(f"model {spec!r}: expected package.module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like pytest: the user's own modules in the current folder
    try:
        python_module = importlib.import_module(module_name)
    except ImportError as error:
        raise SpeedproofError(f"model {spec!r}: cannot import {module_name!r}: {error}") from None
    function = getattr(python_module, function_name, None)
    if not callable(function):
        raise SpeedproofError(f"model {spec!r}: {module_name!r} has no function {function_name!r}")
    try:
        produced = function()
    except Exception as error:
        raise SpeedproofError(f"model {spec!r}: calling {function_name}() failed: {error}") from error

    names: list[str] | None = None
    if isinstance(produced, tuple) and len(produced) == 2 and isinstance(produced[0], torch.nn.Module):
        module, example = produced
        examples = [example] if isinstance(example, torch.Tensor) else list(example)
        if not all(isinstance(item, torch.Tensor) for item in examples):
            raise SpeedproofError(f"model {spec!r}: example inputs must be a tensor or a tuple of tensors")
        # re-batch to 2 so the batch axis stays dynamic in the export
        examples = [torch.cat([item[:1], item[:1]]) if item.dim() > 0 else item for item in examples]
    elif isinstance(produced, torch.nn.Module):
        module = produced
        if not input_shapes:
            raise SpeedproofError(
                f"model {spec!r} returns a module without example inputs: pass --input-shape, e.g. 1x3x224x224"
            )
        named = [name for name in input_shapes if name is not None]
        names = named or None
        examples = [_example_tensor(shape) for shape in input_shapes.values()]
    else:
        raise SpeedproofError(
            f"model {spec!r}: {function_name}() returned {type(produced).__name__}; expected an nn.Module "
            "or a tuple (module, example_inputs)"
        )
    path = work_dir / f"{function_name}.onnx"
    export_to_onnx(module, examples, path, input_names=names)
    return ModelArtifact(function_name, "function", path, load_onnx_model(path), latency_only=False)
