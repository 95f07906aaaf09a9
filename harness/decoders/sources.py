"""Decoder sources, checked before anything is built or measured: a Hugging Face folder (`config.json`, its
weights, tokenizer files) that ONNX Runtime GenAI's model builder turns into an ONNX decoder, an ONNX Runtime
GenAI folder already built (`genai_config.json` + the decoder's ONNX file), or a name of the decoder zoo.

A Hugging Face folder's config is checked against its weights' own shapes (read from the safetensors headers,
no weights loaded): a config that lies about its sizes fails here, naming the field, not inside the builder.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets.errors import InputError, UsageError
from targets.files_in import CONFIG_CAP_BYTES, read_input_json

# the text decoders ONNX Runtime GenAI 0.18's model builder makes ONNX models of (its create_model's list, the
# multimodal and speech ones left out: speedproof times text generation)
BUILDER_ARCHITECTURES = (
    "ChatGLMModel",
    "Ernie4_5ForCausalLM",
    "GemmaForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "GptOssForCausalLM",
    "GraniteForCausalLM",
    "HunYuanDenseV1ForCausalLM",
    "InternLM2ForCausalLM",
    "Lfm2ForCausalLM",
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "NemotronForCausalLM",
    "OlmoForCausalLM",
    "PhiForCausalLM",
    "Phi3ForCausalLM",
    "Phi3SmallForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "SmolLM3ForCausalLM",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
SAFETENSORS_HEADER_CAP = 64 * 2**20
LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.")


@dataclass(frozen=True)
class DecoderSource:
    """A decoder to verify: where it is and what its config says."""

    name: str  # the label the record uses
    kind: str  # "zoo", "hf-folder" or "genai-folder"
    folder: Path
    architecture: str
    layers: int
    hidden_size: int
    vocab_size: int
    context_length: int
    latency_only: bool = False  # random weights: quality means nothing
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def buildable(self) -> bool:
        """A Hugging Face folder: recipes rebuild it; a built GenAI folder is measured as it is."""
        return self.kind != "genai-folder"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "folder": str(self.folder),
            "architecture": self.architecture,
            "layers": self.layers,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "latency_only": self.latency_only,
        }


def is_decoder_source(text: str) -> bool:
    """Whether `text` names a decoder: a zoo decoder, or a folder with config.json or genai_config.json."""
    from harness.decoders.zoo import DECODER_ZOO

    if text in (*DECODER_ZOO, "pydoc-lm"):
        return True
    path = Path(text)
    return path.is_dir() and ((path / "genai_config.json").is_file() or (path / "config.json").is_file())


# what the decoder scenario imports (module -> package), all installed by the `llm` extra
LLM_MODULES = {
    "onnxruntime_genai": "onnxruntime-genai",
    "transformers": "transformers",
    "onnx_ir": "onnx-ir",
    "tokenizers": "tokenizers",
    "safetensors": "safetensors",
}


def require_llm_extra(model: str) -> None:
    """Refuse a decoder when what times and builds it is not installed, naming the packages and the extra."""
    import importlib.util

    missing = [package for module, package in LLM_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(
            f"{model} is a generative decoder; timing and building it needs {', '.join(missing)}: install "
            "pip install 'speedproof[llm]'"
        )


def resolve_decoder_source(text: str, progress: Callable[[str], None] | None = None) -> DecoderSource:
    """The decoder `text` names, checked; a zoo decoder is made (once, cached) first, pydoc-lm trained."""
    from harness.decoders.pydoc_lm import NAME as PYDOC_LM
    from harness.decoders.pydoc_lm import pydoc_lm_facts, pydoc_lm_folder
    from harness.decoders.zoo import DECODER_ZOO, zoo_decoder_folder

    require_llm_extra(text)
    if text == PYDOC_LM:
        folder = pydoc_lm_folder(progress)
        source = hf_folder_source(folder, name=text)
        return DecoderSource(**{**source.__dict__, "kind": "zoo", "facts": {**source.facts, **pydoc_lm_facts(folder)}})
    if text in DECODER_ZOO:
        folder = zoo_decoder_folder(text)
        source = hf_folder_source(folder, name=text)
        return DecoderSource(**{**source.__dict__, "kind": "zoo", "latency_only": True})
    path = Path(text)
    if (path / "genai_config.json").is_file():
        return genai_folder_source(path)
    return hf_folder_source(path)


def _config(path: Path, what: str) -> dict[str, Any]:
    data = read_input_json(path, what, CONFIG_CAP_BYTES)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _positive_int(config: dict[str, Any], key: str, path: Path, where: str = "") -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{path}: {where}{key} = {value!r}; expected a whole number of at least 1")
    return value


def hf_folder_source(folder: Path, name: str | None = None) -> DecoderSource:
    """A Hugging Face folder, checked: a known architecture, tokenizer files, weights whose shapes match the
    config's sizes."""
    config_path = folder / "config.json"
    config = _config(config_path, "decoder config")
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str):
        raise InputError(
            f"{config_path}: no 'architectures' list; the model builder picks its converter by it (e.g. "
            '"architectures": ["LlamaForCausalLM"])'
        )
    architecture = architectures[0]
    if architecture not in BUILDER_ARCHITECTURES:
        raise InputError(
            f"{config_path}: architectures[0] = {architecture!r} is not a text decoder ONNX Runtime GenAI's model "
            f"builder knows; it builds: {', '.join(BUILDER_ARCHITECTURES)}. Export other models to ONNX yourself "
            "and verify the ONNX file"
        )
    tokenizer = [file for file in TOKENIZER_FILES if (folder / file).is_file()]
    if not tokenizer:
        raise InputError(
            f"{folder}: no tokenizer ({' or '.join(TOKENIZER_FILES)}); the model builder writes the tokenizer beside "
            "the ONNX decoder and needs it: save it into the folder with tokenizer.save_pretrained(folder)"
        )
    hidden = _positive_int(config, "hidden_size", config_path)
    layers = _positive_int(config, "num_hidden_layers", config_path)
    vocab = _positive_int(config, "vocab_size", config_path)
    context = _positive_int(config, "max_position_embeddings", config_path)
    shapes = weight_shapes(folder)
    _check_sizes(config_path, shapes, hidden, layers, vocab)
    return DecoderSource(
        name=name or folder.resolve().name,
        kind="hf-folder",
        folder=folder,
        architecture=architecture,
        layers=layers,
        hidden_size=hidden,
        vocab_size=vocab,
        context_length=context,
        facts={"model_type": config.get("model_type"), "weights_dtype": config.get("dtype", config.get("torch_dtype"))},
    )


def genai_folder_source(folder: Path, name: str | None = None) -> DecoderSource:
    """A folder ONNX Runtime GenAI's builder (or Olive) made: its genai_config.json names the decoder's file."""
    config_path = folder / "genai_config.json"
    config = _config(config_path, "ONNX Runtime GenAI config")
    model = config.get("model")
    decoder = model.get("decoder") if isinstance(model, dict) else None
    if not isinstance(decoder, dict):
        raise InputError(
            f"{config_path}: no model.decoder table; is this a folder made by ONNX Runtime GenAI's builder?"
        )
    filename = decoder.get("filename")
    if not isinstance(filename, str) or not (folder / filename).is_file():
        raise InputError(
            f"{config_path}: model.decoder.filename = {filename!r} is not a file in {folder}; the folder must hold "
            "the decoder's ONNX file it names"
        )
    assert isinstance(model, dict)
    return DecoderSource(
        name=name or folder.resolve().name,
        kind="genai-folder",
        folder=folder,
        architecture=str(model.get("type")),
        layers=_positive_int(decoder, "num_hidden_layers", config_path, "model.decoder."),
        hidden_size=_positive_int(decoder, "hidden_size", config_path, "model.decoder."),
        vocab_size=_positive_int(model, "vocab_size", config_path, "model."),
        context_length=_positive_int(model, "context_length", config_path, "model."),
    )


def weight_shapes(folder: Path) -> dict[str, list[int]]:
    """Every tensor's shape from the folder's safetensors headers (one file, or the shards an index names)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _config(index, "safetensors index").get("weight_map")
        if not isinstance(weight_map, dict):
            raise InputError(f"{index}: no weight_map table")
        files = sorted({str(name) for name in weight_map.values()})
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise InputError(
            f"{folder}: no weights ({' or '.join(WEIGHT_FILES)}); save the model with model.save_pretrained(folder) "
            "(safetensors, the builder's format)"
        )
    shapes: dict[str, list[int]] = {}
    for name in files:
        shapes.update(_safetensors_header_shapes(folder / name))
    return shapes


def _safetensors_header_shapes(path: Path) -> dict[str, list[int]]:
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > SAFETENSORS_HEADER_CAP:
                raise InputError(f"{path}: not a readable safetensors file (its header claims {length} bytes)")
            raw = handle.read(length)
            if len(raw) != length:
                raise InputError(
                    f"{path}: not a readable safetensors file (its header claims {length} bytes, the file holds "
                    f"{len(raw)} after it)"
                )
            header = json.loads(raw)
    except (OSError, struct.error, ValueError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({error})") from None
    return {key: list(value["shape"]) for key, value in header.items() if isinstance(value, dict) and "shape" in value}


def _check_sizes(config_path: Path, shapes: dict[str, list[int]], hidden: int, layers: int, vocab: int) -> None:
    embedding = next((shape for key, shape in shapes.items() if key.endswith("embed_tokens.weight")), None)
    if embedding is not None and len(embedding) == 2:
        if embedding[0] != vocab:
            raise InputError(
                f"{config_path}: vocab_size = {vocab}, but the weights' embedding table has {embedding[0]} rows; "
                "fix the config (or the weights) so that they agree"
            )
        if embedding[1] != hidden:
            raise InputError(
                f"{config_path}: hidden_size = {hidden}, but the weights' embedding table is {embedding[1]} wide; "
                "fix the config (or the weights) so that they agree"
            )
    found = {int(match.group(1)) for key in shapes if (match := LAYER_KEY.match(key))}
    if found and max(found) + 1 != layers:
        raise InputError(
            f"{config_path}: num_hidden_layers = {layers}, but the weights hold layers 0..{max(found)} "
            f"({max(found) + 1}); fix the config so that they agree"
        )


def prompt_fits(source: DecoderSource, longest_tokens: int, option: str) -> None:
    """Refuse a scenario whose longest sequence passes the decoder's context."""
    if longest_tokens > source.context_length:
        raise UsageError(
            f"{option}: {longest_tokens} tokens (the longest prompt and its new tokens) pass {source.name}'s "
            f"context of {source.context_length} tokens; use shorter prompts"
        )
