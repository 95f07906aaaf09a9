import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporters.torch_to_onnx import check_outputs_match, export_to_onnx
from harness.errors import SpeedproofError


def test_export_has_a_dynamic_batch_axis(tiny_conv_onnx):
    model = onnx.load(tiny_conv_onnx)
    first_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert first_dim.dim_param and not first_dim.dim_value
    session = ort.InferenceSession(str(tiny_conv_onnx), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        (output,) = session.run(None, {"input": np.zeros((batch, 3, 16, 16), np.float32)})
        assert output.shape == (batch, 4)


def test_output_mismatch_fails_the_export(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 3).eval()
    path = export_to_onnx(module, [torch.randn(2, 4)], tmp_path / "linear.onnx")
    with torch.no_grad():
        module.weight.add_(1.0)  # the torch model now differs from its export
    with pytest.raises(SpeedproofError, match="differs from torch"):
        check_outputs_match(module, [torch.randn(2, 4)], path, ["input"])


def test_unexportable_module_is_a_clear_error(tmp_path):
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x[x > 0].reshape(-1, 1) if x.sum().item() > 1e9 else x

    with pytest.raises(SpeedproofError, match="export of DataDependent failed"):
        export_to_onnx(DataDependent(), [torch.randn(2, 4)], tmp_path / "bad.onnx")
