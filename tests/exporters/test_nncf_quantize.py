"""int8-nncf: NNCF's post-training quantizer on a real tiny ONNX model, run back on ONNX Runtime."""

import sys
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from exporters.nncf_quantize import quantize_int8_nncf
from targets.errors import SpeedproofError


def _feeds(count: int) -> list[dict[str, np.ndarray]]:
    return [{"input": np.random.default_rng(seed).random((1, 3, 16, 16), np.float32)} for seed in range(count)]


def test_nncf_writes_qdq_int8_that_onnxruntime_runs_close_to_the_float_model(tiny_conv_onnx, tmp_path):
    pytest.importorskip("nncf", reason="the nncf extra is not installed: pip install 'speedproof[nncf]'")
    destination = quantize_int8_nncf(tiny_conv_onnx, tmp_path / "nncf.onnx", _feeds(16))
    ops = Counter(node.op_type for node in onnx.load(str(destination)).graph.node)
    assert ops["QuantizeLinear"] >= 2 and ops["DequantizeLinear"] >= 3  # activations and the three weights
    feed = _feeds(1)[0]
    (quantized,) = ort.InferenceSession(str(destination), providers=["CPUExecutionProvider"]).run(None, feed)
    (original,) = ort.InferenceSession(str(tiny_conv_onnx), providers=["CPUExecutionProvider"]).run(None, feed)
    assert quantized.shape == original.shape
    assert np.abs(quantized - original).max() < 0.25 * np.abs(original).max() + 1e-3


def test_no_calibration_data_is_an_error():
    with pytest.raises(SpeedproofError, match="int8-nncf: no calibration data"):
        quantize_int8_nncf("unused.onnx", "unused-out.onnx", [])


def test_without_nncf_the_error_says_how_to_install_it(tiny_conv_onnx, tmp_path, monkeypatch):
    # the one mock: NNCF made unimportable, as on a host without the extra
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(SpeedproofError, match=r"int8-nncf needs NNCF.*pip install 'speedproof\[nncf\]'"):
        quantize_int8_nncf(tiny_conv_onnx, tmp_path / "out.onnx", _feeds(2))
