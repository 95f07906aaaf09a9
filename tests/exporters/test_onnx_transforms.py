"""ONNX-level helpers that the variant tests do not reach directly."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from exporters.onnx_transforms import copy_model, sort_nodes_topologically
from targets.errors import SpeedproofError


def _chain_graph(nodes):
    return helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
    )


def test_nodes_are_reordered_after_their_producers():
    graph = _chain_graph([helper.make_node("Relu", ["y"], ["z"]), helper.make_node("Neg", ["x"], ["y"])])
    sort_nodes_topologically(graph)
    assert [node.op_type for node in graph.node] == ["Neg", "Relu"]
    onnx.checker.check_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_a_cycle_is_an_error_naming_the_missing_inputs():
    graph = _chain_graph([helper.make_node("Add", ["x", "z"], ["y"]), helper.make_node("Relu", ["y"], ["z"])])
    with pytest.raises(SpeedproofError, match="cycle or undefined inputs: y, z"):
        sort_nodes_topologically(graph)


def test_copy_model_is_the_same_model_in_a_new_file(tiny_conv_onnx, tmp_path):
    copy = copy_model(tiny_conv_onnx, tmp_path / "copy.onnx")
    feed = {"input": np.ones((1, 3, 16, 16), np.float32)}
    outputs = [
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        for path in (tiny_conv_onnx, copy)
    ]
    assert np.array_equal(outputs[0], outputs[1])
