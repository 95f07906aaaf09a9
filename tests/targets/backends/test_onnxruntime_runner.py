import numpy as np
import pytest

from targets.backends import load_runner_class
from targets.backends.onnxruntime.runner import OnnxRuntimeRunner
from targets.errors import SpeedproofError


def test_lifecycle_and_what_really_ran(tiny_conv_onnx):
    runner = OnnxRuntimeRunner(str(tiny_conv_onnx), threads=1, options={"execution_provider": "CPUExecutionProvider"})
    with pytest.raises(SpeedproofError, match="before activate"):
        runner.get_input_metadata()
    with runner:
        (meta,) = runner.get_input_metadata()
        assert meta.name == "input" and meta.dtype == "float32" and meta.shape[1:] == (3, 16, 16)
        (output,) = runner.infer({"input": np.zeros((2, 3, 16, 16), np.float32)})
        assert output.shape == (2, 4)
        assert runner.actual_provider == "CPUExecutionProvider"
    assert not runner.is_active


def test_unavailable_provider_lists_the_available_ones(tiny_conv_onnx):
    runner = OnnxRuntimeRunner(
        str(tiny_conv_onnx), threads=1, options={"execution_provider": "NoSuchExecutionProvider"}
    )
    with pytest.raises(SpeedproofError, match=r"NoSuchExecutionProvider.*available: .*CPUExecutionProvider"):
        runner.activate()


def test_registry_loads_the_runner_and_rejects_unknown_names():
    assert load_runner_class("onnxruntime") is OnnxRuntimeRunner
    with pytest.raises(SpeedproofError, match="unknown backend 'tensorflow'"):
        load_runner_class("tensorflow")
