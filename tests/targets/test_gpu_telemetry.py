"""GPU telemetry: the sampler's sums, NVML's device lookup, and the worker's wiring.

NVML cannot start on a host without an NVIDIA driver, so most tests here feed the sampler a
stand-in reader (a list of `GpuSample`s, as NVML's answers would become); the one that reaches the
real nvidia-ml-py checks that it says why it cannot read a GPU. The real reader runs in the
`gpu`-marked torch backend tests on a CUDA host.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from targets.host.fingerprint import detect_gpus
from targets.host.gpu_telemetry import (
    GpuSample,
    GpuSampler,
    GpuTelemetry,
    nvml_device_handle,
    nvml_reader,
    slowdown_warning,
)
from targets.runners.worker import load_session, memory_entry
from tests.helpers import FAST_PROTOCOL, cell_request

THERMAL = 0x40  # hw_thermal_slowdown
IDLE = 0x1  # gpu_idle: not a slowdown


def _readings(*samples: GpuSample):
    """A reader that answers the samples in turn, then repeats the last one."""
    remaining = list(samples)
    lock = threading.Lock()

    def read() -> GpuSample:
        with lock:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return read


def test_telemetry_keeps_peaks_and_the_reasons_that_slowed_the_clocks():
    telemetry = GpuTelemetry()
    telemetry.add(GpuSample(used_bytes=100, process_bytes=None, clock_event_mask=IDLE))
    telemetry.add(GpuSample(used_bytes=300, process_bytes=50, clock_event_mask=THERMAL | 0x4))
    telemetry.add(GpuSample(used_bytes=200, process_bytes=40, clock_event_mask=None))
    assert telemetry.samples == 3
    assert telemetry.memory_entry() == {"nvml_peak_device_used_bytes": 300, "nvml_peak_process_bytes": 50}
    assert telemetry.slowdowns == ["hw_thermal_slowdown", "sw_power_cap"]  # gpu_idle is not a slowdown
    assert GpuTelemetry().memory_entry() == {}


def test_the_sampler_reads_at_both_ends_even_when_the_work_is_shorter_than_its_interval():
    read = _readings(
        GpuSample(used_bytes=10, process_bytes=1, clock_event_mask=0),
        GpuSample(used_bytes=20, process_bytes=2, clock_event_mask=THERMAL),
    )
    with GpuSampler(read, interval_s=60.0) as sampler:
        pass
    assert sampler.telemetry.samples == 2
    assert sampler.telemetry.peak_used_bytes == 20
    assert sampler.telemetry.slowdowns == ["hw_thermal_slowdown"]


def test_the_sampler_keeps_sampling_while_the_work_runs():
    read = _readings(GpuSample(used_bytes=1, process_bytes=None, clock_event_mask=0))
    with GpuSampler(read, interval_s=0.001) as sampler:
        deadline = time.monotonic() + 30
        while sampler.telemetry.samples < 5 and time.monotonic() < deadline:
            threading.Event().wait(0.001)
    assert sampler.telemetry.samples >= 6 and sampler.error is None


def test_a_reader_that_fails_ends_sampling_not_the_measurement():
    calls = []

    def read() -> GpuSample:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("GPU is lost")
        return GpuSample(used_bytes=5, process_bytes=None, clock_event_mask=0)

    with GpuSampler(read, interval_s=0.001) as sampler:
        threading.Event().wait(0.05)
    assert sampler.error == "RuntimeError: GPU is lost"
    assert sampler.telemetry.samples == 1 and len(calls) == 2  # no retries after the failure


def test_shared_telemetry_adds_up_over_several_bursts():
    telemetry = GpuTelemetry()
    for used in (10, 30, 20):
        with GpuSampler(_readings(GpuSample(used, None, 0)), telemetry, interval_s=60.0):
            pass
    assert telemetry.samples == 6 and telemetry.peak_used_bytes == 30


def test_the_device_is_found_by_uuid_else_by_the_first_visible_index(monkeypatch):
    # a stand-in for pynvml's two lookups (NVML itself cannot start here)
    nvml = SimpleNamespace(
        nvmlDeviceGetHandleByUUID=lambda uuid: ("uuid", uuid),
        nvmlDeviceGetHandleByIndex=lambda index: ("index", index),
    )
    assert nvml_device_handle(nvml, "1b2c3d4e-0000") == ("uuid", "GPU-1b2c3d4e-0000")
    assert nvml_device_handle(nvml, "MIG-abc") == ("uuid", "MIG-abc")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert nvml_device_handle(nvml, None) == ("index", 3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-ffff")  # a UUID list: NVML numbering is unknown
    assert nvml_device_handle(nvml, None) == ("index", 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert nvml_device_handle(nvml, None) == ("index", 0)


@pytest.mark.skipif(bool(detect_gpus()), reason="this host has an NVIDIA driver: NVML starts here")
def test_without_a_driver_nvml_says_why_it_cannot_read():
    pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed (the dev extra installs it)")
    read, why = nvml_reader(None)
    assert read is None
    assert why is not None and why.startswith("NVML unavailable:")


def test_slowdown_warning_names_the_reasons():
    assert slowdown_warning([]) is None
    warning = slowdown_warning(["hw_thermal_slowdown"])
    assert warning is not None and warning.startswith("throttled:") and "hw_thermal_slowdown" in warning


def test_a_worker_session_on_a_gpu_reports_nvml_memory_and_a_throttle_warning(tiny_conv_onnx):
    # a real ORT session on the CPU, given a stand-in NVML reader as a CUDA runner would get one
    session = load_session(cell_request(tiny_conv_onnx))
    try:
        session.gpu_read = _readings(
            GpuSample(used_bytes=2**30, process_bytes=2**20, clock_event_mask=0),
            GpuSample(used_bytes=2**31, process_bytes=2**21, clock_event_mask=THERMAL),
        )
        with session.sampling_gpu():
            session.run_once()
        memory = memory_entry(session, {"device_peak_allocated_bytes": 123})
        warnings = session.worker_warnings()
    finally:
        session.close()
    assert memory["nvml_peak_device_used_bytes"] == 2**31 and memory["nvml_peak_process_bytes"] == 2**21
    assert memory["device_peak_allocated_bytes"] == 123 and memory["peak_rss_bytes"] > 0
    assert len(warnings) == 1 and "hw_thermal_slowdown" in warnings[0]


def test_a_session_whose_device_waits_for_launches_warns_launch_bound(tiny_conv_onnx):
    # stand-ins for a CUDA runner's two clocks (no GPU here): 0.5 ms of device work, 0.45 ms of launches
    session = load_session(cell_request(tiny_conv_onnx))
    try:
        session.device_elapsed, session.host_enqueue = (lambda: 500_000), (lambda: 450_000)
        session.time(FAST_PROTOCOL)
        session.time(FAST_PROTOCOL)  # a live worker's second burst adds to the first
        figures, warnings = session.launch_bound(), session.worker_warnings()
    finally:
        session.close()
    assert figures == {"enqueue_ms": 0.45, "device_ms": 0.5}
    assert len(session.enqueue_ns) >= 2 * FAST_PROTOCOL.min_iterations
    assert [w for w in warnings if w.startswith("launch-bound:")] == warnings and len(warnings) == 1


def test_a_gpu_session_without_nvml_says_what_is_missing(tiny_conv_onnx):
    session = load_session(cell_request(tiny_conv_onnx))
    session.close()
    assert session.gpu_read is None and session.worker_warnings() == []  # a CPU runner: nothing to sample
    session.gpu_telemetry_unavailable = "nvidia-ml-py is not installed (pip install 'speedproof[gpu]')"
    (warning,) = session.worker_warnings()
    assert warning.startswith("gpu telemetry: nvidia-ml-py is not installed")
