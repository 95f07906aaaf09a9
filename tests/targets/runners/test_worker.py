"""The worker process's two modes, called in this process: one cell, and live bursts over pipes."""

import io
import json

from targets.runners.worker import main, measure_cell, serve_bursts
from tests.helpers import FAST_PROTOCOL, cell_request


def test_one_cell_is_timed_with_every_phase(tiny_conv_onnx):
    result = measure_cell(cell_request(tiny_conv_onnx, batch_size=2))
    assert result.ok and result.provider == "CPUExecutionProvider"
    assert len(result.latencies_ns) >= FAST_PROTOCOL.min_iterations
    assert result.warmup_iterations >= FAST_PROTOCOL.warmup_min_iterations
    assert result.stopped_by in ("minimums_met", "max_duration")
    assert 0.0 <= result.other_processes_cpu_share <= 1.0


def test_live_mode_answers_each_burst_then_reports_memory(tiny_conv_onnx):
    commands = io.StringIO(json.dumps({"burst_s": 0.02}) + "\n" + json.dumps({"stop": True}) + "\n")
    replies = io.StringIO()
    serve_bursts(cell_request(tiny_conv_onnx), commands, replies)
    messages = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert [message["status"] for message in messages] == ["ready", "ok", "done"]
    assert messages[0]["provider"] == "CPUExecutionProvider" and messages[1]["latencies_ns"]
    assert messages[2]["memory"]["peak_rss_bytes"] > 0


def test_a_wrong_command_line_is_a_usage_error(capsys):
    assert main(["only-one-argument"]) == 2
    assert "usage:" in capsys.readouterr().err
