"""The local runner against real worker processes: a real one, one that segfaults, one that hangs."""

import sys
import textwrap

from targets.local_runner import LocalWorkerRunner
from tests.conftest import FAST_PROTOCOL

SEGFAULTING_WORKER = "import ctypes\nctypes.string_at(0)\n"
HANGING_WORKER = "import time\nprint('loading...', flush=True)\ntime.sleep(600)\n"
SILENT_EXIT_WORKER = "import sys\nprint('cannot start: missing library', file=sys.stderr)\nsys.exit(3)\n"


def _request(tiny_conv_onnx, batch_size=1):
    return {
        "artifact_path": str(tiny_conv_onnx),
        "backend": "onnxruntime",
        "options": {"execution_provider": "CPUExecutionProvider"},
        "threads": 1,
        "cpu_affinity": [],
        "inputs": [{"name": "input", "dtype": "float32", "shape": [batch_size, 3, 16, 16]}],
        "seed": 0,
        "batch_size": batch_size,
        "protocol": FAST_PROTOCOL.as_dict(),
    }


def _script_runner(tmp_path, source):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(source))
    return LocalWorkerRunner(worker_command=(sys.executable, str(script)))


def test_real_worker_measures_a_cell(tiny_conv_onnx):
    result = LocalWorkerRunner().run_cell(_request(tiny_conv_onnx, batch_size=2), timeout_s=120)
    assert result["status"] == "ok", result
    assert result["provider"] == "CPUExecutionProvider"
    assert len(result["latencies_ns"]) >= FAST_PROTOCOL.min_iterations
    assert result["memory"]["peak_rss_bytes"] >= result["memory"]["rss_increase_bytes"] > 0
    assert result["cold_start_ms"]["session"] > 0 and result["cold_start_ms"]["first_inference"] > 0


def test_worker_error_becomes_a_failed_result(tiny_conv_onnx):
    request = _request(tiny_conv_onnx)
    request["inputs"][0]["name"] = "not_the_input"
    result = LocalWorkerRunner().run_cell(request, timeout_s=120)
    assert result["status"] == "failed"
    assert "not_the_input" in result["error"]


def test_segfaulting_worker_is_reported(tmp_path, tiny_conv_onnx):
    result = _script_runner(tmp_path, SEGFAULTING_WORKER).run_cell(_request(tiny_conv_onnx), timeout_s=60)
    assert result["status"] == "failed"
    assert result["error"].startswith("worker crashed with SIGSEGV")


def test_hanging_worker_is_killed_after_the_timeout(tmp_path, tiny_conv_onnx):
    result = _script_runner(tmp_path, HANGING_WORKER).run_cell(_request(tiny_conv_onnx), timeout_s=1)
    assert result["status"] == "failed"
    assert "worker hung: killed after 1 s" in result["error"]


def test_worker_that_exits_without_a_result_shows_its_output(tmp_path, tiny_conv_onnx):
    result = _script_runner(tmp_path, SILENT_EXIT_WORKER).run_cell(_request(tiny_conv_onnx), timeout_s=60)
    assert result["status"] == "failed"
    assert "exited with code 3" in result["error"]
    assert "missing library" in result["error"]
