"""Live workers against real processes: bursts on a real session, and ones that crash, hang or fail."""

import sys
import textwrap
from dataclasses import replace

import pytest

from targets.runners.live import LiveWorker, LiveWorkerFailed
from tests.helpers import HANGING_WORKER, SEGFAULTING_WORKER, cell_request


def _script_worker(tmp_path, source, request):
    script = tmp_path / "live_worker.py"
    script.write_text(textwrap.dedent(source))
    return LiveWorker(request, "variant", command=(sys.executable, str(script)))


def test_live_worker_answers_bursts_and_reports_peak_memory(tiny_conv_onnx):
    with LiveWorker(cell_request(tiny_conv_onnx), "baseline") as worker:
        ready = worker.start(timeout_s=120)
        assert ready["provider"] == "CPUExecutionProvider" and ready["warmup_iterations"] >= 2
        bursts = [worker.burst(0.05) for _ in range(3)]
        done = worker.stop()
    for burst in bursts:
        assert len(burst["latencies_ns"]) >= 1 and burst["duration_s"] >= 0.05
    assert done["memory"]["peak_rss_bytes"] >= done["memory"]["rss_increase_bytes"] > 0


def test_a_worker_with_a_companion_holds_both_sides_and_refuses_a_side_it_has_not(tiny_conv_onnx):
    request = cell_request(tiny_conv_onnx)
    with LiveWorker(request, "baseline+variant", companions=[request]) as worker:
        ready = worker.start(timeout_s=120)
        assert [side["provider"] for side in ready["sides"]] == ["CPUExecutionProvider"] * 2
        assert all(len(worker.burst(0.02, side=side)["latencies_ns"]) >= 1 for side in (0, 1))
        with pytest.raises(LiveWorkerFailed, match="burst command for side 2; this worker has sides 0-1"):
            worker.burst(0.02, side=2)
    with pytest.raises(ValueError, match="takes no companions"):
        LiveWorker(request, "remote", request_on_stdin=True, companions=[request])


def test_a_load_failure_is_reported_with_the_workers_message(tiny_conv_onnx):
    request = cell_request(tiny_conv_onnx)
    request = replace(request, inputs=(replace(request.inputs[0], name="not_the_input"),))
    with LiveWorker(request, "variant") as worker, pytest.raises(LiveWorkerFailed, match="variant: .*not_the_input"):
        worker.start(timeout_s=120)


def test_a_crashing_worker_is_reported(tmp_path, tiny_conv_onnx):
    with _script_worker(tmp_path, SEGFAULTING_WORKER, cell_request(tiny_conv_onnx)) as worker:
        with pytest.raises(LiveWorkerFailed, match="variant worker crashed with SIGSEGV while loading"):
            worker.start(timeout_s=60)


def test_a_hanging_worker_is_killed(tmp_path, tiny_conv_onnx):
    with _script_worker(tmp_path, HANGING_WORKER, cell_request(tiny_conv_onnx)) as worker:
        with pytest.raises(LiveWorkerFailed, match="variant worker hung: no answer after 1 s of loading"):
            worker.start(timeout_s=1)


def test_a_worker_that_dies_between_bursts_is_reported(tmp_path, tiny_conv_onnx):
    source = """
    import json, sys
    print(json.dumps({"status": "ready", "provider": "CPUExecutionProvider"}), flush=True)
    sys.stdin.readline()
    print("out of memory", file=sys.stderr)
    sys.exit(9)
    """
    with _script_worker(tmp_path, source, cell_request(tiny_conv_onnx)) as worker:
        worker.start(timeout_s=60)
        with pytest.raises(LiveWorkerFailed, match="exited with code 9 while a timed burst(.|\n)*out of memory"):
            worker.burst(0.05)


def test_a_backend_fall_back_is_reported_as_such(tmp_path, tiny_conv_onnx):
    """No CUDA here to fall back from, so a script stands in for a worker whose runtime fell back."""
    from targets.errors import BackendFellBack
    from targets.runners.worker import failure_result

    reported = failure_result(BackendFellBack("onnxruntime fell back: asked for CUDAExecutionProvider, runs on CPU"))
    assert reported["kind"] == "fell_back"
    source = f"""
    import json
    print(json.dumps({reported!r}), flush=True)
    """
    with _script_worker(tmp_path, source, cell_request(tiny_conv_onnx)) as worker:
        with pytest.raises(LiveWorkerFailed, match="fell back") as error:
            worker.start(timeout_s=60)
    assert error.value.kind == "fell_back"


def test_leaving_a_worker_whose_pipe_broke_does_not_raise(tmp_path, tiny_conv_onnx):
    """The unsent command stays in stdin's buffer when the link breaks; closing must not trip on it."""
    source = """
    import json
    print(json.dumps({"status": "ready", "provider": "CPUExecutionProvider"}), flush=True)
    """
    with _script_worker(tmp_path, source, cell_request(tiny_conv_onnx)) as worker:
        worker.start(timeout_s=60)
        worker._process.wait(timeout=60)  # gone: nobody reads its stdin any more
        with pytest.raises(LiveWorkerFailed, match="while receiving a command"):
            worker.burst(0.05)
