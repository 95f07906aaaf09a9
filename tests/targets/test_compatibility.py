from targets.host.fingerprint import GpuInfo, fingerprint_host
from targets.profiles import load_target, with_backend
from targets.runners.compatibility import default_target_name, reasons_host_cannot_run
from tests.helpers import synthetic_host


def test_x86_host_runs_x86_cpu_and_says_why_not_arm():
    host = synthetic_host()
    assert reasons_host_cannot_run(load_target("x86-cpu"), host) == []
    assert "host is x86_64, profile needs aarch64" in reasons_host_cannot_run(load_target("arm-edge"), host)


def test_gpu_profile_without_a_gpu_says_so():
    reasons = reasons_host_cannot_run(load_target("cuda-gpu"), synthetic_host())
    assert any(reason.startswith("no CUDA device") for reason in reasons)


def test_gpu_profile_with_a_gpu_but_cpu_only_onnxruntime_names_the_providers():
    # a GPU described by hand: this host may have none, and the check only reads the fingerprint
    host = synthetic_host(gpus=(GpuInfo("NVIDIA H100", "9.0", "580", 80 * 1024**3),))
    reasons = reasons_host_cannot_run(with_backend(load_target("cuda-gpu"), "onnxruntime"), host)
    assert not any("no CUDA device" in reason for reason in reasons)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert any("has no CUDAExecutionProvider (available:" in reason for reason in reasons)


def test_arm_host_defaults_to_arm_edge_and_cannot_run_x86():
    host = synthetic_host(isa="aarch64")
    assert default_target_name(host) == "arm-edge"
    assert "host is aarch64, profile needs x86_64" in reasons_host_cannot_run(load_target("x86-cpu"), host)


def test_this_host_has_a_runnable_default():
    host = fingerprint_host()
    assert reasons_host_cannot_run(load_target(default_target_name(host)), host) == []


def test_each_backend_of_a_profile_is_judged_on_its_own():
    """The fingerprint says there is a GPU; torch on this host is asked itself whether it sees one."""
    import torch

    host = synthetic_host(gpus=(GpuInfo("NVIDIA H100", "9.0", "580", 80 * 1024**3),))
    torch_reasons = reasons_host_cannot_run(with_backend(load_target("cuda-gpu"), "torch"), host)
    assert bool(torch_reasons) != torch.cuda.is_available()
    if torch_reasons:
        assert torch_reasons == [
            f"backend torch: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})"
        ]
    assert [spec.name for spec in with_backend(load_target("cuda-gpu"), None).backends] == ["torch"]
