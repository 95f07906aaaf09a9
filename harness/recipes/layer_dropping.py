"""Layer dropping (structured depth pruning) for transformer encoders: remove K layers of the
model's layer stack, by default middle ones (the first and last layers stay, as the guides
advise), then recover with fine-tuning or distillation. Registers the `drop-layers` recipe.

The stack is found where the common encoders keep it: `nn.TransformerEncoder.layers`, a Hugging
Face style `encoder.layer` or `layers` ModuleList, or a `layers` nn.Sequential (encoder-mini,
digits-transformer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.recipes.catalogue import RECOVERY_OPTIONS, OptionSpec, RecipeKind, Recover, ValueSpec, register
from targets.errors import SpeedproofError

if TYPE_CHECKING:
    import torch

    from harness.models.data import TorchModel
    from harness.recipes.catalogue import RecipeStep

KEEP_CHOICES = ("ends", "first", "last")
# where encoders keep their layers, as paths from the model
STACK_NAMES = ("layers", "encoder.layers", "encoder.layer", "transformer.layers", "transformer.layer", "layer")


@dataclass(frozen=True)
class LayerStack:
    path: str  # e.g. "encoder.layer"
    parent: Any  # the module that holds the stack as attribute `attribute`
    attribute: str
    layers: list[Any]


def find_layer_stack(module: torch.nn.Module) -> LayerStack:
    """The model's one stack of repeated encoder layers; a clear error naming what was looked for
    when there is none, or when there are several."""
    from torch import nn

    found: dict[int, LayerStack] = {}
    for name, child in module.named_modules():
        if isinstance(child, nn.TransformerEncoder):
            found[id(child.layers)] = LayerStack(
                f"{name}.layers" if name else "layers", child, "layers", list(child.layers)
            )
    for path in STACK_NAMES:
        parent: Any = module
        *parents, attribute = path.split(".")
        for part in parents:
            parent = getattr(parent, part, None)
        stack = getattr(parent, attribute, None) if parent is not None else None
        if isinstance(stack, nn.ModuleList | nn.Sequential) and len(stack) > 1 and id(stack) not in found:
            layer_types = {type(layer) for layer in stack}
            if len(layer_types) == 1:  # repeated layers, not a pipeline of different modules
                found[id(stack)] = LayerStack(path, parent, attribute, list(stack))
    if not found:
        raise SpeedproofError(
            f"drop-layers: {type(module).__name__} has no stack of repeated layers to drop from; looked for an "
            f"nn.TransformerEncoder and a ModuleList/Sequential of identical layers at {', '.join(STACK_NAMES)}"
        )
    if len(found) > 1:
        paths = ", ".join(stack.path for stack in found.values())
        raise SpeedproofError(
            f"drop-layers: {type(module).__name__} has several layer stacks ({paths}); it drops from one"
        )
    return next(iter(found.values()))


def kept_indices(layers: int, dropped: int, keep: str) -> list[int]:
    """Which of `layers` stay when `dropped` go: `ends` keeps the first and last ones and drops the
    middle (the first half of what stays from the start, the rest from the end), `first` keeps
    the first ones, `last` the last ones."""
    kept = layers - dropped
    if keep == "first":
        return list(range(kept))
    if keep == "last":
        return list(range(dropped, layers))
    head = (kept + 1) // 2
    return [*range(head), *range(layers - (kept - head), layers)]


def drop_layers(module: torch.nn.Module, dropped: int, keep: str) -> dict[str, Any]:
    """Remove `dropped` layers from the model's stack in place; returns what it did."""
    from torch import nn

    stack = find_layer_stack(module)
    if dropped >= len(stack.layers):
        raise SpeedproofError(
            f"drop-layers:{dropped}: {stack.path} has {len(stack.layers)} layers; at most {len(stack.layers) - 1} "
            "can be dropped (one must stay)"
        )
    kept = kept_indices(len(stack.layers), dropped, keep)
    layers = [stack.layers[index] for index in kept]
    current = getattr(stack.parent, stack.attribute)
    replacement = nn.Sequential(*layers) if isinstance(current, nn.Sequential) else nn.ModuleList(layers)
    setattr(stack.parent, stack.attribute, replacement)
    if isinstance(stack.parent, nn.TransformerEncoder):
        stack.parent.num_layers = len(layers)
    config = getattr(module, "config", None)  # Hugging Face models read their depth from the config
    if config is not None and hasattr(config, "num_hidden_layers"):
        config.num_hidden_layers = len(layers)
    return {"stack": stack.path, "layers_before": len(stack.layers), "kept_layers": kept}


def _drop_layers(model: TorchModel, step: RecipeStep, recover: Recover) -> dict[str, Any]:
    assert step.value is not None
    return drop_layers(model.module, int(step.value), str(step.option("keep")))


register(
    RecipeKind(
        "drop-layers",
        "torch",
        "drop K layers of a transformer's encoder stack (structured depth pruning), middle ones by default",
        ValueSpec("layer count K", whole=True),
        {
            "keep": OptionSpec(
                "choice", "ends", "which layers stay: the first and last (ends), the first, the last", KEEP_CHOICES
            ),
            **RECOVERY_OPTIONS,
        },
        apply_torch=_drop_layers,
    )
)
