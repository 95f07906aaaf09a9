"""Artifact facts computed from ONNX graphs built in the tests, checked against hand counts."""

import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from exporters.artifact_facts import artifact_facts


def _conv_gemm_model(weight: np.ndarray) -> onnx.ModelProto:
    """x[N,2,8,8] -> Conv(2->C, 3x3, pad 1) -> GlobalAveragePool -> Flatten -> Gemm(C->3)."""
    channels = weight.shape[0]
    gemm_weight = np.ones((3, channels), dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["conv"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "g"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(gemm_weight, "g")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_macs_params_and_alignment_match_hand_counts(tmp_path):
    weight = np.ones((12, 2, 3, 3), dtype=np.float32)
    path = tmp_path / "m.onnx"
    onnx.save(_conv_gemm_model(weight), path)
    facts = artifact_facts(path)
    conv_macs = (12 * 8 * 8) * (2 * 3 * 3)  # every output element: C_in/groups * kh * kw
    gemm_macs = 1 * 3 * 12
    assert facts.macs == conv_macs + gemm_macs
    assert facts.macs_unresolved_nodes == 0
    assert facts.params == 12 * 2 * 3 * 3 + 3 * 12
    assert facts.nonzero_params == facts.params
    assert facts.op_histogram == {"Conv": 1, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1}
    # widths 12 (conv) and 3 (gemm): neither is a multiple of 8
    assert facts.alignment.layers == 2 and facts.alignment.multiple_of_8 == 0.0
    assert facts.alignment.misaligned_examples == (12, 3)
    data = path.read_bytes()
    assert facts.bytes == len(data)
    assert facts.zipped_bytes == len(zlib.compress(data, 6))


def test_zeros_shrink_the_zipped_size_and_the_nonzero_count_but_not_the_macs(tmp_path):
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((16, 2, 3, 3)).astype(np.float32)
    sparse = dense * (rng.random(dense.shape) > 0.9)
    onnx.save(_conv_gemm_model(dense), tmp_path / "dense.onnx")
    onnx.save(_conv_gemm_model(sparse), tmp_path / "sparse.onnx")
    dense_facts, sparse_facts = artifact_facts(tmp_path / "dense.onnx"), artifact_facts(tmp_path / "sparse.onnx")
    assert sparse_facts.bytes == dense_facts.bytes
    assert sparse_facts.zipped_bytes < dense_facts.zipped_bytes
    assert sparse_facts.nonzero_params < dense_facts.nonzero_params
    assert sparse_facts.macs == dense_facts.macs
    assert dense_facts.alignment.multiple_of_8 == 0.5 and dense_facts.alignment.multiple_of_16 == 0.5


def test_facts_serialise_to_the_record(tiny_conv_onnx):
    facts = artifact_facts(tiny_conv_onnx).as_dict()
    assert set(facts) >= {"bytes", "zipped_bytes", "params", "nonzero_params", "macs", "op_histogram", "sha256"}
    assert isinstance(facts["alignment"]["misaligned_examples"], list)
    assert facts["macs"] > 0


def test_macs_resolve_from_the_input_shapes_for_symbolic_dims(tmp_path):
    """A detector exported with dynamic height and width has no MACs from the graph alone; the
    shape from --input-shape or the data (at batch 1) resolves them."""

    from tests.helpers import make_onnx_model

    weight = numpy_helper.from_array(np.ones((8, 3, 3, 3), dtype=np.float32), "W")
    model = make_onnx_model(
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_node("Conv", ["images", "W"], ["features"], pads=[1, 1, 1, 1])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8, "height", "width"])],
        initializers=[weight],
    )
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, str(path))
    assert artifact_facts(path).macs is None
    assert artifact_facts(path, input_shapes={"images": (1, 3, 10, 12)}).macs == 8 * 10 * 12 * 27


def test_the_zipped_size_is_deflates_and_is_worked_out_once_per_content(tmp_path, monkeypatch):
    from exporters import artifact_facts as facts_module

    content = bytes(range(256)) * 4000 + b"\0" * 500_000
    first, copy, other = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx"
    first.write_bytes(content)
    copy.write_bytes(content)
    other.write_bytes(content[::-1])
    sha256, size, zipped = facts_module.file_digest_and_sizes([first])
    assert (size, zipped) == (len(content), len(zlib.compress(content, facts_module.DEFLATE_LEVEL)))
    deflated: list[int] = []
    real_compressobj = zlib.compressobj
    monkeypatch.setattr(zlib, "compressobj", lambda *args: deflated.append(1) or real_compressobj(*args))
    assert facts_module.file_digest_and_sizes([copy]) == (sha256, size, zipped)  # the same content: not deflated again
    assert deflated == []
    other_sha256, _, other_zipped = facts_module.file_digest_and_sizes([other])
    assert deflated == [1] and other_sha256 != sha256
    assert other_zipped == len(zlib.compress(content[::-1], facts_module.DEFLATE_LEVEL))
