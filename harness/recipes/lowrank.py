"""Low-rank factorisation: replace a linear layer (or a 1x1 convolution) W by two thinner ones from
its truncated SVD, W ~ (U S^1/2)(S^1/2 V^T), keeping a fraction of the rank, only where that
reduces the parameter count. Registers the `lowrank` recipe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.recipes.catalogue import RECOVERY_OPTIONS, OptionSpec, RecipeKind, Recover, ValueSpec, register

if TYPE_CHECKING:
    import torch

    from harness.models.data import TorchModel
    from harness.recipes.catalogue import RecipeStep


@dataclass(frozen=True)
class LowRankResult:
    factored: int
    skipped_too_small: int
    skipped_no_saving: int
    skipped_read_directly: int  # linears of torch's attention/transformer layers, which read .weight directly


def _kept_rank(in_features: int, out_features: int, fraction: float) -> int:
    return max(1, round(fraction * min(in_features, out_features)))


def _factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) with second @ first ~ weight, shapes (rank, in) and (out, rank)."""
    import torch

    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    first = (root[:, None] * vh[:rank]).to(weight.dtype)
    second = (u[:, :rank] * root[None, :]).to(weight.dtype)
    return first, second


def _factor_linear(layer: Any, rank: int) -> torch.nn.Module:
    from torch import nn

    first_weight, second_weight = _factors(layer.weight, rank)
    first = nn.Linear(layer.in_features, rank, bias=False)
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
    first.weight.data.copy_(first_weight)
    second.weight.data.copy_(second_weight)
    if layer.bias is not None and second.bias is not None:
        second.bias.data.copy_(layer.bias.detach())
    return nn.Sequential(first, second)


def _factor_pointwise_conv(layer: Any, rank: int) -> torch.nn.Module:
    from torch import nn

    matrix = layer.weight.detach().flatten(1)  # (out, in)
    first_weight, second_weight = _factors(matrix, rank)
    first = nn.Conv2d(layer.in_channels, rank, 1, stride=layer.stride, bias=False)
    second = nn.Conv2d(rank, layer.out_channels, 1, bias=layer.bias is not None)
    first.weight.data.copy_(first_weight[:, :, None, None])
    second.weight.data.copy_(second_weight[:, :, None, None])
    if layer.bias is not None and second.bias is not None:
        second.bias.data.copy_(layer.bias.detach())
    return nn.Sequential(first, second)


def _is_pointwise_conv(layer: torch.nn.Module) -> bool:
    from torch import nn

    return (
        isinstance(layer, nn.Conv2d)
        and layer.kernel_size == (1, 1)
        and layer.groups == 1
        and layer.padding in ((0, 0), "valid")
        and layer.dilation == (1, 1)
    )


def factorize_low_rank(module: torch.nn.Module, fraction: float, min_features: int) -> LowRankResult:
    """Factor every eligible layer of `module` in place."""
    from torch import nn

    factored = too_small = no_saving = read_directly = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(parent, nn.MultiheadAttention | nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
                # their forward reads their linears' .weight itself (fused paths): a factored pair breaks it
                read_directly += isinstance(child, nn.Linear)
                continue
            layer: Any = child
            if isinstance(layer, nn.Linear):
                in_features, out_features = layer.in_features, layer.out_features
            elif _is_pointwise_conv(layer):
                in_features, out_features = layer.in_channels, layer.out_channels
            else:
                continue
            if min(in_features, out_features) < min_features:
                too_small += 1
                continue
            rank = _kept_rank(in_features, out_features, fraction)
            if rank * (in_features + out_features) >= in_features * out_features:
                no_saving += 1
                continue
            replacement = (
                _factor_linear(child, rank) if isinstance(child, nn.Linear) else _factor_pointwise_conv(child, rank)
            )
            setattr(parent, name, replacement)
            factored += 1
    return LowRankResult(factored, too_small, no_saving, read_directly)


def _lowrank(model: TorchModel, step: RecipeStep, recover: Recover) -> dict[str, Any]:
    assert step.value is not None
    return dict(vars(factorize_low_rank(model.module, step.value, int(step.option("min_features")))))


register(
    RecipeKind(
        "lowrank",
        "torch",
        "SVD factorisation of linear layers and 1x1 convs keeping fraction K of the rank, where it saves params",
        ValueSpec("rank fraction K", upper_inclusive=True),
        {
            "min_features": OptionSpec(
                "int", 16, "factor only layers whose smaller side has at least N features", minimum=1
            ),
            **RECOVERY_OPTIONS,
        },
        apply_torch=_lowrank,
    )
)
