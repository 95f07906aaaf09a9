"""Structured width pruning of a decoder's Hugging Face weights (the `structured:R` recipe on decoders): in every
layer the same number of MLP channels (rows of gate_proj and up_proj, columns of down_proj) and of attention head
groups (a key/value head with the query heads that share it, and their columns of o_proj) are removed, the least
important by magnitude, and the config's `intermediate_size`, `num_attention_heads` and `num_key_value_heads` are
cut to match (`head_dim` written out, since it no longer follows from the hidden size). The residual width
(hidden_size) is kept, so embeddings, norms and the output head are untouched.

This slices the safetensors directly rather than running torch-pruning's dependency graph: the builder reads one
width per config key, so every layer must lose the same count; a key/value head must go with its query group
(GQA); and torch-pruning would also narrow the residual stream that ties the embeddings to every layer. The
ranking is torch-pruning's group magnitude importance (the norms of every slice a channel or head owns, summed).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from targets.errors import SpeedproofError

PRUNING_SEED = 0
MLP_KEYS = ("gate_proj", "up_proj", "down_proj")
ATTENTION_KEYS = ("q_proj", "k_proj", "v_proj", "o_proj")
SUPPORTED_LAYOUT = (
    "separate mlp.gate_proj/up_proj/down_proj and self_attn.q_proj/k_proj/v_proj/o_proj weights per layer "
    "(LLaMA, Mistral, Qwen2/3, SmolLM)"
)


def kept_count(width: int, ratio: float, round_to: int) -> int:
    """The MLP channels a layer keeps: `width` less `ratio` of it, rounded to a multiple of `round_to` (at least
    `round_to`, never more than `width`)."""
    kept = width - round(ratio * width)
    if round_to > 1:
        kept = max(round_to, round(kept / round_to) * round_to)
    return max(1, min(width, kept))


def removed_groups(kv_heads: int, ratio: float) -> int:
    """Head groups removed: `ratio` of them rounded down (a ratio never removes more than it says), one always kept."""
    return min(kv_heads - 1, math.floor(ratio * kv_heads + 1e-9))


def prune_decoder_widths(
    source: Path, destination: Path, ratio: float, heads: bool = True, importance: str = "l1", round_to: int = 1
) -> dict[str, Any]:
    """A copy of the Hugging Face folder `source` at `destination`, narrowed as the module says; what changed."""
    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((source / "config.json").read_text())
    layers = int(config["num_hidden_layers"])
    width = int(config["intermediate_size"])
    query_heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or query_heads)
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // query_heads)
    tensors: dict[str, Any] = {}
    for name in _weight_files(source):
        tensors.update(load_file(str(source / name)))
    kept_channels = kept_count(width, ratio, round_to)
    dropped_groups = removed_groups(kv_heads, ratio) if heads else 0
    generator = torch.Generator().manual_seed(PRUNING_SEED)
    for layer in range(layers):
        mlp = {key: _tensor(tensors, f"model.layers.{layer}.mlp.{key}.weight") for key in MLP_KEYS}
        scores = _norm(mlp["gate_proj"], importance, 1) + _norm(mlp["up_proj"], importance, 1)
        scores = scores + _norm(mlp["down_proj"], importance, 0)
        keep = _top(scores, kept_channels, importance, generator)
        for key in ("gate_proj", "up_proj"):
            _slice(tensors, f"model.layers.{layer}.mlp.{key}", keep, 0)
        _slice(tensors, f"model.layers.{layer}.mlp.down_proj", keep, 1)
        if dropped_groups:
            _prune_head_groups(tensors, layer, query_heads, kv_heads, head_dim, dropped_groups, importance, generator)
    destination.mkdir(parents=True)
    save_file(
        {key: value.contiguous() for key, value in tensors.items()},
        str(destination / "model.safetensors"),
        metadata={"format": "pt"},
    )
    group = query_heads // kv_heads
    config["intermediate_size"] = kept_channels
    config["num_key_value_heads"] = kv_heads - dropped_groups
    config["num_attention_heads"] = (kv_heads - dropped_groups) * group
    config["head_dim"] = head_dim
    (destination / "config.json").write_text(json.dumps(config, indent=2))
    for item in source.iterdir():
        if item.is_file() and item.name != "config.json" and "safetensors" not in item.name:
            shutil.copy2(item, destination / item.name)
    return {
        "ratio": ratio,
        "importance": importance,
        "intermediate_size": [width, kept_channels],
        "attention_heads": [query_heads, config["num_attention_heads"]],
        "key_value_heads": [kv_heads, config["num_key_value_heads"]],
    }


def _weight_files(source: Path) -> list[str]:
    index = source / "model.safetensors.index.json"
    if index.is_file():
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    return ["model.safetensors"]


def _tensor(tensors: dict[str, Any], key: str) -> Any:
    if key not in tensors:
        raise SpeedproofError(
            f"structured: the weights have no {key}; width pruning of decoders needs {SUPPORTED_LAYOUT}"
        )
    return tensors[key]


def _norm(weight: Any, importance: str, axis: int) -> Any:
    """Per output row (axis 1 summed) or input column (axis 0 summed): the L1 or squared L2 norm."""
    values = weight.float()
    return values.abs().sum(dim=axis) if importance != "l2" else values.pow(2).sum(dim=axis)


def _top(scores: Any, count: int, importance: str, generator: Any) -> Any:
    import torch

    if importance == "random":
        order = torch.randperm(len(scores), generator=generator)
    else:
        order = torch.argsort(scores, descending=True, stable=True)
    return torch.sort(order[:count]).values


def _slice(tensors: dict[str, Any], prefix: str, keep: Any, axis: int) -> None:
    """Keep `keep` along `axis` of the weight (and, along 0, of the bias if there is one)."""
    tensors[f"{prefix}.weight"] = tensors[f"{prefix}.weight"].index_select(axis, keep)
    if axis == 0 and f"{prefix}.bias" in tensors:
        tensors[f"{prefix}.bias"] = tensors[f"{prefix}.bias"].index_select(0, keep)


def _prune_head_groups(
    tensors: dict[str, Any],
    layer: int,
    query_heads: int,
    kv_heads: int,
    head_dim: int,
    dropped: int,
    importance: str,
    generator: Any,
) -> None:
    """Remove `dropped` key/value heads of the layer with their query heads (GQA groups), the least important."""
    import torch

    prefix = f"model.layers.{layer}.self_attn"
    weights = {key: _tensor(tensors, f"{prefix}.{key}.weight") for key in ATTENTION_KEYS}
    group = query_heads // kv_heads
    if group * kv_heads != query_heads:
        raise SpeedproofError(
            f"structured: {query_heads} query heads do not split into {kv_heads} key/value groups; heads=false "
            "prunes the MLP alone"
        )
    query_rows = _norm(weights["q_proj"], importance, 1).reshape(kv_heads, group * head_dim).sum(dim=1)
    key_rows = _norm(weights["k_proj"], importance, 1).reshape(kv_heads, head_dim).sum(dim=1)
    value_rows = _norm(weights["v_proj"], importance, 1).reshape(kv_heads, head_dim).sum(dim=1)
    output_columns = _norm(weights["o_proj"], importance, 0).reshape(kv_heads, group * head_dim).sum(dim=1)
    kept_groups = _top(query_rows + key_rows + value_rows + output_columns, kv_heads - dropped, importance, generator)
    kv_index = torch.cat([torch.arange(g * head_dim, (g + 1) * head_dim) for g in kept_groups.tolist()])
    query_index = torch.cat(
        [torch.arange(g * group * head_dim, (g + 1) * group * head_dim) for g in kept_groups.tolist()]
    )
    _slice(tensors, f"{prefix}.q_proj", query_index, 0)
    _slice(tensors, f"{prefix}.k_proj", kv_index, 0)
    _slice(tensors, f"{prefix}.v_proj", kv_index, 0)
    _slice(tensors, f"{prefix}.o_proj", query_index, 1)
