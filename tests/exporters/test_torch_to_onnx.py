import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporters.torch_to_onnx import check_outputs_match, export_to_onnx
from targets.errors import SpeedproofError


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


def test_export_uses_opset_17_or_newer(tiny_conv_onnx):
    opsets = {entry.domain: entry.version for entry in onnx.load(tiny_conv_onnx).opset_import}
    assert opsets.get("", opsets.get("ai.onnx", 0)) >= 17


def test_graph_check_refuses_shapes_that_do_not_compose(tmp_path):
    from onnx import TensorProto, helper

    from exporters.torch_to_onnx import check_graph

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "bad",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 5]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 5])],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(SpeedproofError, match="does not check"):
        check_graph(path)


def test_float16_artifacts_are_held_to_float16_tolerance(tmp_path):
    from exporters.onnx_transforms import convert_fp16

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    example = [torch.randn(2, 64) * 10]
    path = export_to_onnx(module, example, tmp_path / "mlp.onnx")
    half = convert_fp16(path, tmp_path / "mlp-fp16.onnx")
    check_outputs_match(module, example, half, ["input"], precision="float16")
    with pytest.raises(SpeedproofError, match="allowed for float32"):
        check_outputs_match(module, example, half, ["input"], precision="float32")
    with torch.no_grad():
        module[2].bias.add_(1.0)  # a real change is beyond float16's tolerance too
    with pytest.raises(SpeedproofError, match="allowed for float16"):
        check_outputs_match(module, example, half, ["input"], precision="float16")


def test_export_errors_keep_the_exception_summary_without_colours_or_advice():
    from exporters.torch_to_onnx import export_error_summary

    message = (
        "Failed to export the model with torch.export. \x1b[96mThis is step 1/3\x1b[0m\n- Modify the model code\n\n"
        "## Exception summary\n\n<class 'AttributeError'>: 'Sequential' object has no attribute 'weight'\n\n"
        "(Refer to the full stack trace above for more information.)"
    )
    assert export_error_summary(RuntimeError(message)) == (
        "<class 'AttributeError'>: 'Sequential' object has no attribute 'weight'"
    )
    assert export_error_summary(ValueError("plain \x1b[1mmessage\x1b[0m")) == "plain message"
