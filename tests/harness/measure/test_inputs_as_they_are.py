"""Models shaped like real ones: an RNN-style model whose state carries the batch on dim 1 and an
int64 scalar constant (a sample rate) is measured at several batch sizes without any --input-shape."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.cli import main
from tests.helpers import FAST_FLAGS, make_onnx_model


@pytest.fixture(scope="module")
def rnn_style_onnx(tmp_path_factory: pytest.TempPathFactory):
    """y = x @ W + mean(state over layers) * (sr == 16000): x [batch, 8], state [2, batch, 4], sr []."""
    weight = numpy_helper.from_array(np.ones((8, 4), dtype=np.float32), "W")
    expected_rate = numpy_helper.from_array(np.array(16000, dtype=np.int64), "rate")
    model = make_onnx_model(
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 4]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_node("MatMul", ["x", "W"], ["projected"]),
            helper.make_node("ReduceMean", ["state"], ["carried"], axes=[0], keepdims=0),
            helper.make_node("Equal", ["sr", "rate"], ["is_rate"]),
            helper.make_node("Cast", ["is_rate"], ["gate"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["carried", "gate"], ["gated"]),
            helper.make_node("Add", ["projected", "gated"], ["y"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializers=[weight, expected_rate],
    )
    path = tmp_path_factory.mktemp("rnn") / "rnn_style.onnx"
    onnx.save(model, str(path))
    return path


def test_an_rnn_state_and_a_scalar_constant_are_measured_as_they_are(rnn_style_onnx, tmp_path, capsys):
    args = ["bench", str(rnn_style_onnx), "--batch", "1,4", "--input-value", "sr=16000", *FAST_FLAGS]
    assert main([*args, "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    [path] = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert all(cell["status"] == "ok" for cell in record["cells"])
    inputs = {item["name"]: item for item in record["model_source"]["inputs"]}
    assert inputs["state"]["batch_axis"] == 1 and inputs["sr"]["batch_axis"] is None
    assert inputs["sr"]["constant"] == 16000 and inputs["x"]["batch_axis"] == 0


def test_a_torch_lstm_with_its_states_and_sample_rate_is_measured_on_its_data(tmp_path, capsys):
    """nn.LSTM's h0/c0 are [layers, batch, hidden]; `sr` an int64 scalar; the sequence length is
    symbolic and only the data fixes it. Measured at two batch sizes with no --input-shape."""
    from tests.own_data_models import write_lstm

    model, data = write_lstm(tmp_path)
    args = ["bench", str(model), "--data", str(data), "--batch", "1,4", *FAST_FLAGS, "--out", str(tmp_path / "out")]
    assert main(args) == 0, capsys.readouterr().err
    [path] = (tmp_path / "out").glob("*.json")
    record = json.loads(path.read_text())
    assert [cell["status"] for cell in record["cells"]] == ["ok", "ok"]
    inputs = {item["name"]: item for item in record["model_source"]["inputs"]}
    assert inputs["h0"]["batch_axis"] == 1 and inputs["sr"]["batch_axis"] is None
    assert record["model_source"]["data"]["arrays"]["x"]["shape"] == [32, 20, 16]
