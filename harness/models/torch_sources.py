"""A model function's result made a `TorchModel` (in eval mode, example inputs re-batched to 2 so
that the batch axis stays dynamic) and a `TorchModel` exported to ONNX: what the CLI's source
resolution and the contained source process both do, below both of them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.models.data import TorchModel
from targets.errors import InputError

FUNCTION_SOURCE_SEPARATOR = ":"


def export_torch_model(torch_model: TorchModel, path: Path) -> Path:
    """Export a TorchModel at `path` with its example inputs and input names."""
    from exporters.torch_to_onnx import export_to_onnx

    return export_to_onnx(torch_model.module, torch_model.example_inputs, path, input_names=torch_model.input_names)


def _example_tensor(shape: tuple[int, ...]) -> Any:
    import torch

    generator = torch.Generator().manual_seed(0)
    # export at batch 2: a batch of 1 would let the exporter specialise the batch dim to 1
    return torch.randn((2, *shape[1:]), generator=generator)


def as_torch_model(spec: str, produced: Any, input_shapes: dict[str | None, tuple[int, ...]]) -> TorchModel:
    """Normalise what a source function returned: TorchModel, (module, example_inputs) or module,
    in inference (eval) mode: torchvision builds its models in training mode, where dropout and
    batch-norm statistics make every call differ from the exported graph."""
    import torch

    function_name = spec.partition(FUNCTION_SOURCE_SEPARATOR)[2]
    module = (
        produced.module
        if isinstance(produced, TorchModel)
        else produced[0]
        if isinstance(produced, tuple)
        else produced
    )
    if isinstance(module, torch.nn.Module) and not isinstance(module, torch.fx.GraphModule):
        module.eval()
    if isinstance(produced, TorchModel):
        return replace(produced, example_inputs=_batch_of_two(tuple(produced.example_inputs), spec))
    if isinstance(produced, tuple) and len(produced) == 2 and isinstance(produced[0], torch.nn.Module):
        module, example = produced
        examples = (example,) if isinstance(example, torch.Tensor) else tuple(example)
        return TorchModel(module=module, example_inputs=_batch_of_two(examples, spec))
    if isinstance(produced, torch.nn.Module):
        if not input_shapes:
            raise InputError(
                f"model {spec!r} returns a module without example inputs: pass --input-shape, e.g. 1x3x224x224"
            )
        named = tuple(name for name in input_shapes if name is not None)
        return TorchModel(
            module=produced,
            example_inputs=tuple(_example_tensor(shape) for shape in input_shapes.values()),
            input_names=named or None,
        )
    raise InputError(
        f"model {spec!r}: {function_name}() returned {type(produced).__name__}; expected an nn.Module, "
        "a tuple (module, example_inputs) or a harness.models.data.TorchModel"
    )


def _batch_of_two(examples: tuple[Any, ...], spec: str) -> tuple[Any, ...]:
    """Re-batch example inputs to 2 so the batch axis stays dynamic in the export."""
    import torch

    if not all(isinstance(item, torch.Tensor) for item in examples):
        raise InputError(f"model {spec!r}: example inputs must be a tensor or a tuple of tensors")
    return tuple(torch.cat([item[:1], item[:1]]) if item.dim() > 0 else item for item in examples)
