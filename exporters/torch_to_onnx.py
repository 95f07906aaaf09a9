"""Export a torch module to ONNX (opset 18, dynamic batch axis), check it (onnx.checker, strict
shape inference), and compare its outputs with torch's on the example inputs."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.errors import SpeedproofError

if TYPE_CHECKING:
    import torch

DEFAULT_OPSET = 18
# float32 export vs eager torch: reorderings and fused kernels move the last bits only
OUTPUT_RTOL = 1e-3
OUTPUT_ATOL = 1e-4


def export_to_onnx(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: Path,
    input_names: Sequence[str] | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write `module` as one self-contained ONNX file at `path`; the first dim of every input is
    a dynamic batch axis. Raises SpeedproofError when export fails or outputs disagree."""
    import torch

    module = module.eval()
    names = list(
        input_names or (["input"] if len(example_inputs) == 1 else [f"input_{i}" for i in range(len(example_inputs))])
    )
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic_shapes = tuple({0: batch} for _ in example_inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # the exporter prints progress and warns about itself; keep the user's terminal clean
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(example_inputs),
                str(path),
                dynamo=True,
                input_names=names,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
    except Exception as error:
        raise SpeedproofError(f"torch -> ONNX export of {type(module).__name__} failed: {error}") from error
    check_graph(path)
    check_outputs_match(module, example_inputs, path, names)
    return path


def check_graph(path: Path) -> None:
    """onnx.checker plus strict shape inference: a graph whose shapes do not compose is an error."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
        onnx.shape_inference.infer_shapes(onnx.load(str(path)), check_type=True, strict_mode=True)
    except Exception as error:
        raise SpeedproofError(f"{path}: the exported graph does not check: {error}") from error


def check_outputs_match(
    module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], path: Path, input_names: Sequence[str]
) -> None:
    """Run torch and ONNX Runtime on the same inputs; a mismatch is an error with the worst gap."""
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        expected = module(*example_inputs)
    expected_list = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: tensor.detach().cpu().numpy() for name, tensor in zip(input_names, example_inputs, strict=True)}
    actual_list = session.run(None, feed)
    if len(actual_list) != len(expected_list):
        raise SpeedproofError(f"{path}: ONNX has {len(actual_list)} outputs, torch returned {len(expected_list)}")
    for index, (want, got) in enumerate(zip(expected_list, actual_list, strict=False)):
        want_array = want.detach().cpu().numpy()
        if want_array.shape != got.shape:
            raise SpeedproofError(
                f"{path}: output {index} has shape {got.shape} in ONNX but {want_array.shape} in torch"
            )
        if not np.allclose(got, want_array, rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL):
            worst = float(np.max(np.abs(got.astype(np.float64) - want_array.astype(np.float64))))
            raise SpeedproofError(
                f"{path}: output {index} differs from torch by up to {worst:.3g} "
                f"(allowed rtol={OUTPUT_RTOL}, atol={OUTPUT_ATOL})"
            )
