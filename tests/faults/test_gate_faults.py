"""Faults a release gate must not pass over: a check naming a model that cannot exist is a
configuration error (exit 2) found before anything is measured; a check that cannot run fails the
gate (exit 1); its outputs never replace its inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.faults.conftest import FAST_VERIFY, no_traceback


def _config(folder: Path, *checks: str) -> Path:
    path = folder / "speedproof.toml"
    path.write_text("\n".join(checks))
    return path


def _check(model: str, required: bool = False) -> str:
    return f'[[check]]\nmodel = "{model}"\nrecipes = ["identity"]\n' + ('required = ["identity"]\n' if required else "")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("missing/model.onnx", "model file not found: {folder}/missing/model.onnx"),  # relative to the config
        ("resnet19", 'did you mean "resnet18"'),
        ("weights.pt", "pickled torch files are not a model source"),
        ("no_such_package.models:build", "no module 'no_such_package'"),
    ],
)
def test_a_check_naming_what_cannot_exist_is_a_config_error(sandbox, model, message):
    config = _config(sandbox.root, _check(model))
    completed = sandbox.run("gate", "--config", str(config), "--out", str(sandbox.out), timeout=120)
    assert completed.returncode == 2, completed.stderr
    assert f"{config}: check[0].model" in completed.stderr and message.format(folder=config.parent) in completed.stderr
    assert no_traceback(completed.stderr) and not sandbox.records()


def test_a_check_that_cannot_run_fails_the_gate(sandbox, tiny_conv_onnx):
    damaged = sandbox.root / "damaged.onnx"
    damaged.write_bytes(b"this is not a protobuf")
    config = _config(sandbox.root, _check(str(damaged)), _check(str(tiny_conv_onnx)))
    completed = sandbox.run("gate", "--config", str(config), "--out", str(sandbox.out), *FAST_VERIFY)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "gate FAILED" in completed.stdout and "gate passed" not in completed.stdout
    assert f"check 0 on x86-cpu could not run: {damaged}" in completed.stdout
    [record] = sandbox.records()
    suites = ElementTree.parse(record.with_suffix(".xml")).getroot()
    assert sum(int(suite.get("failures")) for suite in suites) >= 1


@pytest.mark.parametrize("output_option", ["--junit", "--summary"])
def test_gate_outputs_never_replace_its_config(sandbox, tiny_conv_onnx, output_option):
    config = _config(sandbox.root, _check(str(tiny_conv_onnx)))
    before = hashlib.sha256(config.read_bytes()).hexdigest()
    completed = sandbox.run("gate", "--config", str(config), output_option, str(config), timeout=120)
    assert completed.returncode == 2
    assert "was not written by speedproof" in completed.stderr
    assert hashlib.sha256(config.read_bytes()).hexdigest() == before


def test_gate_junit_into_a_folder_is_refused_before_measuring(sandbox, tiny_conv_onnx):
    config = _config(sandbox.root, _check(str(tiny_conv_onnx)))
    completed = sandbox.run("gate", "--config", str(config), "--junit", str(sandbox.root), timeout=120)
    assert completed.returncode == 2 and "is a folder; pass the path of a new file" in completed.stderr
    assert no_traceback(completed.stderr) and not sandbox.records()
