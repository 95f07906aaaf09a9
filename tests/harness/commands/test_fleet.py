"""`--cluster` end to end through a real Dask fleet on 127.0.0.1 (tests/dask_fleet.py): bench, verify
and gate build here and measure on the worker that offers the target and device; the gate's record,
table and JUnit say which device gave which verdict; a target no worker offers is skipped; a worker
killed mid-run fails its cells and keeps what other devices measured."""

import json
import threading

from harness.cli import EXIT_OK, EXIT_USAGE, main
from tests.helpers import FAST_FLAGS, FAST_POLICY_FLAGS, FAST_POLICY_TOML, TINY_CNN
from tests.targets.runners.test_cluster import _child_running


def test_bench_cells_go_to_the_worker_with_the_device_tag(dask_fleet, tiny_conv_onnx, tmp_path, capsys):
    for device in ("alpha", "beta"):
        arguments = ["bench", str(tiny_conv_onnx), "--cluster", dask_fleet.scheduler, "--target", "x86-cpu"]
        code = main([*arguments, "--device", device, "--batch", "1,2", "--out", str(tmp_path), "--json", *FAST_FLAGS])
        assert code == EXIT_OK
        record = json.loads(capsys.readouterr().out)
        assert record["host"]["remote"].startswith(f"dask worker {device}@")
        assert [cell["status"] for cell in record["cells"]] == ["ok", "ok"]
        assert list(dask_fleet.cache(device).rglob("tiny_conv.onnx"))


def test_verify_on_the_cluster_gives_a_verdict_from_one_worker(dask_fleet, tmp_path, capsys):
    arguments = ["verify", TINY_CNN, "--recipes", "structured:0.5", "--cluster", dask_fleet.scheduler]
    arguments += ["--target", "x86-cpu", "--device", "beta", *FAST_POLICY_FLAGS]
    code = main([*arguments, "--out", str(tmp_path), "--json"])
    assert code in (EXIT_OK, 1)
    record = json.loads(capsys.readouterr().out)
    assert record["host"]["remote"].startswith("dask worker beta@")
    cell = {cell["variant"]: cell for cell in record["cells"]}["structured:0.5"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["verdict"]["decision"] in ("ACCEPT", "REJECT") and cell["quality"]["metric"] == "accuracy"
    shipped = {path.name for path in dask_fleet.cache("beta").rglob("*.onnx")}
    assert {"00-baseline.onnx", "01-structured_0.5.onnx"} <= shipped


def test_usage_errors_name_what_is_missing(dask_fleet, tmp_path, capsys):
    for arguments, message in (
        (["--cluster", dask_fleet.scheduler], "--cluster needs --target NAME"),
        (["--device", "alpha"], "--device picks a worker of a cluster; give --cluster"),
        (["--cluster", "10.0.0.2:8786", "--target", "x86-cpu"], "expected a Dask scheduler address"),
        (["--cluster", dask_fleet.scheduler, "--remote", "ssh://pi@rpi5"], "--cluster and --remote name two places"),
    ):
        assert main(["bench", TINY_CNN, *arguments, "--out", str(tmp_path)]) == EXIT_USAGE
        assert message in capsys.readouterr().err
    worker = ["worker", "--scheduler", dask_fleet.scheduler, "--target", "arm-edge", "--host", "127.0.0.1"]
    assert main(worker) == EXIT_USAGE
    assert "this host cannot run target arm-edge: host is x86_64" in capsys.readouterr().err


def _gate_config(tmp_path, checks):
    text = "".join(
        f'[[check]]\nmodel = "{TINY_CNN}"\nrecipes = ["structured:0.5"]\nrequired = ["structured:0.5"]\n{extra}\n\n'
        for extra in checks
    )
    path = tmp_path / "speedproof.toml"
    path.write_text(text + FAST_POLICY_TOML)
    return path


def test_gate_routes_checks_to_devices_and_skips_a_target_no_worker_offers(dask_fleet, tmp_path, capsys):
    config = _gate_config(
        tmp_path,
        ['targets = ["x86-cpu"]\ndevice = "alpha"', 'targets = ["x86-cpu", "cuda-gpu"]\ndevice = "beta"'],
    )
    out = tmp_path / "results"
    for flags, expected in (([], {EXIT_OK, 1}), (["--require-all-targets"], {1})):
        code = main(["gate", "--config", str(config), "--cluster", dask_fleet.scheduler, "--out", str(out), *flags])
        assert code in expected
        record = json.loads(sorted(out.glob("*.json"))[-1].read_text())
        (skip,) = record["gate"]["skipped"]
        assert skip["check"] == 1 and skip["target"] == "cuda-gpu"
        assert "no worker in the cluster offers target:cuda-gpu and device:beta" in skip["reason"]
        measured = {cell["check"]: cell for cell in record["cells"] if not cell.get("reference")}
        assert measured[0]["remote"].startswith("dask worker alpha@") and measured[0]["host"]["hostname"]
        assert any(cell.get("remote", "").startswith("dask worker beta@") for cell in record["cells"])
        assert all(cell["status"] == "ok" for cell in record["cells"] if not cell.get("skipped")), record["cells"]
    assert "--require-all-targets: tests.tiny_models:tiny_cnn on cuda-gpu was skipped" in " ".join(
        record["gate"]["failures"]
    )
    text = capsys.readouterr().out
    assert "x86-cpu @ dask worker alpha@" in text and "x86-cpu @ dask worker beta@" in text
    junit = sorted(out.glob("*.xml"))[-1].read_text()
    assert "on dask worker alpha@" in junit and "on dask worker beta@" in junit


def test_a_worker_killed_mid_pair_fails_its_check_and_keeps_the_others(dask_fleet, tmp_path, capsys):
    doomed = dask_fleet.start_worker("doomed")
    config = _gate_config(
        tmp_path, ['targets = ["x86-cpu"]\ndevice = "alpha"', 'targets = ["x86-cpu"]\ndevice = "doomed"']
    )
    killer = threading.Thread(target=lambda: (_child_running(doomed.pid, "--live"), doomed.kill()))
    killer.start()
    out = tmp_path / "results"
    try:
        code = main(["gate", "--config", str(config), "--cluster", dask_fleet.scheduler, "--out", str(out)])
    finally:
        killer.join(timeout=300)
        dask_fleet.stop_worker("doomed")
    assert code == 1
    record = json.loads(sorted(out.glob("*.json"))[-1].read_text())
    cells = {(cell["check"], cell["variant"]): cell for cell in record["cells"]}
    assert cells[(0, "structured:0.5")]["status"] == "ok"
    assert cells[(0, "structured:0.5")]["verdict"]["decision"] in ("ACCEPT", "REJECT")
    lost = cells[(1, "structured:0.5")]
    assert lost["status"] == "failed" and "the worker left the cluster" in lost["error"]
    assert lost["verdict"]["reasons"][0]["code"] == "FAILED"
    assert any("left the cluster" in failure for failure in record["gate"]["failures"])


def test_targets_lists_the_fleets_workers_each_asked_on_itself(dask_fleet, capsys):
    assert main(["targets", "--cluster", dask_fleet.scheduler, "--json"]) == EXIT_OK
    listing = json.loads(capsys.readouterr().out)
    by_device = {tuple(worker["devices"]): worker for worker in listing["workers"]}
    assert {("alpha",), ("beta",), ()} <= set(by_device)
    for worker in listing["workers"]:
        (target,) = worker["targets"]
        assert target["name"] == "x86-cpu" and target["backends"] == {
            "onnxruntime": [],
            "torch": [],
            "openvino": [],
            "onnxruntime-genai": [],
        }
        assert worker["host"]["hostname"]
    assert main(["targets", "--cluster", dask_fleet.scheduler]) == EXIT_OK
    text = capsys.readouterr().out
    assert "alpha@" in text and "beta@" in text and "onnxruntime: yes" in text
