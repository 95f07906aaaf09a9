"""The cluster runner against a real Dask fleet on 127.0.0.1 (tests/dask_fleet.py): a worker is chosen
by its resources, artifacts travel by content hash, cells and live A/B workers run on that worker, and
a worker killed mid-cell makes that cell LOST."""

import subprocess
import sys
import threading
import time
from dataclasses import replace

import psutil
import pytest

from targets.cache_files import file_sha256
from targets.errors import FailureKind, SpeedproofError
from targets.runners.agent import RemoteError
from targets.runners.cluster import ClusterAddress, ClusterRunner, cluster_remote
from targets.runners.live import LiveWorkerFailed
from tests.dask_fleet import _wait_for_line
from tests.helpers import cell_request, with_external_data


def test_the_fleet_helper_finds_a_ready_line_that_came_in_one_chunk_with_others():
    # the cluster prints "worker at ..." and "scheduler at ..." close together; a text reader's
    # readline() would take both into its buffer, and the next select would wait for bytes already
    # read until the helper gave up (not ready within 90 s)
    script = (
        "import sys, time; sys.stdout.write('worker at a\\nscheduler at b ready\\n'); sys.stdout.flush(); "
        "time.sleep(600)"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert _wait_for_line(process, "scheduler at ", "the printer") == "scheduler at b ready"
    finally:
        process.kill()
        process.wait()


def test_a_cluster_address_parses_and_says_what_is_valid():
    assert ClusterAddress.parse("tcp://10.0.0.2:8786") == ClusterAddress("tcp://10.0.0.2:8786")
    assert ClusterAddress.parse("cluster:tcp://h:1?device=rpi5") == ClusterAddress("tcp://h:1", "rpi5")
    assert cluster_remote("tcp://h:1", "h100") == "cluster:tcp://h:1?device=h100"
    with pytest.raises(SpeedproofError, match="expected a Dask scheduler address like tls://scheduler:8786"):
        ClusterAddress.parse("scheduler:8786")
    with pytest.raises(SpeedproofError, match="unknown part 'gpu'; the only query key is device"):
        ClusterAddress.parse("tcp://h:1?gpu=1")


def _runner(fleet, device):
    return ClusterRunner(ClusterAddress(fleet.scheduler, device), "x86-cpu")


def _count_steps(runner):
    """The agent steps the runner runs from now on, by name, in order."""
    steps = []
    original = runner.run_step

    def counted(arguments, stdin, timeout_s):
        steps.append(arguments[0])
        return original(arguments, stdin, timeout_s)

    runner.run_step = counted
    return steps


def test_the_worker_is_chosen_by_its_device_tag_and_answers_for_its_machine(dask_fleet):
    runner = _runner(dask_fleet, "beta")
    assert runner.fingerprint().remote == "dask worker beta@" + runner.fingerprint().hostname
    assert runner.can_run(__import__("targets.profiles").profiles.load_target("x86-cpu")) == []
    with pytest.raises(RemoteError, match="no worker in the cluster offers target:x86-cpu and device:gamma") as none:
        _runner(dask_fleet, "gamma").fingerprint()
    assert "speedproof worker --scheduler" in str(none.value)
    with pytest.raises(RemoteError, match="no worker in the cluster offers target:cuda-gpu"):
        ClusterRunner(ClusterAddress(dask_fleet.scheduler), "cuda-gpu").fingerprint()


def test_artifacts_travel_by_content_hash_and_cells_run_on_the_worker(dask_fleet, tiny_conv_onnx):
    runner = _runner(dask_fleet, "alpha")
    digest = file_sha256(tiny_conv_onnx)
    path = runner.board_path(str(tiny_conv_onnx))
    assert path == str(dask_fleet.cache("alpha") / digest / tiny_conv_onnx.name)
    assert file_sha256(__import__("pathlib").Path(path)) == digest
    # a second runner (another run) finds it there: `has`, no copy
    again = _runner(dask_fleet, "alpha")
    steps = _count_steps(again)
    assert again.board_path(str(tiny_conv_onnx)) == path and steps == ["has"]
    result = runner.run_cell(cell_request(tiny_conv_onnx), timeout_s=120)
    assert result.ok, result.error
    assert result.provider == "CPUExecutionProvider" and result.latencies_ns


def test_a_model_with_external_data_travels_with_its_data_to_the_worker(dask_fleet, tiny_conv_onnx, tmp_path):
    model = with_external_data(tiny_conv_onnx, tmp_path / "model", 1.5)
    runner = _runner(dask_fleet, "alpha")
    steps = _count_steps(runner)
    result = runner.run_cell(cell_request(model), timeout_s=120)
    assert result.ok, result.error
    assert steps[-2:] == ["bundle", "cell"] and steps.count("put") + steps.count("has") >= 2
    assert runner.board_path(str(model)).startswith(str(dask_fleet.cache("alpha") / "bundles"))


def test_a_live_pair_runs_on_the_chosen_worker(dask_fleet, tiny_conv_onnx):
    runner = _runner(dask_fleet, "beta")
    worker = runner.start_live_worker(cell_request(tiny_conv_onnx), "baseline")
    try:
        assert worker.start(timeout_s=120)["provider"] == "CPUExecutionProvider"
        burst = worker.burst(0.05)
        assert burst["latencies_ns"] and burst["duration_s"] >= 0.05
        assert worker.stop()["memory"]["peak_rss_bytes"] > 0
    finally:
        worker.close()
    failing = runner.start_live_worker(
        replace(cell_request(tiny_conv_onnx), inputs=(replace(cell_request(tiny_conv_onnx).inputs[0], name="nope"),)),
        "variant",
    )
    try:
        with pytest.raises(LiveWorkerFailed, match="variant: .*nope"):
            failing.start(timeout_s=120)
    finally:
        failing.close()


def _child_running(pid, marker):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if marker in " ".join(child.cmdline()):
                    return
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no {marker!r} process appeared under the worker")


def test_a_worker_killed_mid_cell_makes_the_cell_lost_and_later_steps_fail_fast(dask_fleet, tiny_conv_onnx):
    worker = dask_fleet.start_worker("doomed")
    runner = _runner(dask_fleet, "doomed")
    runner.fingerprint()
    runner.board_path(str(tiny_conv_onnx))
    request = cell_request(tiny_conv_onnx)
    long_request = replace(request, protocol=replace(request.protocol, min_duration_s=60.0, max_duration_s=120.0))
    results = []
    measuring = threading.Thread(target=lambda: results.append(runner.run_cell(long_request, timeout_s=300)))
    measuring.start()
    _child_running(worker.pid, "cell")
    worker.kill()
    measuring.join(timeout=120)
    dask_fleet.stop_worker("doomed")
    (result,) = results
    assert not result.ok and result.kind == FailureKind.LOST
    assert "dask worker doomed@" in result.error and "the worker left the cluster during cell" in result.error
    later = runner.run_cell(request, timeout_s=60)
    assert later.kind == FailureKind.LOST and "left the cluster" in later.error


def test_without_dask_the_fleet_commands_say_which_extra_to_install(monkeypatch, capsys):
    """Dask is blocked from importing here (it is installed: the README's test command has the fleet extra)."""
    import sys

    from harness.cli import EXIT_USAGE, main

    monkeypatch.setitem(sys.modules, "distributed", None)
    for arguments in (
        ["worker", "--scheduler", "tcp://127.0.0.1:9", "--target", "x86-cpu"],
        ["cluster", "--local"],
        ["bench", "resnet18", "--cluster", "tcp://127.0.0.1:9", "--target", "x86-cpu"],
    ):
        assert main(arguments) == EXIT_USAGE
        assert "fleets need Dask distributed, which is not installed: pip install 'speedproof[fleet]'" in (
            capsys.readouterr().err
        )
