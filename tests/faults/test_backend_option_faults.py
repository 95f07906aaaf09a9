"""Hostile values for backend choices and options, from the command line (--backend), a profile's
[[backends]] table and a gate check's `backend`: each is exit 2 (or a ConfigurationError) naming the option
and what is valid, before any worker starts; nothing reaches a runtime as text it cannot use."""

from pathlib import Path

import pytest

from harness.cli import EXIT_USAGE, main
from targets.errors import ConfigurationError, SpeedproofError
from targets.profiles import load_profile_file, load_target, parse_backend_list, with_backend

HOSTILE_COUNTS = ["nan", "inf", "-1", "0", "1e308", "18446744073709551616", "2.5", "", "0x10"]


@pytest.mark.parametrize("value", HOSTILE_COUNTS)
def test_a_count_option_on_the_command_line_is_a_whole_number_in_range(value):
    with pytest.raises(ConfigurationError, match=r"num_streams=.*(whole number from 1 to 65536|key=value)"):
        with_backend(load_target("x86-cpu"), f"openvino:num_streams={value}")


def test_a_valid_count_arrives_as_a_number():
    (spec,) = with_backend(load_target("x86-cpu"), "openvino:num_streams=2").backends
    assert spec.options["num_streams"] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openvino,,onnxruntime", "an empty name between commas"),
        (",", "an empty name between commas"),
        ("openvino,openvino", "names openvino more than once"),
        ("openvino:low_precision=OFF", "valid: auto, off"),
        ("openvino:performance_hint", "expected key=value items"),
        ("tensorflow", "unknown backend 'tensorflow'"),
        ("openvino\x00:num_streams=1", "unknown backend"),
    ],
)
def test_a_backend_list_that_cannot_be_measured_says_why(text, message):
    with pytest.raises(SpeedproofError, match=message):
        parse_backend_list(text)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("num_streams = -1", "whole number from 1 to 65536"),
        ("num_streams = 9223372036854775807", "whole number from 1 to 65536"),
        ("num_streams = true", "has the wrong type"),
        ('num_streams = "2"', "has the wrong type"),
        ("num_streams = nan", "has the wrong type"),
        ('inference_precision = "f8"', "valid: f32, bf16, f16"),
    ],
)
def test_a_profile_backend_table_with_a_hostile_value_names_the_file_and_key(tmp_path, line, message):
    profile = tmp_path / "mine.toml"
    text = Path(load_target("x86-cpu").source).read_text()
    anchor = 'performance_hint = "latency"\n'
    profile.write_text(text.replace(anchor, anchor + line + "\n"))  # into openvino's [[backends]] table
    with pytest.raises(ConfigurationError) as error:
        load_profile_file(profile)
    assert message in str(error.value) and str(profile) in str(error.value) and "backends[2]" in str(error.value)


def test_the_command_line_refuses_them_before_anything_runs(tiny_conv_onnx, tmp_path, capsys):
    code = main(
        [
            "verify",
            str(tiny_conv_onnx),
            "--recipes",
            "identity",
            "--backend",
            "onnxruntime,openvino:num_streams=-3",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == EXIT_USAGE
    assert "num_streams='-3'; expected a whole number from 1 to 65536" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no run folder, no record
