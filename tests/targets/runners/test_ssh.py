"""The SSH runner against a real sshd on 127.0.0.1 (tests/ssh_board.py): the board's fingerprint and
agent, artifacts copied once by content hash, one-shot cells and live A/B workers over ssh, and each
way a board can refuse or fail: unknown host key, wrong user key, a link killed mid-run, no
speedproof there, an address with a password."""

import json
import sys
from dataclasses import replace

import numpy as np
import pytest

from targets.cache_files import file_sha256
from targets.errors import FailureKind, SpeedproofError
from targets.profiles import load_target, with_backend
from targets.runners.live import LiveWorkerFailed
from targets.runners.ssh import RemoteError, SshAddress, SshRunner, explain_ssh_failure
from tests.helpers import cell_request, with_external_data


def _runner(board, config=None, python=sys.executable):
    return SshRunner(SshAddress.parse(board.url(python)), config or board.config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ssh://pi@rpi5.local", SshAddress("rpi5.local", "pi", None, "python3")),
        (
            "ssh://ubuntu@10.0.0.7:2222?python=/opt/sp/bin/python",
            SshAddress("10.0.0.7", "ubuntu", 2222, "/opt/sp/bin/python"),
        ),
        ("ssh://board", SshAddress("board")),
    ],
)
def test_addresses_parse(text, expected):
    assert SshAddress.parse(text) == expected
    assert str(expected).startswith("ssh://") and "python" not in str(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pi@rpi5", "expected ssh://"),
        ("http://rpi5", "expected ssh://"),
        ("ssh://pi:secret@rpi5", "a password in the address is refused"),
        ("ssh://rpi5:99999", "the port is not a number"),
        ("ssh://rpi5?pyhton=/usr/bin/python3", "unknown part 'pyhton'"),
    ],
)
def test_bad_addresses_say_what_is_valid(text, message):
    with pytest.raises(SpeedproofError, match=message):
        SshAddress.parse(text)


def test_ssh_failures_are_worded_by_cause():
    address = SshAddress("rpi5", "pi")
    assert "host key is unknown or has changed" in explain_ssh_failure(address, "Host key verification failed.\n")
    assert "refused the key" in explain_ssh_failure(address, "pi@rpi5: Permission denied (publickey).")
    assert "unreachable" in explain_ssh_failure(address, "ssh: connect to host rpi5 port 22: Connection refused")
    assert "was lost" in explain_ssh_failure(address, "Connection to rpi5 closed by remote host.")


def test_the_board_answers_with_its_fingerprint_and_can_run_the_cpu_target(ssh_board):
    runner = _runner(ssh_board)
    host = runner.fingerprint()
    assert host.remote == "ssh://board" and host.isa == "x86_64" and host.logical_cores >= 1
    assert runner.available_cpus()
    assert runner.can_run(with_backend(load_target("x86-cpu"), None)) == []
    cuda = runner.can_run(with_backend(load_target("x86-cpu"), "onnxruntime:execution_provider=NoSuchProvider"))
    assert len(cuda) == 1 and "on ssh://board: onnxruntime" in cuda[0] and "NoSuchProvider" in cuda[0]


def test_a_cell_runs_on_the_board_and_its_artifact_is_copied_once(ssh_board, tiny_conv_onnx):
    runner = _runner(ssh_board)
    result = runner.run_cell(cell_request(tiny_conv_onnx), timeout_s=120)
    assert result.ok, result.error
    assert result.provider == "CPUExecutionProvider" and result.latencies_ns
    # the board's cache keeps it under its content hash (other tests share this board)
    copied = ssh_board.cache / file_sha256(tiny_conv_onnx) / tiny_conv_onnx.name
    assert copied.read_bytes() == tiny_conv_onnx.read_bytes()
    first_copy = copied.stat().st_mtime_ns
    again = _runner(ssh_board)  # a new run: asks the board, which already has that sha256
    assert again.run_cell(cell_request(tiny_conv_onnx), timeout_s=120).ok
    assert copied.stat().st_mtime_ns == first_copy and len(list(copied.parent.iterdir())) == 1


def test_quality_outputs_come_from_the_board(ssh_board, tiny_conv_onnx):
    from targets.runners.local import LocalRunner

    backend = with_backend(load_target("x86-cpu"), None).backends[0]
    feeds = [
        {"input": np.random.default_rng(seed).standard_normal((2, 3, 16, 16)).astype(np.float32)} for seed in (1, 2)
    ]
    remote = _runner(ssh_board).first_outputs(str(tiny_conv_onnx), backend, 1, feeds)
    local = LocalRunner().first_outputs(str(tiny_conv_onnx), backend, 1, feeds)
    assert remote.shape == (4, 4)
    np.testing.assert_allclose(remote, local, rtol=1e-5)


def test_a_live_worker_on_the_board_answers_bursts_and_a_killed_link_is_lost(ssh_board, tiny_conv_onnx):
    runner = _runner(ssh_board)
    with runner.start_live_worker(cell_request(tiny_conv_onnx), "variant") as worker:
        ready = worker.start(timeout_s=120)
        assert ready["provider"] == "CPUExecutionProvider"
        assert worker.burst(0.02)["latencies_ns"]
        ssh_board.drop_connections()
        with pytest.raises(LiveWorkerFailed) as failed:
            worker.burst(0.02)
    assert failed.value.kind == FailureKind.LOST
    assert "connection to the board was lost" in str(failed.value) or "ssh failed" in str(failed.value)
    # the board itself is still there: the next cell runs
    assert runner.run_cell(cell_request(tiny_conv_onnx), timeout_s=120).ok


def test_an_unknown_host_key_is_refused_not_accepted(ssh_board, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    runner = _runner(ssh_board, ssh_board.client_config("unknown-host-key", known_hosts=empty))
    with pytest.raises(RemoteError, match="host key is unknown or has changed") as refused:
        runner.fingerprint()
    assert refused.value.kind == FailureKind.LOST
    assert empty.read_text() == ""  # nothing was added to known_hosts


def test_a_key_the_board_does_not_know_is_refused(ssh_board):
    config = ssh_board.client_config("wrong-key", identity=ssh_board.folder / "other_user_key")
    with pytest.raises(RemoteError, match="the board refused the key"):
        _runner(ssh_board, config).fingerprint()


def test_a_board_without_speedproof_says_so(ssh_board):
    bare = "/usr/bin/python3"  # Debian's Python: no speedproof installed
    with pytest.raises(RemoteError, match="the board lacks speedproof.*pip install speedproof=="):
        _runner(ssh_board, python=bare).fingerprint()
    with pytest.raises(RemoteError, match="the board has no '/no/such/python'"):
        _runner(ssh_board, python="/no/such/python").fingerprint()


def test_an_unreachable_board_fails_each_cell_and_the_run_goes_on(ssh_board, tiny_conv_onnx, tmp_path):
    closed = ssh_board.client_config("closed-port")
    closed.write_text(closed.read_text().replace(f"Port {ssh_board.port}", "Port 9"))  # nothing listens there
    runner = _runner(ssh_board, closed)
    first = runner.run_cell(cell_request(tiny_conv_onnx), timeout_s=60)
    assert not first.ok and first.kind == FailureKind.LOST and "unreachable" in first.error
    assert json.loads(json.dumps(first.as_dict()))["kind"] == "lost"


def test_a_request_for_another_artifact_path_is_rewritten_to_the_boards_copy(ssh_board, tiny_conv_onnx):
    runner = _runner(ssh_board)
    request = replace(cell_request(tiny_conv_onnx), batch_size=2)
    board_path = runner.board_path(request.artifact_path)
    assert board_path.startswith(str(ssh_board.cache)) and board_path.endswith(tiny_conv_onnx.name)


def test_a_cached_artifact_that_changed_on_the_board_is_refused_not_measured(ssh_board, tiny_conv_onnx):
    runner = _runner(ssh_board)
    board_path = runner.board_path(str(tiny_conv_onnx))
    tampered = ssh_board.cache / file_sha256(tiny_conv_onnx) / tiny_conv_onnx.name
    assert str(tampered) == board_path
    try:
        tampered.write_bytes(tiny_conv_onnx.read_bytes() + b"\0")
        result = runner.run_cell(cell_request(tiny_conv_onnx), timeout_s=120)
        assert not result.ok and "no longer hashes to" in result.error
    finally:
        tampered.unlink()
    assert _runner(ssh_board).run_cell(cell_request(tiny_conv_onnx), timeout_s=120).ok  # copied anew


def test_a_model_with_external_data_is_measured_on_the_board_with_its_own_weights(ssh_board, tiny_conv_onnx, tmp_path):
    from targets.runners.local import LocalRunner

    first = with_external_data(tiny_conv_onnx, tmp_path / "first", 1.0)
    second = with_external_data(tiny_conv_onnx, tmp_path / "second", 2.0)  # same graph file, other weights
    assert first.read_bytes() == second.read_bytes()
    runner = _runner(ssh_board)
    result = runner.run_cell(cell_request(first), timeout_s=120)
    assert result.ok, result.error
    assert runner.board_path(str(first)) != runner.board_path(str(second))
    assert runner.board_path(str(first)).startswith(str(ssh_board.cache / "bundles"))
    backend = with_backend(load_target("x86-cpu"), None).backends[0]
    feeds = [{"input": np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)}]
    for model in (first, second):
        remote = runner.first_outputs(str(model), backend, 1, feeds)
        np.testing.assert_allclose(remote, LocalRunner().first_outputs(str(model), backend, 1, feeds), rtol=1e-5)
    # a data file changed on the board is refused, not measured with other weights
    data = ssh_board.cache / "bundles" / runner.board_path(str(first)).split("/")[-2] / "data" / "weights.bin"
    data.unlink()
    data.write_bytes((first.parent / "data" / "weights.bin").read_bytes()[:-4] + b"\0\0\0\0")
    tampered = runner.run_cell(cell_request(first), timeout_s=120)
    assert not tampered.ok and "weights.bin: the cached file no longer hashes to" in tampered.error
    assert _runner(ssh_board).run_cell(cell_request(first), timeout_s=120).ok  # linked anew by the next run


def _control_path(runner):
    options = runner._control_options()
    return next(option.split("=", 1)[1] for option in options if option.startswith("ControlPath="))


def test_steps_share_one_connection_of_this_process_per_address_and_config(ssh_board):
    import os
    import subprocess

    from targets.runners.ssh import stop_masters

    runner = _runner(ssh_board)
    path = _control_path(runner)
    assert f"/{os.getpid()}-" in path and path == _control_path(_runner(ssh_board))
    other = ssh_board.client_config("other-config")
    assert _control_path(_runner(ssh_board, other)) != path  # another config never rides on this connection
    assert runner.json_step(["has", "0" * 64, "m.onnx"], {}) == {"status": "ok", "path": None}

    def master_answers():
        check = ["ssh", "-F", str(ssh_board.config), "-o", f"ControlPath={path}", "-O", "check", "board"]
        return subprocess.run(check, capture_output=True, text=True, check=False).returncode == 0

    assert master_answers()
    stop_masters()  # what the process does on exit
    assert not master_answers()
    assert runner.json_step(["has", "0" * 64, "m.onnx"], {})["path"] is None  # a new master starts
    assert master_answers()


def test_a_large_copy_is_announced_to_the_runs_progress_with_its_rate(ssh_board, tmp_path, monkeypatch):
    from targets.runners import agent
    from targets.runners.choose import remote_runner

    monkeypatch.setattr(agent, "REPORTED_COPY_MIB", 0)  # every copy counts as large here
    heard: list[str] = []
    runner = remote_runner(ssh_board.url(), ssh_board.config, progress=heard.append)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(np.random.default_rng().bytes(1 << 16))  # never on the board before
    runner.board_path(str(blob))
    assert heard[0] == "copying blob.bin (0 MiB) to ssh://board"
    assert heard[1].startswith("copied blob.bin in ") and heard[1].endswith(" MiB/s)")
    again = remote_runner(ssh_board.url(), ssh_board.config, progress=heard.append)
    again.board_path(str(blob))  # another run: the board has it, nothing is copied or said
    assert len(heard) == 2
