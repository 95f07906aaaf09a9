"""The local runner against real worker processes: a real one, one that segfaults, one that hangs."""

import sys
import textwrap
from dataclasses import replace

from targets.runners.local import LocalRunner
from tests.helpers import FAST_PROTOCOL, HANGING_WORKER, SEGFAULTING_WORKER, SILENT_EXIT_WORKER, cell_request


def _script_runner(tmp_path, source):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(source))
    return LocalRunner(worker_command=(sys.executable, str(script)))


def test_real_worker_measures_a_cell(tiny_conv_onnx):
    result = LocalRunner().run_cell(cell_request(tiny_conv_onnx, batch_size=2), timeout_s=120)
    assert result.status == "ok", result
    assert result.provider == "CPUExecutionProvider"
    assert len(result.latencies_ns) >= FAST_PROTOCOL.min_iterations
    assert result.memory["peak_rss_bytes"] >= result.memory["rss_increase_bytes"] > 0
    assert result.cold_start_ms["session"] > 0 and result.cold_start_ms["first_inference"] > 0


def test_worker_error_becomes_a_failed_result(tiny_conv_onnx):
    request = cell_request(tiny_conv_onnx)
    request = replace(request, inputs=(replace(request.inputs[0], name="not_the_input"),))
    result = LocalRunner().run_cell(request, timeout_s=120)
    assert result.status == "failed"
    assert "not_the_input" in result.error


def test_segfaulting_worker_is_reported(tmp_path, tiny_conv_onnx):
    result = _script_runner(tmp_path, SEGFAULTING_WORKER).run_cell(cell_request(tiny_conv_onnx), timeout_s=60)
    assert result.status == "failed"
    assert result.error.startswith("worker crashed with SIGSEGV")


def test_hanging_worker_is_killed_after_the_timeout(tmp_path, tiny_conv_onnx):
    result = _script_runner(tmp_path, HANGING_WORKER).run_cell(cell_request(tiny_conv_onnx), timeout_s=1)
    assert result.status == "failed"
    assert "worker hung: killed after 1 s" in result.error


def test_worker_that_exits_without_a_result_shows_its_output(tmp_path, tiny_conv_onnx):
    result = _script_runner(tmp_path, SILENT_EXIT_WORKER).run_cell(cell_request(tiny_conv_onnx), timeout_s=60)
    assert result.status == "failed"
    assert "exited with code 3" in result.error
    assert "missing library" in result.error
