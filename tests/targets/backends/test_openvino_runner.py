"""The OpenVINO backend on real OpenVINO compilations of tiny models: lifecycle, outputs that agree with ONNX
Runtime's, what really ran (the precision of each compute layer), and the fallbacks it refuses to hide."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

ov = pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install 'speedproof[openvino]'")

from exporters.onnx_transforms import quantize_int8_static  # noqa: E402
from targets.backends import load_runner_class  # noqa: E402
from targets.backends.openvino.layer_precision import (  # noqa: E402
    RuntimeLayer,
    fell_back_layers,
    quantized_compute_nodes,
)
from targets.backends.openvino.runner import OpenVinoRunner, cpu_capabilities  # noqa: E402
from targets.errors import BackendFellBack, SpeedproofError  # noqa: E402


@pytest.fixture(scope="module")
def tiny_int8_onnx(tiny_conv_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny conv net quantized to QDQ int8 by onnxruntime's static quantizer."""
    feeds = [{"input": np.random.default_rng(seed).random((1, 3, 16, 16), np.float32)} for seed in range(8)]
    return quantize_int8_static(tiny_conv_onnx, tmp_path_factory.mktemp("int8") / "int8.onnx", feeds, False)


def test_lifecycle_outputs_agree_with_onnxruntime_and_the_record_says_what_ran(tiny_conv_onnx):
    feed = {"input": np.random.default_rng(0).random((2, 3, 16, 16), np.float32)}
    runner = OpenVinoRunner(str(tiny_conv_onnx), threads=1, options={"performance_hint": "latency"})
    with pytest.raises(SpeedproofError, match="before activate"):
        runner.get_input_metadata()
    with runner:
        (meta,) = runner.get_input_metadata()
        assert meta.name == "input" and meta.dtype == "float32" and meta.shape == (None, 3, 16, 16)
        (output,) = runner.outputs_as_numpy(runner.infer(feed))
        assert runner.actual_provider == "openvino-CPU"
        facts = runner.runtime_facts()["openvino"]
    expected = ort.InferenceSession(str(tiny_conv_onnx), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-5)
    assert facts["threads"] == 1 and facts["quantized_layers"] == 0 and facts["inference_precision"] == "f32"
    assert facts["compute_layer_precisions"] == {"f32": 3}  # two convolutions and the linear layer
    assert not runner.is_active


def test_an_int8_artifact_runs_its_quantized_layers_in_int8(tiny_int8_onnx):
    with OpenVinoRunner(str(tiny_int8_onnx), threads=1, options={}) as runner:
        runner.infer({"input": np.zeros((1, 3, 16, 16), np.float32)})
        facts = runner.runtime_facts()["openvino"]
    assert facts["quantized_layers"] == 3
    assert set(facts["compute_layer_precisions"]) <= {"u8", "i8"}


def test_an_int8_artifact_forced_to_float_is_fell_back_with_its_layers_named(tiny_int8_onnx):
    """low_precision=off turns the plugin's low-precision transformations off (the precision hint alone does
    not: OpenVINO 2026.4 keeps quantized layers in int8 with inference_precision=f32, measured)."""
    runner = OpenVinoRunner(str(tiny_int8_onnx), threads=1, options={"low_precision": "off"})
    with pytest.raises(
        BackendFellBack,
        match=r"of the artifact's 3 quantized layers ran in float on OpenVINO: node_conv2d\S* \(Convolution, f32\)",
    ):
        runner.activate()
    assert not runner.is_active


def test_fallback_check_names_only_quantized_layers_that_ran_in_float():
    layers = [
        RuntimeLayer("conv_q", "Convolution", "u8", ("conv_q", "q_QuantizeLinear")),
        RuntimeLayer("conv_f", "Convolution", "f32", ("conv_f",)),  # left float by the quantizer: fine
        RuntimeLayer("fc/WithoutBiases", "FullyConnected", "f32", ("fc", "fc_DequantizeLinear")),
        RuntimeLayer("relu", "Eltwise", "f32", ("relu_q",)),  # not a compute layer
    ]
    fallen = fell_back_layers({"conv_q", "fc", "relu_q"}, layers)
    assert [layer.name for layer in fallen] == ["fc/WithoutBiases"]


def test_quantized_compute_nodes_are_the_qdq_fed_ones(tiny_int8_onnx, tiny_conv_onnx):
    assert len(quantized_compute_nodes(tiny_int8_onnx)) == 3
    assert quantized_compute_nodes(tiny_conv_onnx) == set()


def test_a_precision_the_cpu_lacks_is_a_reason_not_a_silent_f32_run(tiny_conv_onnx):
    capabilities = cpu_capabilities(ov.Core())
    reason = OpenVinoRunner.unavailable_reason({"inference_precision": "bf16"})
    if "BF16" in capabilities:
        assert reason is None
    else:
        assert "cannot compute in BF16" in reason and "AVX-512 BF16 or AMX" in reason
        with pytest.raises(SpeedproofError, match="cannot compute in BF16"):
            OpenVinoRunner(str(tiny_conv_onnx), threads=1, options={"inference_precision": "bf16"}).activate()
    assert OpenVinoRunner.unavailable_reason({"inference_precision": "f32"}) is None


def test_a_file_openvino_cannot_read_is_an_error_naming_it(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(SpeedproofError, match=r"openvino could not compile .*broken\.onnx"):
        OpenVinoRunner(str(broken), threads=1, options={}).activate()


def test_the_registry_loads_it():
    assert load_runner_class("openvino") is OpenVinoRunner
