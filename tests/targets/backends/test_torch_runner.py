"""The torch backend on real programs: eager and compiled on the CPU here; on CUDA (marker `gpu`)
eager, float16 and CUDA graphs. What cannot run on this host is a reason, never a crash."""

import numpy as np
import pytest
import torch

from exporters.torch_program import export_program
from targets.backends import backend_entry, load_runner_class
from targets.backends.torch.runner import TorchRunner, torch_unavailable_reason
from targets.errors import SpeedproofError
from tests.tiny_models import tiny_cnn_without_data, tiny_torch_transformer


@pytest.fixture(scope="module")
def cnn_program(tmp_path_factory):
    model = tiny_cnn_without_data()
    path = tmp_path_factory.mktemp("programs") / "cnn.pt2"
    return export_program(model.module, model.example_inputs, path, ["input"]), model.module


@pytest.fixture(scope="module")
def transformer_program(tmp_path_factory):
    model = tiny_torch_transformer()
    path = tmp_path_factory.mktemp("programs") / "transformer.pt2"
    return export_program(model.module, model.example_inputs, path, ["input"]), model.module


def _reference(module, feed):
    with torch.inference_mode():
        return module(torch.from_numpy(feed["input"])).numpy()


def test_registry_runs_pt2_programs_with_the_torch_runner():
    assert load_runner_class("torch") is TorchRunner
    assert backend_entry("torch").artifact_kind == "pt2"
    assert backend_entry("onnxruntime").artifact_kind == "onnx"


def test_eager_on_the_cpu_computes_what_the_module_computes(cnn_program):
    path, module = cnn_program
    runner = TorchRunner(str(path), threads=1, options={"device": "cpu", "mode": "eager"})
    with pytest.raises(SpeedproofError, match="before activate"):
        runner.get_input_metadata()
    feed = {"input": np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)}
    threads_before = torch.get_num_threads()
    with runner:
        assert torch.get_num_threads() == 1
        (meta,) = runner.get_input_metadata()
        assert meta.name == "input" and meta.dtype == "float32" and meta.shape[1:] == (3, 16, 16)
        assert not runner.needs_synchronize
        outputs = runner.infer(feed)
        (first,) = runner.outputs_as_numpy(outputs)
        assert runner.actual_provider == "torch-eager on cpu"
        assert torch.is_inference_mode_enabled()
    assert not torch.is_inference_mode_enabled()  # left when the runner deactivates
    assert torch.get_num_threads() == threads_before  # quality checks run it in the CLI's process
    np.testing.assert_allclose(first, _reference(module, feed), rtol=1e-4, atol=1e-5)


def test_a_new_feed_is_used_not_the_first_one_kept(cnn_program):
    path, module = cnn_program
    rng = np.random.default_rng(1)
    feeds = [{"input": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)} for _ in range(2)]
    with TorchRunner(str(path), threads=1, options={}) as runner:
        results = [runner.outputs_as_numpy(runner.infer(feed))[0] for feed in feeds]
    for feed, result in zip(feeds, results, strict=True):
        np.testing.assert_allclose(result, _reference(module, feed), rtol=1e-4, atol=1e-5)


def test_bfloat16_casts_weights_and_inputs(transformer_program):
    path, module = transformer_program
    feed = {"input": np.random.default_rng(2).standard_normal((2, 10, 32)).astype(np.float32)}
    with TorchRunner(str(path), threads=1, options={"dtype": "bfloat16"}) as runner:
        assert runner.get_input_metadata()[0].dtype == "bfloat16"
        outputs = runner.infer(feed)
        assert outputs.dtype == torch.bfloat16
        (first,) = runner.outputs_as_numpy(outputs)
    np.testing.assert_allclose(first, _reference(module, feed), rtol=0.1, atol=0.1)


NO_COMPILER = torch_unavailable_reason({"device": "cpu", "mode": "compile"})


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"torch.compile cannot run here: {NO_COMPILER}")
def test_compile_mode_runs_inductor_on_the_cpu(cnn_program):
    path, module = cnn_program
    feed = {"input": np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    with TorchRunner(str(path), threads=1, options={"mode": "compile"}) as runner:
        (first,) = runner.outputs_as_numpy(runner.infer(feed))
        assert runner.actual_provider == "torch-compile on cpu"
    np.testing.assert_allclose(first, _reference(module, feed), rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer of a host without CUDA")
def test_what_this_host_cannot_run_is_a_reason(cnn_program):
    assert "no CUDA device" in torch_unavailable_reason({"device": "cuda"})
    assert (
        torch_unavailable_reason({"device": "cpu", "mode": "cuda-graph"}) == 'mode "cuda-graph" needs device = "cuda"'
    )
    path, _ = cnn_program
    with pytest.raises(SpeedproofError, match="torch backend cannot run here: no CUDA device"):
        TorchRunner(str(path), threads=1, options={"device": "cuda"}).activate()


def test_eager_is_available_on_a_cpu_and_compile_where_there_is_a_compiler(monkeypatch):
    assert torch_unavailable_reason({"device": "cpu", "mode": "eager"}) is None
    monkeypatch.setenv("PATH", "")  # no g++ to be found: inductor could not build its CPU kernels
    assert "needs a C++ compiler" in torch_unavailable_reason({"device": "cpu", "mode": "compile"})


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["eager", "cuda-graph"])
@pytest.mark.parametrize("program", ["cnn_program", "transformer_program"])
def test_cuda_modes_compute_what_the_module_computes(request, program, mode):
    path, module = request.getfixturevalue(program)
    shape = (4, 3, 16, 16) if program == "cnn_program" else (4, 10, 32)
    rng = np.random.default_rng(4)
    feeds = [{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(2)]
    options = {"device": "cuda", "mode": mode, "dtype": "float16"}
    with TorchRunner(str(path), threads=1, options=options) as runner:
        assert runner.needs_synchronize
        results = []
        for feed in feeds:  # a graph replays on new data copied into its static inputs
            outputs = runner.infer(feed)
            runner.synchronize()
            results.append(runner.outputs_as_numpy(outputs)[0])
        assert runner.actual_provider.startswith(f"torch-{mode} on ")
    for feed, result in zip(feeds, results, strict=True):
        np.testing.assert_allclose(result, _reference(module, feed), rtol=0.05, atol=0.05)


@pytest.mark.gpu
def test_end_to_end_timing_brings_the_output_to_the_host(cnn_program):
    path, _ = cnn_program
    feed = {"input": np.zeros((1, 3, 16, 16), np.float32)}
    with TorchRunner(str(path), threads=1, options={"device": "cuda", "timing": "end-to-end"}) as runner:
        (output,) = runner.infer(feed)
        assert output.device.type == "cpu"


def test_dtype_casts_floating_point_inputs_only(tmp_path):
    from tests.tiny_models import tiny_encoder

    model = tiny_encoder()
    path = export_program(model.module, model.example_inputs, tmp_path / "encoder.pt2", ["input_ids"])
    feed = {"input_ids": np.random.default_rng(5).integers(0, 1000, (2, 32)).astype(np.int64)}
    with TorchRunner(str(path), threads=1, options={"dtype": "bfloat16"}) as runner:
        assert runner.get_input_metadata()[0].dtype == "int64"  # token ids stay integers
        assert runner.outputs_as_numpy(runner.infer(feed))[0].shape[0] == 2


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["eager", "cuda-graph"])
def test_a_cuda_cell_times_on_device_events_and_samples_the_gpu(cnn_program, mode):
    """The worker's whole path on a GPU: device clock, enqueue times, torch's and NVML's memory."""
    from targets.inputs import InputSpec
    from targets.runners.base import WorkerRequest
    from targets.runners.worker import measure_cell
    from tests.helpers import FAST_PROTOCOL

    path, _ = cnn_program
    request = WorkerRequest(
        artifact_path=str(path),
        backend="torch",
        options={"device": "cuda", "mode": mode, "dtype": "float16"},
        threads=1,
        cpu_affinity=(),
        inputs=(InputSpec(name="input", dtype="float32", shape=(1, 3, 16, 16)),),
        batch_size=1,
        protocol=FAST_PROTOCOL,
    )
    result = measure_cell(request)
    assert result.ok, result.error
    assert result.clock == "device-kernel" and all(latency > 0 for latency in result.latencies_ns)
    assert result.memory["device_peak_allocated_bytes"] > 0
    try:
        import pynvml  # noqa: F401
    except ImportError:
        assert any(warning.startswith("gpu telemetry:") for warning in result.warnings)
    else:
        assert result.memory["nvml_peak_device_used_bytes"] >= result.memory["device_peak_allocated_bytes"]
