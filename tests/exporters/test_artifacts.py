"""Artifact kinds: recognised by file name, checked, described and asked for their inputs."""

import pytest

from exporters.artifacts import ARTIFACT_KINDS, artifact_at
from targets.errors import SpeedproofError


def test_an_onnx_file_is_an_onnx_artifact_with_facts_and_inputs(tiny_conv_onnx):
    artifact = artifact_at(tiny_conv_onnx)
    assert artifact.kind is ARTIFACT_KINDS["onnx"]
    parsed = artifact.kind.load_checked(tiny_conv_onnx)
    facts = artifact.facts(parsed)
    assert facts["bytes"] > facts["zipped_bytes"] > 0 and facts["macs"] > 0
    (model_input,) = artifact.kind.model_inputs(parsed)
    assert model_input.dtype == "float32" and model_input.dims[1:] == (3, 16, 16)


def test_an_unknown_kind_names_the_known_ones(tmp_path):
    with pytest.raises(SpeedproofError, match=r"engine.plan: not an artifact .*known kinds: \.onnx"):
        artifact_at(tmp_path / "engine.plan")
