import hashlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.artifact_facts import artifact_facts
from exporters.onnx_file import load_onnx_model
from targets.errors import SpeedproofError
from tests.helpers import make_onnx_model


def _matmul_model() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "weight")
    return make_onnx_model(
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_node("MatMul", ["x", "weight"], ["y"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )


def test_missing_file(tmp_path):
    with pytest.raises(SpeedproofError, match="model file not found: .*nothing.onnx"):
        load_onnx_model(tmp_path / "nothing.onnx")


def test_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model\n" * 20)
    with pytest.raises(SpeedproofError, match="notes.onnx"):
        load_onnx_model(path)


def test_truncated_file(tiny_conv_onnx, tmp_path):
    data = tiny_conv_onnx.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SpeedproofError, match="truncated"):
        load_onnx_model(path)


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    model = _matmul_model()
    model_folder = tmp_path / "model"
    model_folder.mkdir()
    onnx.save_model(
        model, model_folder / "m.onnx", save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    # point the tensor at a file one folder up, as a hostile file would
    (tmp_path / "secret.bin").write_bytes((model_folder / "weights.bin").read_bytes())
    loaded = onnx.load(model_folder / "m.onnx", load_external_data=False)
    for entry in loaded.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../secret.bin"
    onnx.save(loaded, model_folder / "m.onnx")
    with pytest.raises(SpeedproofError, match="refusing external data '../secret.bin'.*outside the model's folder"):
        load_onnx_model(model_folder / "m.onnx")


def test_external_data_inside_the_folder_is_fine_and_counted(tmp_path):
    onnx.save_model(
        _matmul_model(), tmp_path / "m.onnx", save_as_external_data=True, location="w.bin", size_threshold=0
    )
    model = load_onnx_model(tmp_path / "m.onnx")
    facts = artifact_facts(tmp_path / "m.onnx", model)
    assert facts.bytes == (tmp_path / "m.onnx").stat().st_size + (tmp_path / "w.bin").stat().st_size


def test_facts_of_a_plain_file(tiny_conv_onnx):
    facts = artifact_facts(tiny_conv_onnx, load_onnx_model(tiny_conv_onnx))
    assert facts.bytes == tiny_conv_onnx.stat().st_size
    assert facts.sha256 == hashlib.sha256(tiny_conv_onnx.read_bytes()).hexdigest()


def _two_relus(nodes_in_order: bool, second_input: str = "hidden") -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["hidden"]), helper.make_node("Relu", [second_input], ["y"])]
    graph = helper.make_graph(
        nodes if nodes_in_order else nodes[::-1],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_nodes_out_of_order_are_accepted_when_sorting_them_makes_a_valid_graph(tmp_path):
    """ONNX Runtime's float16 converter writes its input casts after their users; ONNX Runtime sorts
    on load and runs such a file, so speedproof measures it as it is. A node whose input nothing
    produces is still refused."""
    unsorted = tmp_path / "unsorted.onnx"
    onnx.save(_two_relus(nodes_in_order=False), str(unsorted))
    assert [node.output[0] for node in load_onnx_model(unsorted).graph.node] == ["y", "hidden"]  # not rewritten
    broken = tmp_path / "broken.onnx"
    onnx.save(_two_relus(nodes_in_order=False, second_input="nowhere"), str(broken))
    with pytest.raises(SpeedproofError, match="is not a valid ONNX model"):
        load_onnx_model(broken)
