"""The external data files of an ONNX model (weights kept in files beside the `.onnx` file, as every
model past protobuf's 2 GB must): which files a model reads, each checked to lie in the model's own
folder (a path-traversal risk in files from elsewhere). Used where a model file is checked
(`exporters.onnx_file`) and where a model is copied to another machine with its data
(`targets.runners.agent`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from targets.errors import InputError

if TYPE_CHECKING:
    import onnx


def external_data_files(model: onnx.ModelProto, model_path: Path) -> list[Path]:
    """The external data files the model references, each checked to lie in the model's folder."""
    return list(dict.fromkeys(external_data_locations(model, model_path).values()))


def external_data_locations(model: onnx.ModelProto, model_path: Path) -> dict[str, Path]:
    """Each external data location as the model names it (relative to its folder), and the file it is,
    checked to lie in the model's folder."""
    import onnx

    folder = model_path.parent.resolve()
    files: dict[str, Path] = {}
    for tensor in _all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), None)
        if not location:
            raise InputError(f"{model_path}: tensor {tensor.name!r} is external but names no location")
        target = (folder / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(folder):
            raise InputError(
                f"{model_path}: refusing external data {location!r} of tensor {tensor.name!r}: it points "
                f"outside the model's folder {folder}"
            )
        if not target.is_file():
            raise InputError(f"{model_path}: external data file {location!r} of tensor {tensor.name!r} is missing")
        files[location] = target
    return files


def external_data_of_file(model_path: Path) -> dict[str, Path]:
    """The external data locations and files of the ONNX file at `model_path` (its graph read, its
    weights left on disk); none for any other kind of file."""
    import onnx

    if model_path.suffix.lower() != ".onnx":
        return {}
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError and friends
        raise InputError(f"{model_path} is not a readable ONNX model: {error}") from None
    return external_data_locations(model, model_path)


def _all_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    import onnx

    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                tensors.append(attribute.t)
    return tensors
