"""onnxruntime-gpu's CUDA provider that cannot start is FELL_BACK, never a number.

Real onnxruntime-gpu, no mock: the README's test command installs its wheel into
`.venv/onnxruntime-gpu` (apart from the CPU onnxruntime the rest of the suite uses, since both
install the same `onnxruntime` package). Each test runs the real CLI in a subprocess with that
folder first on PYTHONPATH and `CUDA_VISIBLE_DEVICES=""`, so the CUDA provider is listed as
available but cannot create a device on any host, with or without a GPU: the session silently
runs on the CPU provider, which is exactly the trap the check exists for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FAST_FLAGS, FAST_POLICY_FLAGS

ORT_GPU_SITE = Path(sys.prefix) / "onnxruntime-gpu"
CUDA_PROVIDER = "onnxruntime:execution_provider=CUDAExecutionProvider"

pytestmark = pytest.mark.skipif(
    not (ORT_GPU_SITE / "onnxruntime").is_dir(),
    reason=f"onnxruntime-gpu is not set up in {ORT_GPU_SITE} (the README's test command installs it there)",
)


def _speedproof_with_ort_gpu(*arguments: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[3]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ORT_GPU_SITE), str(root)]),
        "CUDA_VISIBLE_DEVICES": "",
    }
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _only_record(folder: Path) -> dict:
    (path,) = folder.glob("*.json")
    return json.loads(path.read_text())


def test_the_gpu_build_lists_a_cuda_provider_it_cannot_start():
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import onnxruntime as ort; print(ort.__file__); print(','.join(ort.get_available_providers()))",
        ],
        env={**os.environ, "PYTHONPATH": str(ORT_GPU_SITE), "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    location, providers = completed.stdout.split()
    assert location.startswith(str(ORT_GPU_SITE))
    assert "CUDAExecutionProvider" in providers.split(",")


def test_bench_records_the_fallback_as_a_failed_cell(tiny_conv_onnx, tmp_path):
    completed = _speedproof_with_ort_gpu(
        "bench", str(tiny_conv_onnx), "--backend", CUDA_PROVIDER, "--batch", "1", "--out", str(tmp_path), *FAST_FLAGS
    )
    assert completed.returncode == 1, completed.stderr
    assert "fell back: asked for CUDAExecutionProvider, the session runs on CPUExecutionProvider" in completed.stdout
    (cell,) = _only_record(tmp_path)["cells"]
    assert cell["status"] == "failed"
    assert cell["failure_kind"] == "fell_back"
    assert cell["latency_ms"] is None and cell["iterations"] == 0


def test_verify_gives_fell_back_and_no_speedup(tiny_conv_onnx, tmp_path):
    completed = _speedproof_with_ort_gpu(
        "verify",
        str(tiny_conv_onnx),
        "--backend",
        CUDA_PROVIDER,
        "--recipes",
        "identity",
        "--out",
        str(tmp_path),
        *FAST_POLICY_FLAGS,
    )
    assert completed.returncode == 1, completed.stderr
    cells = {cell["variant"]: cell for cell in _only_record(tmp_path)["cells"]}
    verdict = cells["identity"]["verdict"]
    assert [reason["code"] for reason in verdict["reasons"]] == ["FELL_BACK"]
    assert verdict.get("speedup") is None
