"""The user's data and metric, when they are wrong: an npz with object arrays, of another dtype or
shape, with NaN, too few samples, a missing or unknown array, truncated or absent; a data function
that crashes or yields something else; a metric function that crashes, hangs, or returns NaN or a
string. Data faults are exit 2 naming the array and the input before anything is measured; a metric
that fails fails that check (exit 1, FAILED with its message), never a pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness.cli import EXIT_CELL_FAILED, main
from tests.faults.conftest import FAST_VERIFY, usage_error


def _input_name(model: Path) -> str:
    return onnx.load(str(model)).graph.input[0].name


def _images(samples: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((samples, 3, 16, 16)).astype(np.float32)


def _with_nan() -> np.ndarray:
    images = _images()
    images[3, 0, 0, 0] = np.nan
    return images


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            lambda x: {x: np.array([_images()[0], _images()[1][:2]], dtype=object)},
            "holds Python objects (dtype object)",
        ),
        (lambda x: {x: (_images() * 100).astype(np.uint8)}, "is uint8, input '{x}' is float32"),
        (lambda x: {x: _images()[:, :, :8]}, "has shape [16, 3, 8, 16], which does not fit input '{x}'"),
        (lambda x: {x: _with_nan()}, "holds 1 NaN or infinite value(s), the first at [3, 0, 0, 0]"),
        (lambda x: {x: _images(3)}, "3 samples; at least 8 are needed"),
        (lambda x: {"pixels": _images()}, "no array for input '{x}'"),
        (lambda x: {x: _images(), "image": _images()}, "array 'image' names no input of the model"),
        (lambda x: {x: _images(), "labels": np.arange(15)}, "'{x}' 16, 'labels' 15"),
        (lambda x: {x: np.array(1.0, dtype=np.float32)}, "is 0-d, but input '{x}'"),
    ],
)
def test_bad_npz_data(tiny_conv_onnx, tmp_path, capsys, arrays, message):
    name = _input_name(tiny_conv_onnx)
    data = tmp_path / "data.npz"
    np.savez(data, **arrays(name))
    out = tmp_path / "out"
    err = usage_error(
        ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--data", str(data), "--out", str(out)], capsys
    )
    assert message.format(x=name) in err and str(data) in err
    assert not list(out.glob("*.json"))


def test_truncated_absent_and_misnamed_data_files(tiny_conv_onnx, tmp_path, capsys):
    name = _input_name(tiny_conv_onnx)
    whole = tmp_path / "whole.npz"
    np.savez(whole, **{name: _images()})
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(whole.read_bytes()[:300])
    base = ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--out", str(tmp_path / "out")]
    assert "not a readable .npz file" in usage_error([*base, "--data", str(truncated)], capsys)
    assert "file not found" in usage_error([*base, "--data", str(tmp_path / "absent.npz")], capsys)
    assert "expected FILE.npz" in usage_error([*base, "--data", str(tmp_path / "data.csv")], capsys)
    assert "give --data FILE.npz" in usage_error([*base, "--metric-fn", "json:loads"], capsys)
    assert "no module 'no_such_metrics'" in usage_error(
        [*base, "--data", str(whole), "--metric-fn", "no_such_metrics:f"], capsys
    )


DATA_FUNCTIONS = """
import numpy as np

def crashes():
    raise RuntimeError("the bucket is not mounted")

def yields_lists():
    yield [1, 2, 3]

def nothing():
    return []
"""


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("crashes", "calling crashes() failed: RuntimeError: the bucket is not mounted"),
        ("yields_lists", "item 0 is list, not a dict {input name: array}"),
        ("nothing", "the function yielded no feed dicts"),
    ],
)
def test_bad_data_functions(tiny_conv_onnx, tmp_path, capsys, monkeypatch, function, message):
    (tmp_path / "bad_loaders.py").write_text(DATA_FUNCTIONS)
    monkeypatch.chdir(tmp_path)
    args = ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--data", f"bad_loaders:{function}"]
    err = usage_error([*args, "--out", str(tmp_path / "out")], capsys)
    assert f"--data 'bad_loaders:{function}'" in err and message in err


METRICS = """
import math
import time

def crashes(outputs, labels):
    raise KeyError("boxes")

def hangs(outputs, labels):
    time.sleep(600)

def not_a_number(outputs, labels):
    return math.nan

def text(outputs, labels):
    return "0.93"
"""


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("crashes", "calling crashes() failed: KeyError: 'boxes'"),
        ("hangs", "computing the metric took longer than 3 s and was stopped"),
        ("not_a_number", "returned nan; the metric must be a finite number"),
        ("text", "returned '0.93' (str); a metric function returns one number"),
    ],
)
def test_a_failing_metric_fails_the_check_and_never_passes(
    tiny_conv_onnx, tmp_path, capsys, monkeypatch, function, message
):
    (tmp_path / "bad_metrics.py").write_text(METRICS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPEEDPROOF_SOURCE_TIMEOUT_S", "3")
    data = tmp_path / "data.npz"
    np.savez(data, **{_input_name(tiny_conv_onnx): _images(), "labels": np.arange(16) % 4})
    out = tmp_path / "out"
    args = [
        "verify",
        str(tiny_conv_onnx),
        "--recipes",
        "identity",
        "--data",
        str(data),
        "--metric-fn",
        f"bad_metrics:{function}",
    ]
    code = main([*args, *FAST_VERIFY, "--out", str(out)])
    capsys.readouterr()
    assert code == EXIT_CELL_FAILED
    [path] = out.glob("*.json")
    cells = json.loads(path.read_text())["cells"]
    identity = next(cell for cell in cells if cell["variant"] == "identity")
    assert identity["verdict"]["decision"] == "REJECT" and identity["verdict"]["reasons"][0]["code"] == "FAILED"
    assert message in identity["verdict"]["reasons"][0]["message"]


def test_data_past_the_feed_cap_is_refused_unread(tiny_conv_onnx, tmp_path, capsys, monkeypatch):
    """The headers say the size: 2 MiB of samples under a 1 MiB cap is refused before any array is loaded."""
    data = tmp_path / "big.npz"
    np.savez(data, **{_input_name(tiny_conv_onnx): np.zeros((700, 3, 16, 16), np.float32)})
    monkeypatch.setenv("SPEEDPROOF_MAX_INPUT_MB", "1")
    args = ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--data", str(data), "--out", str(tmp_path / "o")]
    assert "more than the 1 MiB allowed" in usage_error(args, capsys)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("data = 3", "check[0].data = 3; expected your inputs"),
        ('data = ""', "check[0].data = ''"),
        ('data = "absent.npz"', "file not found"),
        ('metric_fn = "json:loads"', "give --data FILE.npz"),
        ('data = "inputs.npz"\nmetric_fn = 1.5', "check[0].metric_fn = 1.5"),
        ('calibration_data = "inputs.csv"', "expected FILE.npz"),
    ],
)
def test_gate_data_keys_with_hostile_values(tiny_conv_onnx, tmp_path, capsys, line, message):
    np.savez(tmp_path / "inputs.npz", **{_input_name(tiny_conv_onnx): _images()})
    config = tmp_path / "gate.toml"
    config.write_text(f'[[check]]\nmodel = "{tiny_conv_onnx}"\nrecipes = ["identity"]\n{line}\n')
    err = usage_error(["gate", "--config", str(config), "--out", str(tmp_path / "o")], capsys)
    assert str(config) in err and message in err
