"""Real graphs, second round: an `If` whose branches read a value of the main graph (as ONNX
Runtime's quantizer writes it, after the `If`) is sorted, checked and built into int8 variants;
MACs count the work inside `If` and `Loop` bodies and of recurrent layers, resolve shapes that an
attention block computes in the graph, and name what they cannot count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.artifact_facts import artifact_facts
from exporters.onnx_file import load_onnx_model, node_reads

WIDTH = 16


def _if_model(folder: Path, unsorted: bool) -> Path:
    """x [N, 16] -> hidden = x @ W; If (sum(x) > 0) then hidden @ W2 else relu(hidden): both
    branches read `hidden` from the main graph. `unsorted`: the If comes before the MatMul."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32), name) for name in ("W", "W2")
    ]
    then_graph = helper.make_graph(
        [helper.make_node("MatMul", ["hidden", "W2"], ["then_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Relu", ["hidden"], ["else_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)],
    )
    matmul = helper.make_node("MatMul", ["x", "W"], ["hidden"])
    rest = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.float32))),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["y"], then_branch=then_graph, else_branch=else_graph),
    ]
    graph = helper.make_graph(
        [*rest, matmul] if unsorted else [matmul, *rest],
        "if_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDTH])],
        weights,
    )
    path = folder / ("if_unsorted.onnx" if unsorted else "if_model.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _loop_model(folder: Path, trips: int) -> Path:
    weight = numpy_helper.from_array(np.eye(WIDTH, dtype=np.float32), "W")
    constants = [
        numpy_helper.from_array(np.array(trips, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "go"),
    ]
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "W"], ["h_out"]), helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, WIDTH]),
        ],
        [
            helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, WIDTH]),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "go", "x"], ["y"], body=body)],
        "loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])],
        [weight, *constants],
    )
    path = folder / "loop.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_node_reads_what_its_subgraphs_read_from_outside(tmp_path):
    model = onnx.load(_if_model(tmp_path, unsorted=False))
    [if_node] = [node for node in model.graph.node if node.op_type == "If"]
    assert node_reads(if_node) == {"positive", "hidden", "W2"}  # W2: an initializer of the main graph


def test_an_if_before_the_value_its_branches_read_is_accepted_as_onnx_runtime_runs_it(tmp_path):
    path = _if_model(tmp_path, unsorted=True)
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(str(path))
    assert load_onnx_model(path).graph.node[-1].op_type == "MatMul"  # measured as it is, not refused


def test_macs_count_the_larger_branch_of_an_if_and_say_so(tmp_path):
    facts = artifact_facts(_if_model(tmp_path, unsorted=False))
    assert facts.macs == 2 * WIDTH * WIDTH  # x @ W, and the then-branch's hidden @ W2 (it was 256 before)
    [note] = facts.macs_notes
    assert note.startswith("If 'y': branches of ") and "then 256" in note and "counted the then branch" in note


def test_macs_of_a_loop_are_its_body_times_a_constant_trip_count(tmp_path):
    facts = artifact_facts(_loop_model(tmp_path, trips=3))
    assert facts.macs == 3 * WIDTH * WIDTH and facts.macs_notes == ["Loop 'y': 256 MACs a step x 3 steps"]


def test_macs_of_a_recurrent_layer_and_of_attention_with_computed_shapes(tmp_path):
    import torch

    lstm = tmp_path / "lstm.onnx"
    torch.onnx.export(
        torch.nn.LSTM(WIDTH, 32, batch_first=True),
        (torch.zeros(1, 10, WIDTH),),
        str(lstm),
        input_names=["x"],
        dynamic_axes={"x": {0: "batch", 1: "steps"}},
        dynamo=False,
    )
    assert artifact_facts(lstm, input_shapes={"x": (1, 10, WIDTH)}).macs == 10 * (4 * 32 * WIDTH + 4 * 32 * 32)
    unknown = artifact_facts(lstm)  # the number of steps is symbolic: named, with what fixes it
    assert unknown.macs is None and "LSTM '/LSTM'" in unknown.macs_notes[0] and "--input-shape" in unknown.macs_notes[0]

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(100, 32)
            self.layer = torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.layer(self.embedding(ids))

    encoder = tmp_path / "encoder.onnx"
    torch.onnx.export(
        Encoder().eval(),
        (torch.zeros(1, 8, dtype=torch.long),),
        str(encoder),
        input_names=["input_ids"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}},
        dynamo=False,
    )
    # every dim fixed: the shapes the attention computes in the graph (Shape, Gather, Mod into a
    # Reshape) are folded, and all its MatMuls counted (they were "-" before)
    facts = artifact_facts(encoder, input_shapes={"input_ids": (1, 8)})
    projections, feed_forward, attention = 4 * 32 * 32, 2 * 32 * 64, 2 * 8 * 8 * 32  # per token; QK^T and AV
    assert facts.macs == 8 * (projections + feed_forward) + attention and facts.macs_unresolved_nodes == 0


def test_int8_recipes_build_a_model_whose_branches_read_the_main_graph(tmp_path, capsys):
    from harness.cli import main

    path = _if_model(tmp_path, unsorted=False)
    out = tmp_path / "out"
    assert main(["variants", str(path), "--recipes", "int8-dynamic,int8-static", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "FAILED" not in printed and "MACs int8-dynamic: If 'y'" in printed
