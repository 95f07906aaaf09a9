from pathlib import Path

import pytest

from targets.errors import ConfigurationError, SpeedproofError
from targets.profiles import builtin_profile_names, load_profile_file, load_target, resolve_profile, with_backend
from tests.helpers import synthetic_host

VALID_PROFILE = """
name = "my-box"
description = "a user profile"
isa = "x86_64"
batch_sizes = [1, 4]
threads = 2

[resources]
cores = 1
memory_gb = 2

[[backends]]
name = "onnxruntime"
execution_provider = "CPUExecutionProvider"
"""


def test_the_three_builtin_profiles_load():
    assert builtin_profile_names() == ["arm-edge", "cuda-gpu", "x86-cpu"]
    for name in builtin_profile_names():
        profile = load_target(name)
        assert profile.name == name
        assert profile.backends and profile.batch_sizes
    assert load_target("arm-edge").requires.isa == "aarch64"
    assert load_target("cuda-gpu").requires.cuda_device


def test_unknown_target_lists_the_valid_ones():
    with pytest.raises(SpeedproofError, match=r"unknown target 'x86'.*valid: arm-edge, cuda-gpu, x86-cpu"):
        load_target("x86")


def test_user_profile_from_a_path(tmp_path):
    path = tmp_path / "box.toml"
    path.write_text(VALID_PROFILE)
    profile = load_target(str(path))
    assert profile.name == "my-box" and profile.batch_sizes == (1, 4)
    assert profile.resources.memory_bytes == 2 * 1024**3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("batch_sizes = [1, 4]", "batch_size = [1, 4]"), r"unknown key 'batch_size'.*did you mean \"batch_sizes\""),
        (("threads = 2", 'threads = "many"'), r"threads = 'many'"),
        (
            ('execution_provider = "CPUExecutionProvider"', 'execution_providr = "CPU"'),
            r"backends\[0\].*did you mean \"execution_provider\"",
        ),
        (('name = "onnxruntime"', 'name = "onnxruntim"'), r"unknown backend 'onnxruntim'.*did you mean"),
        (("cores = 1", "core = 1"), r"\[resources\].*did you mean \"cores\""),
        (('isa = "x86_64"', 'isa = "sparc"'), r"valid: x86_64, aarch64"),
        (("batch_sizes = [1, 4]", "batch_sizes = [0]"), r"positive integers"),
    ],
)
def test_profile_errors_name_the_file_and_the_key(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(VALID_PROFILE.replace(*edit))
    with pytest.raises(SpeedproofError, match=message) as caught:
        load_profile_file(path)
    assert str(path) in str(caught.value)


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(SpeedproofError, match="not found"):
        load_profile_file(tmp_path / "none.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("name = ")
    with pytest.raises(SpeedproofError, match="not valid TOML"):
        load_profile_file(bad)


def test_resolve_physical_threads_and_core_caps(tmp_path):
    x86 = resolve_profile(load_target("x86-cpu"), synthetic_host(physical_cores=1, logical_cores=2))
    assert x86.threads == 1
    assert x86.cpu_affinity
    path = tmp_path / "box.toml"
    path.write_text(VALID_PROFILE.replace("cores = 1", "cores = 4096"))
    resolved = resolve_profile(load_profile_file(Path(path)), synthetic_host(), threads_override=3)
    assert resolved.threads == 3
    assert any("asks for 4096 cores" in note for note in resolved.notes)


def test_several_backends_are_kept_in_the_order_given_with_their_options():
    profile = with_backend(load_target("x86-cpu"), "openvino:inference_precision=f32,onnxruntime")
    assert [spec.name for spec in profile.backends] == ["openvino", "onnxruntime"]
    assert profile.backends[0].options == {"performance_hint": "latency", "inference_precision": "f32"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("onnxruntime,,openvino", "an empty name between commas"),
        ("openvino,openvino:num_streams=2", "names openvino more than once"),
        ("onnxruntime,tensorflow", "has no backend 'tensorflow'"),
        ("openvino:inference_precision=f8", r"inference_precision='f8'; valid: f32, bf16, f16"),
    ],
)
def test_a_backend_list_that_cannot_be_measured_is_refused_saying_why(text, message):
    with pytest.raises(ConfigurationError, match=message):
        with_backend(load_target("x86-cpu"), text)
