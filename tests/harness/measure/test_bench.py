"""`speedproof bench` end to end: real ONNX Runtime workers on tiny models built here."""

import json
import platform
import sys
import textwrap

import pytest

from harness.measure.bench import BenchRequest, run_bench
from harness.records.store import SCHEMA_VERSION, load_record
from targets.errors import SpeedproofError
from targets.runners.local import LocalRunner
from tests.helpers import FAST_PROTOCOL

CELL_KEYS = {
    "model",
    "variant",
    "backend",
    "provider",
    "batch_size",
    "status",
    "error",
    "artifact",
    "latency_ms",
    "cv",
    "iterations",
    "duration_s",
    "throughput_per_s",
    "cold_start_ms",
    "memory",
    "warnings",
}
TOP_LEVEL_KEYS = {"schema_version", "run_id", "created_at", "tool_version", "git_commit", "host", "target", "cells"}
# a real worker, except that it segfaults on batch 8: a crash in the middle of a run
CRASH_ON_BATCH_8 = """
import ctypes, json, runpy, sys
request = json.load(open(sys.argv[1]))
if request["batch_size"] == 8:
    ctypes.string_at(0)
sys.argv = ["targets.runners.worker", *sys.argv[1:]]
runpy.run_module("targets.runners.worker", run_name="__main__")
"""


def _bench(model, tmp_path, **changes):
    settings = dict(
        model=str(model),
        target="x86-cpu",
        batch_sizes=(1, 2),
        threads=1,
        protocol=FAST_PROTOCOL,
        out_dir=tmp_path / "results",
    )
    settings.update(changes)
    return BenchRequest(**settings)


def test_record_matches_the_contract(tiny_conv_onnx, tmp_path):
    record, path = run_bench(_bench(tiny_conv_onnx, tmp_path))
    assert TOP_LEVEL_KEYS <= set(record)
    assert record["schema_version"] == SCHEMA_VERSION
    assert [variant["recipe"] for variant in record["variants"]] == ["baseline"]
    assert record["created_at"].endswith("Z")
    assert record["target"]["name"] == "x86-cpu"
    assert record["model_source"]["kind"] == "onnx-file"
    assert record["model_source"]["inputs"][0]["dims"][1:] == [3, 16, 16]
    assert load_record(path) == json.loads(json.dumps(record))
    assert [cell["batch_size"] for cell in record["cells"]] == [1, 2]
    for cell in record["cells"]:
        assert CELL_KEYS <= set(cell)
        assert cell["status"] == "ok", cell["error"]
        assert cell["variant"] == "baseline" and cell["model"] == "tiny_conv"
        assert cell["provider"] == "CPUExecutionProvider"
        assert set(cell["artifact"]) >= {"path", "sha256", "bytes", "zipped_bytes", "params", "macs", "alignment"}
        assert cell["quality"] == {"metric": "fidelity", "reference": True}  # the baseline is the reference
        latency = cell["latency_ms"]
        assert latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p95"] <= latency["p99"] <= latency["max"]
        assert cell["iterations"] >= FAST_PROTOCOL.min_iterations
        assert cell["duration_s"] >= FAST_PROTOCOL.min_duration_s
        assert cell["throughput_per_s"] == pytest.approx(cell["batch_size"] * cell["iterations"] / cell["duration_s"])
        assert set(cell["cold_start_ms"]) == {"session", "first_inference"}
        assert cell["memory"]["peak_rss_bytes"] >= cell["memory"]["rss_increase_bytes"] >= 0
        assert isinstance(cell["warnings"], list)
        assert len(cell["latencies_ns"]) == cell["iterations"]


def test_a_crashing_cell_is_recorded_and_the_others_run(tiny_conv_onnx, tmp_path):
    script = tmp_path / "crash_on_batch_8.py"
    script.write_text(textwrap.dedent(CRASH_ON_BATCH_8))
    runner = LocalRunner(worker_command=(sys.executable, str(script)))
    record, _ = run_bench(_bench(tiny_conv_onnx, tmp_path, batch_sizes=(1, 8, 2)), runner=runner)
    statuses = {cell["batch_size"]: cell["status"] for cell in record["cells"]}
    assert statuses == {1: "ok", 8: "failed", 2: "ok"}
    crashed = record["cells"][1]
    assert crashed["error"].startswith("worker crashed with SIGSEGV")
    assert crashed["latency_ms"] is None


def test_a_hanging_cell_is_killed_and_recorded(tiny_conv_onnx, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(600)\n")
    protocol = FAST_PROTOCOL.__class__(**{**FAST_PROTOCOL.as_dict(), "load_allowance_s": 0.5, "max_duration_s": 0.2})
    runner = LocalRunner(worker_command=(sys.executable, str(script)))
    record, _ = run_bench(_bench(tiny_conv_onnx, tmp_path, batch_sizes=(1,), protocol=protocol), runner=runner)
    (cell,) = record["cells"]
    assert cell["status"] == "failed" and cell["error"].startswith("worker hung")


def test_fixed_batch_model_fails_only_the_impossible_batch(fixed_batch_onnx, tmp_path):
    record, _ = run_bench(_bench(fixed_batch_onnx, tmp_path, batch_sizes=(1, 4)))
    ok, failed = record["cells"]
    assert ok["status"] == "ok"
    assert failed["status"] == "failed" and "fixed batch dimension of 1" in failed["error"]


def test_unresolvable_dim_stops_before_measuring(embedding_onnx, tmp_path):
    with pytest.raises(SpeedproofError, match="--input-shape ids=1xN"):
        run_bench(_bench(embedding_onnx, tmp_path))
    assert not (tmp_path / "results").exists()
    record, _ = run_bench(_bench(embedding_onnx, tmp_path, input_shapes=("ids=1x32",), batch_sizes=(3,)))
    assert record["cells"][0]["status"] == "ok"


def test_earlier_records_are_kept(tiny_conv_onnx, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    earlier = results / "earlier.json"
    earlier.write_text('{"schema_version": 1, "run_id": "old"}')
    for _ in range(2):
        run_bench(_bench(tiny_conv_onnx, tmp_path, batch_sizes=(1,)))
    assert earlier.read_text() == '{"schema_version": 1, "run_id": "old"}'
    assert len(list(results.glob("*.json"))) == 3


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("missing.onnx", "model file not found: missing.onnx"),
        ("resnet19", r"unknown zoo model 'resnet19' \(did you mean \"resnet18\"\?\)"),
        ("no_such_module_xyz:build", "no module 'no_such_module_xyz' in the current folder"),
    ],
)
def test_bad_model_names_are_clear(tmp_path, model, message):
    with pytest.raises(SpeedproofError, match=message):
        run_bench(_bench(model, tmp_path))


def test_unknown_target_lists_valid_ones(tiny_conv_onnx, tmp_path):
    with pytest.raises(SpeedproofError, match="valid: arm-edge, cuda-gpu, x86-cpu"):
        run_bench(_bench(tiny_conv_onnx, tmp_path, target="x86_cpu"))


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the wording checked is an x86-64 host's")
def test_target_this_host_cannot_run_says_why(tiny_conv_onnx, tmp_path):
    with pytest.raises(SpeedproofError, match="cannot run target arm-edge: host is x86_64, profile needs aarch64"):
        run_bench(_bench(tiny_conv_onnx, tmp_path, target="arm-edge"))
