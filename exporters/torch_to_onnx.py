"""Export a torch module to ONNX (opset 18, dynamic batch axis), check it (onnx.checker, strict
shape inference), and compare its outputs with torch's on the example inputs."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from targets.errors import SpeedproofError

if TYPE_CHECKING:
    import torch

DEFAULT_OPSET = 18


@dataclass(frozen=True)
class OutputTolerance:
    rtol: float
    atol: float  # absolute; when scale_relative, a share of the largest expected magnitude
    scale_relative: bool = False

    def describe(self) -> str:
        atol = f"{self.atol} x max|torch output|" if self.scale_relative else str(self.atol)
        return f"rtol={self.rtol}, atol={atol}"


# float32 export vs eager torch: reorderings and fused kernels move the last bits only. float16
# keeps about 3 decimal digits per operation and errors add up over layers, so its bound scales
# with the outputs. int8 is not compared element-wise: its quality is measured (accuracy, fidelity).
OUTPUT_TOLERANCES = {
    "float32": OutputTolerance(rtol=1e-3, atol=1e-4),
    "float16": OutputTolerance(rtol=2e-2, atol=2e-2, scale_relative=True),
}


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

    if not isinstance(module, torch.fx.GraphModule):  # a loaded program's module has no eval(): it is one already
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
        raise SpeedproofError(
            f"torch -> ONNX export of {type(module).__name__} failed: {export_error_summary(error)}"
        ) from error
    check_graph(path)
    check_outputs_match(module, example_inputs, path, names)
    return path


_ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def export_error_summary(error: Exception) -> str:
    """The exporter's own exception summary, without its colours and generic advice."""
    text = _ANSI_ESCAPES.sub("", str(error))
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1].split("(Refer to the full stack trace", 1)[0]
    return " ".join(text.split())


def check_graph(path: Path) -> None:
    """onnx.checker plus strict shape inference: a graph whose shapes do not compose is an error."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
        onnx.shape_inference.infer_shapes(onnx.load(str(path)), check_type=True, strict_mode=True)
    except Exception as error:
        raise SpeedproofError(f"{path}: the exported graph does not check: {error}") from error


def check_outputs_match(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: Path,
    input_names: Sequence[str],
    precision: str = "float32",
) -> None:
    """Run torch and ONNX Runtime on the same inputs; a mismatch beyond the tolerance of the
    artifact's `precision` is an error with the worst gap."""
    import onnxruntime as ort
    import torch

    if not isinstance(module, torch.fx.GraphModule):
        module.eval()  # the graph was exported in eval mode: dropout off, batch-norm on its running statistics
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
        tolerance = OUTPUT_TOLERANCES[precision]
        scale = float(np.max(np.abs(want_array))) if tolerance.scale_relative and want_array.size else 1.0
        if not np.allclose(got, want_array, rtol=tolerance.rtol, atol=tolerance.atol * scale):
            worst = float(np.max(np.abs(got.astype(np.float64) - want_array.astype(np.float64))))
            raise SpeedproofError(
                f"{path}: output {index} differs from torch by up to {worst:.3g} "
                f"(allowed for {precision}: {tolerance.describe()})"
            )
