"""Hostile decoder input: a config.json whose sizes are NaN, text, negative, huge or absent; a safetensors file
whose header claims more than it holds; a genai_config.json that is not an object; a prompt file that is a
folder or a link to one; prompt and decode lengths of zero, negative or past the context. Each is refused before
anything is built, naming the file and the field (or the option)."""

from __future__ import annotations

import json
import shutil
import struct

import pytest

pytest.importorskip("onnxruntime_genai", reason="the llm extra (onnxruntime-genai) is not installed")

from harness import InputError, SpeedproofError, UsageError, verify  # noqa: E402
from harness.decoders.sources import genai_folder_source, resolve_decoder_source  # noqa: E402


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("SPEEDPROOF_DECODER_CACHE", str(tmp_path_factory.mktemp("decoders")))
    yield resolve_decoder_source("llama-tiny-shape").folder
    monkeypatch.undo()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vocab_size", "NaN"),
        ("vocab_size", "512"),
        ("hidden_size", -64),
        ("num_hidden_layers", 0),
        ("num_hidden_layers", True),
        ("max_position_embeddings", 2.5),
        ("vocab_size", 2**70),
        ("hidden_size", None),
    ],
)
def test_a_config_size_that_is_no_whole_number_or_lies_names_the_file_and_field(tiny_folder, tmp_path, field, value):
    folder = shutil.copytree(tiny_folder, tmp_path / "hostile")
    config = json.loads((folder / "config.json").read_text())
    config[field] = float("nan") if value == "NaN" else value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError) as raised:
        resolve_decoder_source(str(folder))
    assert str(folder / "config.json") in str(raised.value) and field in str(raised.value)


def test_a_safetensors_header_that_claims_more_than_the_file_holds_is_refused(tiny_folder, tmp_path):
    folder = shutil.copytree(tiny_folder, tmp_path / "claims")
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 10_000) + b"{}")
    with pytest.raises(InputError, match="not a readable safetensors file"):
        resolve_decoder_source(str(folder))


@pytest.mark.parametrize("content", ["[1, 2]", "not json", '{"model": {"decoder": 3}}'])
def test_a_genai_config_of_the_wrong_shape_names_the_file(tmp_path, content):
    (tmp_path / "genai_config.json").write_text(content)
    with pytest.raises(SpeedproofError) as raised:
        genai_folder_source(tmp_path)
    assert "genai_config.json" in str(raised.value)


def test_a_prompt_file_that_is_a_folder_or_a_link_to_one_is_refused(tiny_folder, tmp_path):
    (tmp_path / "link").symlink_to(tmp_path)
    for prompts in (tmp_path, tmp_path / "link"):
        with pytest.raises(SpeedproofError, match="--prompts"):
            verify("llama-tiny-shape", recipes=["int4-weight"], prompts=prompts, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"prompt_tokens": [0]}, "prompt_tokens"),
        ({"prompt_tokens": [-5, 16]}, "prompt_tokens"),
        ({"prompt_tokens": "128"}, "prompt_tokens"),
        ({"prompt_tokens": [2**40]}, "context of 1024 tokens"),
        ({"decode_tokens": 0}, "decode_tokens"),
        ({"decode_tokens": 1}, "at least 2"),
        ({"decode_tokens": 10**9}, "context of 1024 tokens"),
    ],
)
def test_prompt_and_decode_lengths_out_of_range_are_usage_errors(tiny_folder, tmp_path, options, says):
    with pytest.raises(UsageError, match=says):
        verify("llama-tiny-shape", recipes=["int4-weight"], out=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()
