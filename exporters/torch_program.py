"""torch.export programs (`.pt2`): the artifact the torch backend runs. Exported and described
here; read (by the worker too) in `targets.backends.torch.programs`.

A program is exported with the first dim of every input as a dynamic batch axis (as the ONNX
export), saved with the input names speedproof's input plan uses, and checked: the loaded program
must compute what the module computes. Its facts are those of an ONNX artifact (bytes, zipped
bytes, parameters, non-zero parameters, MACs at batch 1 counted by torch's FLOP counter, an op
histogram, channel alignment), so a verdict reads the same whichever backend measured it.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters.artifact_facts import ArtifactFacts, alignment_of, file_digest_and_sizes
from exporters.torch_to_onnx import export_error_summary
from targets.backends.torch.programs import (
    INPUT_NAMES_FILE,
    is_static_dim,
    load_program,
    output_tensors,
    program_input_values,
)
from targets.errors import SpeedproofError
from targets.inputs import ModelInput

if TYPE_CHECKING:
    import torch

MAX_BATCH = 4096
# outputs of the loaded program against the module's (the same kernels: only summation order may differ)
TOLERANCE = {"float32": (1e-3, 1e-4), "float16": (2e-2, 2e-2), "bfloat16": (5e-2, 5e-2)}


def export_program(
    module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], path: Path, input_names: Sequence[str]
) -> Path:
    """Write `module` as a torch.export program at `path` (batch axis dynamic) and check it."""
    import torch

    if not isinstance(module, torch.fx.GraphModule):  # a loaded program's module has no eval(): it is one already
        module = module.eval()
    names = list(input_names)
    if len(names) != len(example_inputs):
        raise SpeedproofError(f"{len(example_inputs)} example inputs but {len(names)} input names: {names}")
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.export.export(
                module, tuple(example_inputs), dynamic_shapes=tuple({0: batch} for _ in example_inputs)
            )
    except Exception as error:
        raise SpeedproofError(
            f"torch.export of {type(module).__name__} failed: {export_error_summary(error)}"
        ) from error
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path), extra_files={INPUT_NAMES_FILE: json.dumps(names)})
    loaded, _ = load_program(path)
    _check_outputs_match(module, loaded.module(), example_inputs, path)
    return path


def program_inputs(program: Any, names: Sequence[str]) -> list[ModelInput]:
    """The inputs the program declares: a symbolic dim (the batch) is its name, the others ints."""
    inputs = []
    for name, value in zip(names, program_input_values(program), strict=True):
        dims = tuple(int(dim) if is_static_dim(dim) else str(dim) for dim in value.shape)
        inputs.append(ModelInput(name=name, dtype=str(value.dtype).removeprefix("torch."), dims=dims))
    return inputs


def program_example_inputs(
    program: Any, names: Sequence[str], input_shapes: dict[str | None, tuple[int, ...]]
) -> tuple[torch.Tensor, ...]:
    """Example inputs at batch 2 for a program's inputs: fixed dims as declared, the batch 2, any other
    symbolic dim from --input-shape (by name, or the one unnamed shape for a one-input program)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    examples = []
    for name, value in zip(names, program_input_values(program), strict=True):
        given = input_shapes.get(name) or (input_shapes.get(None) if len(names) == 1 else None)
        dims = []
        for axis, dim in enumerate(value.shape):
            if is_static_dim(dim):
                dims.append(int(dim))
            elif axis == 0:
                dims.append(2)
            elif given is not None and len(given) == len(value.shape):
                dims.append(given[axis])
            else:
                raise SpeedproofError(
                    f"input {name!r} of the program has a symbolic dim {axis} ({dim}): pass --input-shape "
                    f"{name}=1x... with every dim"
                )
        if value.dtype.is_floating_point:
            examples.append(torch.randn(dims, generator=generator).to(value.dtype))
        else:
            examples.append(torch.zeros(dims, dtype=value.dtype))
    return tuple(examples)


def program_facts(path: Path, program: Any | None = None) -> ArtifactFacts:
    """The facts of the `.pt2` at `path`, keyed as an ONNX artifact's."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if program is None:
        program, _ = load_program(path)
    sha256, total_bytes, zipped_bytes = file_digest_and_sizes([path.resolve()])
    weights = [
        tensor for tensor in program.state_dict.values() if tensor.is_floating_point() or tensor.dtype == torch.int8
    ]
    weights += [tensor for tensor in program.constants.values() if isinstance(tensor, torch.Tensor)]
    histogram = Counter(_op_name(node.target) for node in program.graph.nodes if node.op == "call_function")
    widths = [
        int(tensor.shape[0])
        for name, tensor in program.state_dict.items()
        if name.endswith("weight") and tensor.dim() in (2, 4)
    ]
    macs: int | None
    try:
        batch_one = [
            torch.zeros((1, *value.shape[1:]), dtype=value.dtype) if value.dim() else torch.zeros((), dtype=value.dtype)
            for value in program_input_values(program)
        ]
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            program.module()(*batch_one)
        macs = int(counter.get_total_flops() // 2)
    except Exception:  # a program whose shapes cannot be made concrete at batch 1: MACs unknown
        macs = None
    return ArtifactFacts(
        path=str(path.resolve()),
        sha256=sha256,
        bytes=total_bytes,
        zipped_bytes=zipped_bytes,
        params=int(sum(tensor.numel() for tensor in weights)),
        nonzero_params=int(sum(int(torch.count_nonzero(tensor)) for tensor in weights)),
        macs=macs,
        macs_unresolved_nodes=0 if macs is not None else 1,
        op_histogram=dict(histogram.most_common()),
        alignment=alignment_of(widths),
    )


def _op_name(target: Any) -> str:
    name = str(target)
    return name.removesuffix(".default")


def _check_outputs_match(
    module: torch.nn.Module, loaded: torch.nn.Module, example_inputs: Sequence[torch.Tensor], path: Path
) -> None:
    import torch

    with torch.inference_mode():
        expected = _first_output(module(*example_inputs))
        got = _first_output(loaded(*example_inputs))
    rtol, atol = TOLERANCE.get(str(expected.dtype).removeprefix("torch."), TOLERANCE["float32"])
    if expected.shape != got.shape or not torch.allclose(got.float(), expected.float(), rtol=rtol, atol=atol):
        difference = (got.float() - expected.float()).abs().max().item() if expected.shape == got.shape else None
        raise SpeedproofError(
            f"{path}: the exported program's outputs differ from the module's "
            + (
                f"(max abs difference {difference:.3g})"
                if difference is not None
                else f"({got.shape} vs {expected.shape})"
            )
        )


def _first_output(outputs: Any) -> torch.Tensor:
    tensors = output_tensors(outputs)
    if not tensors:
        raise SpeedproofError("the module returned no tensors")
    return tensors[0]
