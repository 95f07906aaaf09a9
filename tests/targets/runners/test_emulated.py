"""The emulated aarch64 Python (`--remote qemu-aarch64:FOLDER`): Debian's arm64 Python and
onnxruntime's aarch64 wheel under qemu-aarch64-static, as scripts/setup_aarch64_python.py leaves
them (the README's test command sets one up in .venv/aarch64-python where it can). Real emulation,
no mock: artifacts load and compute on aarch64's onnxruntime; timings are marked and never decide."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import EXIT_USAGE, main
from targets.profiles import load_target, with_backend
from targets.runners.emulated import EmulatedAarch64Runner
from targets.runners.local import LocalRunner
from tests.helpers import FAST_FLAGS, FAST_POLICY_FLAGS, TINY_CNN

FOLDER = Path(sys.prefix) / "aarch64-python"
needs_emulator = pytest.mark.skipif(
    not (FOLDER / "site" / "onnxruntime").is_dir(),
    reason=f"no emulated aarch64 Python in {FOLDER} (scripts/setup_aarch64_python.py, run by the README's test "
    "command where it can be: root, apt-get)",
)


@needs_emulator
def test_an_artifact_computes_the_same_on_aarch64(tiny_conv_onnx):
    backend = with_backend(load_target("arm-edge"), None).backends[0]
    feeds = [
        {"input": np.random.default_rng(seed).standard_normal((2, 3, 16, 16)).astype(np.float32)} for seed in (3, 4)
    ]
    runner = EmulatedAarch64Runner(FOLDER)
    arm = runner.first_outputs(str(tiny_conv_onnx), backend, 1, feeds)
    x86 = LocalRunner().first_outputs(str(tiny_conv_onnx), backend, 1, feeds)
    np.testing.assert_allclose(arm, x86, rtol=1e-4, atol=1e-5)
    host = runner.fingerprint()
    assert host.isa == "aarch64" and host.emulated and host.remote == f"qemu-aarch64:{FOLDER.resolve()}"


@needs_emulator
def test_bench_on_arm_edge_under_emulation_is_marked(tiny_conv_onnx, tmp_path, capsys):
    remote = f"qemu-aarch64:{FOLDER}"
    arguments = ["bench", str(tiny_conv_onnx), "--target", "arm-edge", "--remote", remote, "--batch", "1"]
    main([*arguments, "--threads", "1", "--out", str(tmp_path), "--json", *FAST_FLAGS])
    record = json.loads(capsys.readouterr().out)
    assert record["host"]["isa"] == "aarch64" and record["host"]["emulated"]
    (cell,) = record["cells"]
    assert cell["status"] == "ok", cell["error"]
    assert any(warning.startswith("emulated:") for warning in cell["warnings"])


@needs_emulator
def test_verify_under_emulation_checks_quality_but_never_decides_on_its_timings(tmp_path, capsys):
    remote = f"qemu-aarch64:{FOLDER}"
    arguments = ["verify", TINY_CNN, "--target", "arm-edge", "--remote", remote, "--recipes", "structured:0.5"]
    main([*arguments, "--threads", "1", "--out", str(tmp_path), "--json", *FAST_POLICY_FLAGS])
    record = json.loads(capsys.readouterr().out)
    cell = {cell["variant"]: cell for cell in record["cells"]}["structured:0.5"]
    assert cell["quality"]["metric"] == "accuracy" and cell["quality"]["accuracy"] is not None
    if cell["status"] == "ok":
        assert cell["verdict"]["reasons"][0]["code"] == "INCONCLUSIVE"
        assert "under emulation" in cell["verdict"]["reasons"][0]["message"]


def test_a_folder_without_the_emulated_python_says_how_to_set_it_up(tmp_path, capsys):
    code = main(["bench", TINY_CNN, "--remote", f"qemu-aarch64:{tmp_path}", "--out", str(tmp_path / "out")])
    assert code == EXIT_USAGE
    error = capsys.readouterr().err
    assert "no emulated aarch64 Python there" in error and "scripts/setup_aarch64_python.py" in error
