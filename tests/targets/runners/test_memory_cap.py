"""The profile's memory cap, enforced on real workers: the watchdog's logic, then bench and verify on
a profile whose cap the worker cannot fit (the runtime's import alone passes 20 MiB) and one it fits."""

import json
from pathlib import Path

import pytest

from harness.cli import EXIT_CELL_FAILED, EXIT_OK, main
from targets.profiles import load_target
from targets.runners.memory_cap import MemoryExceeded, MemoryWatchdog, peak_rss_bytes, resident_bytes
from tests.helpers import FAST_FLAGS, FAST_POLICY_FLAGS, TINY_CNN


def test_the_watchdog_calls_out_the_first_reading_past_the_cap():
    readings = iter([10, 20, 35, 50, 60])
    seen = []
    watchdog = MemoryWatchdog(40, seen.append, read=lambda: next(readings), interval_s=0.001).start()
    watchdog._thread.join(timeout=10)
    assert seen == [50] and watchdog.peak_bytes == 50  # once, and it stops watching


def test_a_spike_between_two_polls_is_caught_by_the_high_water_mark():
    assert 0 < resident_bytes() <= peak_rss_bytes()
    watchdog = MemoryWatchdog(1, lambda peak: None, read=lambda: 0, interval_s=60).start()
    watchdog.stop()  # its polls saw nothing (read says 0): only the kernel's peak can tell
    with pytest.raises(MemoryExceeded, match=r"peak RSS \d+ MiB exceeded the profile's memory cap of 0 MiB"):
        watchdog.check_high_water()
    roomy = MemoryWatchdog(2**50, lambda peak: None).start()
    roomy.stop()
    roomy.check_high_water()  # far below: nothing raised


def _profile(tmp_path: Path, memory_gb: float) -> Path:
    text = Path(load_target("x86-cpu").source).read_text().replace("memory_gb = 0", f"memory_gb = {memory_gb}")
    path = tmp_path / f"capped-{memory_gb}.toml"
    path.write_text(text.replace('name = "x86-cpu"', 'name = "capped"'))
    return path


def test_bench_fails_a_cell_whose_worker_does_not_fit_and_keeps_one_that_does(tiny_conv_onnx, tmp_path, capsys):
    for memory_gb, expected in ((0.02, EXIT_CELL_FAILED), (16, EXIT_OK)):
        arguments = ["bench", str(tiny_conv_onnx), "--target", str(_profile(tmp_path, memory_gb)), "--batch", "1"]
        code = main([*arguments, "--threads", "1", "--out", str(tmp_path / "out"), "--json", *FAST_FLAGS])
        (cell,) = json.loads(capsys.readouterr().out)["cells"]
        assert code == expected
        if expected == EXIT_OK:
            assert cell["status"] == "ok" and cell["memory"]["peak_rss_bytes"] < 16 * 2**30
            continue
        assert cell["status"] == "failed" and cell["failure_kind"] == "memory_exceeded"
        assert "exceeded the profile's memory cap of 20 MiB" in cell["error"]


def test_verify_rejects_a_model_that_does_not_fit_with_memory_exceeded(tmp_path, capsys):
    arguments = ["verify", TINY_CNN, "--target", str(_profile(tmp_path, 0.02)), "--recipes", "structured:0.5"]
    code = main([*arguments, "--threads", "1", "--out", str(tmp_path / "out"), "--json", *FAST_POLICY_FLAGS])
    assert code == EXIT_CELL_FAILED
    cell = {cell["variant"]: cell for cell in json.loads(capsys.readouterr().out)["cells"]}["structured:0.5"]
    (reason,) = cell["verdict"]["reasons"]
    assert (
        reason["code"] == "MEMORY_EXCEEDED" and "MiB exceeded the profile's memory cap of 20 MiB" in reason["message"]
    )
