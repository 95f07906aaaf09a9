"""4-bit weight-only quantization through onnxruntime's MatMulNBits, on graphs built in the test."""

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.artifact_facts import artifact_facts
from exporters.int4_weights import quantize_int4_weights, rewrite_gemms_as_matmuls
from targets.errors import SpeedproofError


def _linear_model(path):
    """x[batch, 64] -> Gemm(64 -> 128, transB, bias) -> Relu -> MatMul(128 -> 16)."""
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(rng.standard_normal((128, 64)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(128).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((128, 16)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_gemm_rewritten_as_matmul_computes_the_same(tmp_path):
    source = _linear_model(tmp_path / "linear.onnx")
    model = onnx.load(source)
    assert rewrite_gemms_as_matmuls(model.graph) == 1
    assert [node.op_type for node in model.graph.node] == ["MatMul", "Add", "Relu", "MatMul"]
    assert "w1" not in {initializer.name for initializer in model.graph.initializer}  # the unused original
    onnx.save(model, tmp_path / "rewritten.onnx")
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    want = ort.InferenceSession(str(source)).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(tmp_path / "rewritten.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("symmetric", [False, True])
def test_every_linear_weight_becomes_four_bit_and_the_facts_still_count_it(tmp_path, symmetric):
    source = _linear_model(tmp_path / "linear.onnx")
    destination = tmp_path / "int4.onnx"
    result = quantize_int4_weights(source, destination, block_size=32, symmetric=symmetric, accuracy_level=4)
    assert (result.matmuls, result.quantized, result.gemms_rewritten) == (2, 2, 1)
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    want = ort.InferenceSession(str(source)).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(destination)).run(None, {"x": x})[0]
    error = np.abs(got - want).mean() / np.abs(want).mean()
    assert 0 < error < 0.2  # 4-bit weights are close, not exact
    before, after = artifact_facts(source), artifact_facts(destination)
    assert after.op_histogram["com.microsoft.MatMulNBits"] == 2
    assert after.macs == before.macs  # the same matmuls, with smaller weights
    assert after.params >= 128 * 64 + 128 * 16  # packed nibbles counted as the weights they hold
    assert after.bytes < before.bytes / 3


def test_a_model_without_linear_weights_is_refused_for_what_it_is(tiny_conv_onnx, tmp_path):
    # tiny_conv ends in a Linear: with only convolutions, nothing would change
    model = onnx.load(tiny_conv_onnx)
    for node in [node for node in model.graph.node if node.op_type in ("Gemm", "MatMul")]:
        node.op_type = "Add"
    conv_only = tmp_path / "conv_only.onnx"
    onnx.save(model, conv_only)
    with pytest.raises(SpeedproofError, match="has no MatMul or Gemm with a constant weight.*convolutions stay"):
        quantize_int4_weights(conv_only, tmp_path / "out.onnx", 32, False, 4)


def test_the_quantizer_leaves_logging_as_it_was(tmp_path):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quantize_int4_weights(_linear_model(tmp_path / "linear.onnx"), tmp_path / "int4.onnx", 32, False, 4)
    assert root.handlers == handlers and root.level == level


def test_eight_bit_weights_are_closer_than_four_bit_and_still_smaller(tmp_path):
    """int8-weight: the same MatMulNBits path with 8 bits: about half the float file, and nearer the float
    outputs than 4 bits (256 levels per block instead of 16)."""
    source = _linear_model(tmp_path / "linear.onnx")
    errors = {}
    for bits in (4, 8):
        destination = tmp_path / f"int{bits}.onnx"
        result = quantize_int4_weights(source, destination, block_size=32, symmetric=True, accuracy_level=0, bits=bits)
        assert result.quantized == 2
        x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
        want = ort.InferenceSession(str(source)).run(None, {"x": x})[0]
        got = ort.InferenceSession(str(destination)).run(None, {"x": x})[0]
        errors[bits] = np.abs(got - want).mean() / np.abs(want).mean()
    assert 0 < errors[8] < errors[4] / 4
    assert artifact_facts(tmp_path / "int8.onnx").bytes < artifact_facts(source).bytes / 1.5
