"""`--remote` end to end through a real sshd on 127.0.0.1 (tests/ssh_board.py): bench and verify
build here, measure on the "board", and write records that carry its fingerprint."""

import json

from harness.cli import EXIT_OK, EXIT_USAGE, main
from tests.helpers import FAST_FLAGS, FAST_POLICY_FLAGS, FAST_POLICY_TOML, TINY_CNN, with_external_data


def _remote(board):
    return ["--remote", board.url(), "--ssh-config", str(board.config)]


def test_bench_on_a_remote_board(ssh_board, tiny_conv_onnx, tmp_path, capsys):
    arguments = ["bench", str(tiny_conv_onnx), *_remote(ssh_board), "--batch", "1,2", "--threads", "1"]
    code = main([*arguments, "--out", str(tmp_path), "--json", *FAST_FLAGS])
    assert code == EXIT_OK
    record = json.loads(capsys.readouterr().out)
    assert record["host"]["remote"] == "ssh://board"
    assert [cell["status"] for cell in record["cells"]] == ["ok", "ok"]
    assert all(cell["provider"] == "CPUExecutionProvider" for cell in record["cells"])


def test_bench_of_a_model_with_external_data_on_a_remote_board(ssh_board, tiny_conv_onnx, tmp_path, capsys):
    model = with_external_data(tiny_conv_onnx, tmp_path / "model", 1.0)
    arguments = ["bench", str(model), *_remote(ssh_board), "--batch", "1", "--threads", "1"]
    code = main([*arguments, "--out", str(tmp_path / "out"), "--json", *FAST_FLAGS])
    assert code == EXIT_OK
    cell = json.loads(capsys.readouterr().out)["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    assert cell["artifact"]["bytes"] == model.stat().st_size + (model.parent / "data" / "weights.bin").stat().st_size


def test_verify_on_a_remote_board_copies_both_artifacts_and_gives_a_verdict(ssh_board, tmp_path, capsys):
    arguments = ["verify", TINY_CNN, *_remote(ssh_board), "--recipes", "structured:0.5", "--threads", "1"]
    main([*arguments, "--out", str(tmp_path), "--json", *FAST_POLICY_FLAGS])
    record = json.loads(capsys.readouterr().out)
    assert record["host"]["remote"] == "ssh://board"
    cell = {cell["variant"]: cell for cell in record["cells"]}["structured:0.5"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["verdict"]["decision"] in ("ACCEPT", "REJECT") and cell["quality"]["metric"] == "accuracy"
    shipped = {path.name for path in ssh_board.cache.rglob("*.onnx")}
    assert {"00-baseline.onnx", "01-structured_0.5.onnx"} <= shipped


def test_an_unreachable_board_is_a_usage_error_before_anything_is_built(ssh_board, tmp_path, capsys):
    config = ssh_board.client_config("cli-closed-port")
    config.write_text(config.read_text().replace(f"Port {ssh_board.port}", "Port 9"))
    code = main(["bench", TINY_CNN, "--remote", ssh_board.url(), "--ssh-config", str(config), "--out", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "ssh://board: the board is unreachable" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_bad_remote_address_is_a_usage_error(tmp_path, capsys):
    code = main(["bench", TINY_CNN, "--remote", "pi@rpi5", "--out", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "expected ssh://[user@]host[:port]" in capsys.readouterr().err


def test_a_profile_with_a_remote_key_is_measured_there(ssh_board, tiny_conv_onnx, tmp_path, capsys):
    from targets.profiles import load_target

    profile = tmp_path / "board.toml"
    text = open(load_target("x86-cpu").source).read()
    profile.write_text(f'remote = "{ssh_board.url()}"\n' + text.replace('name = "x86-cpu"', 'name = "my-board"'))
    arguments = ["bench", str(tiny_conv_onnx), "--target", str(profile), "--ssh-config", str(ssh_board.config)]
    code = main([*arguments, "--batch", "1", "--threads", "1", "--out", str(tmp_path / "out"), "--json", *FAST_FLAGS])
    assert code == EXIT_OK
    record = json.loads(capsys.readouterr().out)
    assert record["host"]["remote"] == "ssh://board" and record["target"]["name"] == "my-board"


def test_gate_checks_run_on_their_remotes_and_an_unreachable_one_is_skipped(ssh_board, tmp_path):
    config = ssh_board.client_config("gate-ssh-config")
    config.write_text(config.read_text() + "Host deadboard\n  HostName 127.0.0.1\n  Port 9\n")
    gate = tmp_path / "speedproof.toml"
    gate.write_text(
        f'[[check]]\nmodel = "{TINY_CNN}"\nrecipes = ["structured:0.5"]\nthreads = 1\nremote = "{ssh_board.url()}"\n\n'
        f'[[check]]\nmodel = "{TINY_CNN}"\nrecipes = ["structured:0.5"]\nremote = "ssh://deadboard"\n\n'
        + FAST_POLICY_TOML
    )
    out = tmp_path / "results"
    for flags, expected in (([], EXIT_OK), (["--require-all-targets"], 1)):
        code = main(["gate", "--config", str(gate), "--ssh-config", str(config), "--out", str(out), *flags])
        record = json.loads(sorted(out.glob("*.json"))[-1].read_text())
        (skip,) = record["gate"]["skipped"]
        assert skip["check"] == 1 and "ssh://deadboard: the board is unreachable" in skip["reason"]
        measured = [cell for cell in record["cells"] if cell["check"] == 0 and not cell.get("reference")]
        assert measured and all(cell["remote"] == "ssh://board" for cell in measured)
        if expected == 1:
            assert code == 1
        else:
            assert code in (0, 1)  # whether structured:0.5 clears the threshold is the board's business


def test_targets_asks_the_board_what_it_can_run(ssh_board, capsys):
    assert main(["targets", "--remote", ssh_board.url(), "--ssh-config", str(ssh_board.config), "--json"]) == EXIT_OK
    listing = json.loads(capsys.readouterr().out)
    assert listing["host"]["remote"] == "ssh://board"
    runs = {entry["name"]: entry["runs_here"] for entry in listing["targets"]}
    assert runs["x86-cpu"] and not runs["arm-edge"]
    assert main(["targets", "--remote", ssh_board.url(), "--ssh-config", str(ssh_board.config)]) == EXIT_OK
    assert "remote host: ssh://board" in capsys.readouterr().out
