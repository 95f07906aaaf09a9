"""The cuda-gpu profile on a real NVIDIA host (marker `gpu`: skipped with the reason elsewhere)."""

import onnxruntime
import pytest

from harness.measure.bench import BenchRequest, run_bench
from targets.host.fingerprint import fingerprint_host
from targets.profiles import load_target
from targets.runners.compatibility import reasons_host_cannot_run
from tests.helpers import FAST_PROTOCOL


@pytest.mark.gpu
def test_gpu_is_fingerprinted_and_the_profile_judged():
    host = fingerprint_host()
    assert host.gpus, "nvidia-smi lists a GPU but the fingerprint has none"
    gpu = host.gpus[0]
    assert gpu.name and gpu.compute_capability and gpu.driver
    reasons = reasons_host_cannot_run(load_target("cuda-gpu"), host)
    assert not any("no CUDA device" in reason for reason in reasons)
    has_cuda_provider = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert (reasons == []) == has_cuda_provider, reasons


@pytest.mark.gpu
def test_bench_runs_on_the_cuda_provider(tiny_conv_onnx, tmp_path):
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime here has no CUDAExecutionProvider: install the gpu extra (onnxruntime-gpu)")
    request = BenchRequest(
        model=str(tiny_conv_onnx), target="cuda-gpu", batch_sizes=(1,), protocol=FAST_PROTOCOL, out_dir=tmp_path
    )
    record, _ = run_bench(request)
    (cell,) = record["cells"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["provider"] == "CUDAExecutionProvider"
