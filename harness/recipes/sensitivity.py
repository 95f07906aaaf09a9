"""Per-layer sensitivity to structured pruning: prune each prunable group of layers alone (a layer
and the layers its channels are coupled to, as torch-pruning's dependency graph finds them) at a
ratio and measure the top-1 accuracy it costs on the source's labelled data; and the
sensitivity-weighted ratios of `structured:R:layer_ratios=sensitivity`, which prune less where the
cost is larger and more where it is smaller, removing about the same share of channels in all.

Attention projections are pruned by whole heads with the rest of the model: they are not probed
one by one (a `layer_ratios=sensitivity` recipe prunes their heads at the recipe's ratio).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.models.encoder_mini import attention_modules
from harness.models.training import torch_accuracy
from harness.progress import ProgressCallback, no_progress
from harness.recipes.channel_pruning import kept_layers, prune_structured
from targets.errors import SpeedproofError

if TYPE_CHECKING:
    import torch

    from harness.models.data import LabelledData, TorchModel

# a drop this small counts as this much when ratios are weighted (no layer is free to prune)
DROP_FLOOR = 0.01
# no layer is pruned past this share by the weighted ratios, nor past twice the recipe's ratio
MAX_LAYER_RATIO = 0.9


@dataclass(frozen=True)
class PrunableGroup:
    name: str  # the layer the group is named by (its root in the dependency graph)
    layers: tuple[str, ...]  # every conv/linear whose outputs shrink with it
    channels: int  # the root's output channels


@dataclass(frozen=True)
class LayerSensitivity:
    group: PrunableGroup
    accuracy: float
    drop: float  # baseline accuracy - accuracy with this group alone pruned
    params_kept: float  # share of the model's parameters left


def prunable_groups(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> list[PrunableGroup]:
    """The groups structured pruning narrows (the outputs' layers, embeddings and attention
    projections aside), in the model's order."""
    from torch import nn

    try:
        import torch_pruning as tp
    except ImportError:
        raise SpeedproofError("layer sensitivity needs torch-pruning: pip install torch-pruning") from None
    names = {child: name for name, child in module.named_modules()}
    attention = {
        projection
        for layer in attention_modules(module)
        for projection in (layer.query, layer.key, layer.value)  # the output projection is the residual width
    }
    with warnings.catch_warnings():
        # a bare nn.Parameter (a position embedding) along the model's width: torch-pruning warns, as in
        # channel_pruning
        warnings.filterwarnings("ignore", message=r"(?s).*Torch-Pruning will prune the last non-singleton")
        graph = tp.DependencyGraph().build_dependency(module, example_inputs=tuple(example_inputs))
    layer_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    groups = []
    for group in graph.get_all_groups(
        ignored_layers=kept_layers(module, example_inputs), root_module_types=layer_types
    ):
        members = [
            dep.target.module
            for dep, _ in group
            if isinstance(dep.target.module, layer_types) and graph.is_out_channel_pruning_fn(dep.handler)
        ]
        if not members or any(member in attention for member in members):
            continue
        root = members[0]
        groups.append(
            PrunableGroup(names[root], tuple(dict.fromkeys(names[member] for member in members)), _out_channels(root))
        )
    return groups


def _out_channels(layer: torch.nn.Module) -> int:
    return int(getattr(layer, "out_channels", 0) or getattr(layer, "out_features", 0))


def pruned_alone(
    model: TorchModel, group: PrunableGroup, ratio: float, importance: str = "l1", round_to: int = 1
) -> torch.nn.Module:
    """A copy of the model's module with only `group` pruned, at `ratio`."""
    module = copy.deepcopy(model.module)
    prune_structured(module, model.example_inputs, 0.0, importance, round_to, False, layer_ratios={group.name: ratio})
    return module


def labelled_data(model: TorchModel, why: str) -> LabelledData:
    if model.eval_data is None:
        raise SpeedproofError(
            f"{why} measures the accuracy each layer costs on the source's labelled data, and this source provides "
            "none (a TorchModel with eval_data does; see harness.models.data)"
        )
    return model.eval_data


def layer_sensitivities(
    model: TorchModel,
    ratio: float,
    importance: str = "l1",
    round_to: int = 1,
    progress: ProgressCallback = no_progress,
) -> tuple[float, list[LayerSensitivity]]:
    """The baseline's accuracy and, per prunable group, the accuracy with that group alone pruned."""
    data = labelled_data(model, "layer sensitivity")
    baseline = torch_accuracy(model.module, data)
    total = sum(parameter.numel() for parameter in model.module.parameters())
    groups = prunable_groups(model.module, model.example_inputs)
    if not groups:
        raise SpeedproofError(f"{type(model.module).__name__} has no layer that structured pruning can narrow")
    found = []
    for index, group in enumerate(groups, start=1):
        progress(f"sensitivity [{index}/{len(groups)}] {group.name} at {ratio:g}")
        module = pruned_alone(model, group, ratio, importance, round_to)
        accuracy = torch_accuracy(module, data)
        kept = sum(parameter.numel() for parameter in module.parameters()) / total
        found.append(LayerSensitivity(group, accuracy, baseline - accuracy, round(kept, 4)))
    return baseline, found


def sensitivity_ratios(sensitivities: Sequence[LayerSensitivity], ratio: float) -> dict[str, float]:
    """Per group, a ratio inversely weighted by its drop (floored at DROP_FLOOR), scaled so that the
    channel-weighted mean is `ratio`, capped at min(2 * ratio, MAX_LAYER_RATIO)."""
    if not sensitivities:
        return {}
    weights = {item.group.name: 1.0 / max(item.drop, DROP_FLOOR) for item in sensitivities}
    channels = {item.group.name: max(item.group.channels, 1) for item in sensitivities}
    total = sum(channels.values())
    mean_weight = sum(weights[name] * channels[name] for name in weights) / total
    cap = min(2 * ratio, MAX_LAYER_RATIO)
    return {name: round(min(ratio * weight / mean_weight, cap), 4) for name, weight in weights.items()}
