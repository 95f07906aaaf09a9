"""Runs that are stopped or whose workers die: SIGTERM (what CI cancellation and `timeout` send)
and Ctrl-C stop the workers and remove the temp folders; after SIGKILL the next run removes what
the killed one left; a worker that segfaults, hangs or is SIGKILLed fails its own cell only."""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from dataclasses import replace

import pytest

from harness.measure.bench import BenchRequest, run_bench
from harness.verdict.verify import VerifyRequest, run_verify
from targets.runners.local import LocalRunner
from tests.helpers import FAST_POLICY, FAST_PROTOCOL, HANGING_WORKER, SEGFAULTING_WORKER

LONG_VERIFY = ["--burst-duration-s", "0.5", "--min-pairs", "100", "--max-pair-duration-s", "300"]
SELF_KILLING_WORKER = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"


def _wait_for_workers(sandbox, process, count: int = 2, timeout_s: float = 120.0, then_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers = [p for p in sandbox.processes() if "targets.runners.worker" in " ".join(p.cmdline())]
        if len(workers) >= count:
            time.sleep(then_s)  # into the worker's life: loading, timed bursts, fresh workers for the next pair
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    pytest.fail("the workers never started")


# after both workers appear: while they load and warm up, in the first bursts, and (the tiny model
# runs under fresh_workers_below_ms) while one pair's workers are stopped and the next pair's start
SIGNAL_DELAYS_S = (0.0, 0.3, 0.7, 1.1, 1.6)


@pytest.mark.parametrize(
    ("sent", "exit_code", "said"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_stopped_verify_leaves_no_worker_and_no_temp_folder(sandbox, tiny_conv_onnx, sent, exit_code, said):
    for delay_s in SIGNAL_DELAYS_S:
        process = sandbox.start("verify", str(tiny_conv_onnx), "--recipes", "identity", *LONG_VERIFY)
        _wait_for_workers(sandbox, process, then_s=delay_s)
        process.send_signal(sent)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == exit_code and said in stderr, (delay_s, stderr)
        assert sandbox.leftovers() == ([], []), f"{sent.name} {delay_s} s after the workers started"


def test_a_terminated_bench_stops_its_worker(sandbox, tiny_conv_onnx):
    process = sandbox.start(
        "bench", str(tiny_conv_onnx), "--batch", "1", "--min-duration-s", "120", "--max-duration-s", "300"
    )
    _wait_for_workers(sandbox, process, count=1)
    process.terminate()
    process.communicate(timeout=60)
    assert process.returncode == 143


def test_the_next_run_removes_what_a_killed_run_left(sandbox, tiny_conv_onnx):
    process = sandbox.start("verify", str(tiny_conv_onnx), "--recipes", "identity", *LONG_VERIFY)
    _wait_for_workers(sandbox, process)
    process.kill()
    process.communicate(timeout=60)
    left = [entry.name for entry in sandbox.system_tmp.iterdir()]
    assert any(name.startswith("speedproof-run-") for name in left)
    completed = sandbox.run("targets")
    assert completed.returncode == 0
    # the sandbox fixture checks that the killed run's folder is gone and its workers ended


def _script_runner(tmp_path, source):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(source))
    return LocalRunner(worker_command=(sys.executable, str(script)), live_worker_command=(sys.executable, str(script)))


WORKER_FAULTS = {"segfault": SEGFAULTING_WORKER, "hang": HANGING_WORKER, "sigkill": SELF_KILLING_WORKER}
FAULT_MESSAGES = {"segfault": "SIGSEGV", "hang": "hung", "sigkill": "SIGKILL"}


@pytest.mark.parametrize("fault", list(WORKER_FAULTS))
def test_a_dying_bench_worker_fails_its_cells_and_the_record_is_written(tmp_path, tiny_conv_onnx, fault):
    runner = _script_runner(tmp_path, WORKER_FAULTS[fault])
    protocol = replace(FAST_PROTOCOL, load_allowance_s=1.0, max_duration_s=0.5)
    request = BenchRequest(
        model=str(tiny_conv_onnx), batch_sizes=(1, 2), protocol=protocol, out_dir=tmp_path / "out", threads=1
    )
    record, path = run_bench(request, runner=runner)
    assert path.is_file() and [cell["status"] for cell in record["cells"]] == ["failed", "failed"]
    assert all(FAULT_MESSAGES[fault] in cell["error"] for cell in record["cells"])


@pytest.mark.parametrize("fault", list(WORKER_FAULTS))
def test_a_dying_live_worker_rejects_its_variant_as_failed(tmp_path, tiny_conv_onnx, fault):
    runner = _script_runner(tmp_path, WORKER_FAULTS[fault])
    protocol = replace(FAST_PROTOCOL, load_allowance_s=2.0)
    request = VerifyRequest(
        model=str(tiny_conv_onnx),
        recipes=("identity",),
        policy_overrides=FAST_POLICY,
        protocol=protocol,
        out_dir=tmp_path / "out",
    )
    record, path = run_verify(request, runner=runner)
    variant = next(cell for cell in record["cells"] if cell["variant"] == "identity")
    assert path.is_file() and variant["verdict"]["decision"] == "REJECT"
    assert variant["status"] == "failed" and FAULT_MESSAGES[fault] in variant["error"]
