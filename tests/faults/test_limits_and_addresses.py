"""Input that used to end in a traceback, a hang or gigabytes of memory: addresses that do not parse
(unclosed IPv6 brackets, tls:// without certificates, an ssh host that is an option), profile
values past what a host can hold (a NaN or infinite memory cap, 100000 threads), an input shape or
an ONNX file too large to allocate, and gate configs with a negative dim or a NaN in a check's
policy. Each is exit 2 with a message naming the option, file or key, before anything runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.faults.conftest import FAST_BENCH, usage_error
from tests.helpers import make_onnx_model


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cluster", "tls://127.0.0.1:8786", "--target", "x86-cpu"], "a tls:// address needs the fleet's TLS files"),
        (["--cluster", "tcp://[::1", "--target", "x86-cpu"], "--cluster 'tcp://[::1': expected a Dask scheduler"),
        (["--cluster", "tcp://host:99999", "--target", "x86-cpu"], "Port out of range"),
        (["--remote", "ssh://[::1"], "--remote 'ssh://[::1': expected ssh://"),
        (["--remote", "ssh://-oProxyCommand=touch%20x"], "is not a host name"),
        (["--remote", "ssh://-oProxyCommand=x@board"], "is not a user name"),
        (["--threads", "100000"], "--threads = 100000 is far more than the"),
    ],
)
def test_bench_addresses_and_threads(tiny_conv_onnx, tmp_path, capsys, options, message):
    err = usage_error(["bench", str(tiny_conv_onnx), *FAST_BENCH, *options, "--out", str(tmp_path)], capsys)
    assert message in err
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [("tls://10.0.0.2:8786", "a tls:// address needs the fleet's TLS files"), ("tcp://[::1", "expected")],
)
def test_worker_scheduler_addresses(capsys, scheduler, message):
    pytest.importorskip("distributed")
    assert message in usage_error(["worker", "--scheduler", scheduler, "--target", "x86-cpu"], capsys)


def _profile(tmp_path: Path, extra: str, resources: str = "") -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(
        textwrap.dedent(
            """\
            name = "custom"
            isa = "x86_64"
            batch_sizes = [1]
            {extra}
            [resources]
            {resources}
            [[backends]]
            name = "onnxruntime"
            """
        ).format(extra=extra, resources=resources)
    )
    return path


@pytest.mark.parametrize(
    ("extra", "resources", "message"),
    [
        ("", "memory_gb = nan", "resources.memory_gb = nan; expected a finite number >= 0"),
        ("", "memory_gb = inf", "resources.memory_gb = inf; expected a finite number >= 0"),
        ('remote = "ssh://[::1"', "", "expected ssh://"),
        ('remote = "cluster:tcp://[::1"', "", "remote = 'cluster:tcp://[::1'; expected where the target is measured"),
        ("threads = 100000", "", "threads = 100000 is far more than the"),
    ],
)
def test_profiles_past_what_a_host_holds(tiny_conv_onnx, tmp_path, capsys, extra, resources, message):
    profile = _profile(tmp_path, extra, resources)
    err = usage_error(
        ["bench", str(tiny_conv_onnx), *FAST_BENCH, "--target", str(profile), "--out", str(tmp_path)], capsys
    )
    assert message in err and str(profile) in err


@pytest.fixture(scope="module")
def dynamic_image_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x [N, 3, H, W] -> Relu: every dim but the channels is the user's to choose."""
    model = make_onnx_model(
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    )
    path = tmp_path_factory.mktemp("dynamic") / "relu.onnx"
    onnx.save(model, str(path))
    return path


def test_an_input_shape_too_large_to_allocate_is_refused_before_allocating(sandbox, dynamic_image_onnx):
    completed = sandbox.run(
        *("bench", str(dynamic_image_onnx), *FAST_BENCH, "--input-shape", "x=1x3x20000x20000"),
        *("--out", str(sandbox.out)),
        SPEEDPROOF_MAX_INPUT_MB="64",
        timeout=120,
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "the inputs would take 4.5 GiB ('x' 1x3x20000x20000 float32 = 4.5 GiB)" in completed.stderr
    assert "more than the 64.0 MiB allowed" in completed.stderr and not sandbox.records()


def test_an_input_shape_that_fits_still_measures(sandbox, dynamic_image_onnx):
    completed = sandbox.run(
        *("bench", str(dynamic_image_onnx), *FAST_BENCH, "--input-shape", "x=1x3x64x64", "--out", str(sandbox.out)),
        SPEEDPROOF_MAX_INPUT_MB="64",
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_an_onnx_file_past_protobufs_limit_is_refused_without_reading_it(tmp_path, capsys):
    huge = tmp_path / "huge.onnx"
    with huge.open("wb") as handle:  # sparse: 3 GiB on paper, nothing on disk
        handle.truncate(3 * 2**30)
    err = usage_error(["bench", str(huge), *FAST_BENCH, "--out", str(tmp_path)], capsys)
    assert f"{huge} is 3.0 GiB, past protobuf's 2 GiB limit" in err


@pytest.mark.parametrize(
    ("check_lines", "message"),
    [
        ("input_shape = [1, 3, -5, 16]", "check[0].input_shape = [1, 3, -5, 16]: every dim must be a positive integer"),
        ('input_shape = ["x=1x3x0x16"]', "check[0].input_shape: 'x=1x3x0x16': every dim must be a positive integer"),
        ("[check.policy]\nmin_speedup = nan", "check[0].policy: invalid policy: min_speedup = nan"),
        ('remote = "ssh://[::1"', "check[0].remote: --remote 'ssh://[::1': expected ssh://"),
    ],
)
def test_gate_configs_with_values_past_range(tiny_conv_onnx, tmp_path, capsys, check_lines, message):
    config = tmp_path / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = "{tiny_conv_onnx}"\nrecipes = ["identity"]\n{check_lines}\n')
    err = usage_error(["gate", "--config", str(config), "--out", str(tmp_path)], capsys)
    assert f"{config}" in err and message in err and "command line" not in err
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--input-value", "input=nan"], "expected NAME=NUMBER (finite)"),
        (["--input-value", "input=1e400"], "expected NAME=NUMBER (finite)"),
        (["--input-value", "nope=1"], "--input-value names input 'nope'"),
        (["--batch-axis", "input=-1"], "expected NAME=K (a dim index) or NAME=none"),
        (["--batch-axis", "input=99999999999"], "--batch-axis input=99999999999: input 'input' has 4 dims"),
    ],
)
def test_hostile_batch_axes_and_input_values(tiny_conv_onnx, tmp_path, capsys, options, message):
    err = usage_error(["bench", str(tiny_conv_onnx), *FAST_BENCH, *options, "--out", str(tmp_path)], capsys)
    assert message in err and not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize(
    ("check_lines", "message"),
    [
        ("batch_axes = { input = 1.5 }", "check[0].batch_axes = {'input': 1.5}; expected a table"),
        ('batch_axes = "input=1"', "check[0].batch_axes = 'input=1'; expected a table"),
        ("input_values = { input = nan }", "check[0]: --input-value 'input=nan'"),
        ("input_values = { input = true }", "check[0].input_values = {'input': True}"),
        ('candidates = ["/dev/null/x.onnx"]', "check[0].candidates: --candidate"),
        ("candidates = [{ path = 3 }]", "check[0].candidates[0] = {'path': 3}"),
    ],
)
def test_hostile_gate_input_and_candidate_keys(tiny_conv_onnx, tmp_path, capsys, check_lines, message):
    config = tmp_path / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = "{tiny_conv_onnx}"\nrecipes = ["identity"]\n{check_lines}\n')
    err = usage_error(["gate", "--config", str(config), "--out", str(tmp_path)], capsys)
    assert message in err and not list(tmp_path.glob("*.json"))
