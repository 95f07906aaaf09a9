"""Structured (channel, neuron and attention-head) pruning with torch-pruning's dependency graph:
the mechanism behind the `structured` recipe and per-layer sensitivity. The layers that produce
the outputs and embeddings are never narrowed, so a pruned model keeps its interface; iterative
rounds follow `compounding_ratios`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.models.encoder_mini import attention_modules
from targets.errors import SpeedproofError

if TYPE_CHECKING:
    import torch

PRUNING_SEED = 0


def compounding_ratios(target: float, rounds: int) -> list[float]:
    """The cumulative ratio after each of `rounds` rounds that each remove the same share of what is
    left, ending at `target`: 0.5 in 5 rounds -> 0.129, 0.242, 0.340, 0.426, 0.5."""
    return [1.0 - (1.0 - target) ** (number / rounds) for number in range(1, rounds + 1)]


def find_classifier_layers(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> list[torch.nn.Module]:
    """The conv/linear layers whose outputs are the model's outputs (their outputs are never pruned):
    matched by tensor storage through views and flattening; else the last such layer that ran."""
    import torch
    from torch import nn

    produced: list[tuple[nn.Module, Any]] = []

    def remember(layer: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            produced.append((layer, output))

    hooks = [
        child.register_forward_hook(remember)
        for child in module.modules()
        if isinstance(child, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            outputs = module(*example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    if not produced:
        return []
    output_list = (
        [outputs] if isinstance(outputs, torch.Tensor) else [o for o in outputs if isinstance(o, torch.Tensor)]
    )
    pointers = {output.data_ptr() for output in output_list}
    matched = [layer for layer, output in produced if output.data_ptr() in pointers]
    return matched or [produced[-1][0]]


def kept_layers(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> list[torch.nn.Module]:
    """What structured pruning never narrows: the layers that produce the outputs, and embeddings
    (their widths are a transformer's residual stream: pruning them is not channel pruning)."""
    from torch import nn

    kept: list[nn.Module] = find_classifier_layers(module, example_inputs)
    return kept + [child for child in module.modules() if isinstance(child, nn.Embedding)]


@dataclass(frozen=True)
class StructuredResult:
    ignored_layers: int
    attention_modules: int
    heads_before: int
    heads_after: int


def prune_structured(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    ratio: float,
    importance: str,
    round_to: int,
    global_pruning: bool,
    rounds: int = 1,
    after_round: Callable[[int], None] | None = None,
    layer_ratios: Mapping[str, float] | None = None,
    heads: bool = True,
) -> StructuredResult:
    """Remove channels, neurons and whole attention heads in place; the classifier's outputs and
    embedding widths are kept, so outputs keep their shapes. In `rounds` rounds the ratio grows
    as `compounding_ratios` (of the original widths), `after_round(number)` running after each.
    `layer_ratios` (module name -> ratio) prunes the group of each named layer at its own ratio,
    the other groups at `ratio`. With `heads` false, attention keeps all its heads."""
    import torch
    from torch import nn

    try:
        import torch_pruning as tp
    except ImportError:
        raise SpeedproofError("structured pruning needs torch-pruning: pip install torch-pruning") from None

    importance_by_name = {
        "l1": lambda: tp.importance.MagnitudeImportance(p=1),
        "l2": lambda: tp.importance.MagnitudeImportance(p=2),
        "random": tp.importance.RandomImportance,
    }
    torch.manual_seed(PRUNING_SEED)
    ignored = kept_layers(module, example_inputs)
    attention = attention_modules(module)
    by_name = dict(module.named_modules())
    ratio_dict = {by_name[name]: share for name, share in (layer_ratios or {}).items()}
    num_heads: dict[nn.Module, int] = {}
    head_widths = {}
    for layer in attention:
        for projection in (layer.query, layer.key, layer.value):
            num_heads[projection] = layer.num_heads
        head_widths[layer] = layer.query.out_features // layer.num_heads
    heads_before = sum(layer.num_heads for layer in attention)

    def schedule(target: float, steps: int) -> list[float]:  # torch-pruning's: cumulative, from 0
        return [0.0, *compounding_ratios(target, steps)]

    try:
        with warnings.catch_warnings():
            # a bare nn.Parameter (a learned position embedding) is pruned along its last dim, the
            # model's width, which is what keeps it consistent: torch-pruning warns about it anyway
            warnings.filterwarnings("ignore", message=r"(?s).*Torch-Pruning will prune the last non-singleton")
            pruner = tp.pruner.MetaPruner(
                module,
                tuple(example_inputs),
                importance=importance_by_name[importance](),
                pruning_ratio=ratio,
                pruning_ratio_dict=ratio_dict or None,
                global_pruning=global_pruning,
                round_to=round_to if round_to > 1 else None,
                ignored_layers=ignored,
                num_heads=num_heads,
                prune_num_heads=bool(attention) and heads,
                prune_head_dims=False,
                head_pruning_ratio=ratio if attention and heads else 0.0,
                iterative_steps=rounds,
                iterative_pruning_ratio_scheduler=schedule,
            )
    except Exception as error:
        raise SpeedproofError(
            f"structured: torch-pruning cannot prune {type(module).__name__}: {type(error).__name__}: {error}"
        ) from error
    if attention and heads and rounds > 1:
        # torch-pruning (1.6) removes ceil(ratio * heads) of the heads a layer has *now* each round, so
        # its cumulative schedule over-prunes heads (and runs out of them); give it, per layer, the
        # share of its current heads that takes it to the heads a one-shot pruning would leave
        for layer in attention:
            shares = _head_shares(layer.num_heads, compounding_ratios(ratio, rounds))
            for projection in (layer.query, layer.key, layer.value):
                pruner.head_pruning_ratio_dict[projection] = [0.0, *shares]
    for number in range(1, rounds + 1):
        try:
            pruner.step()
        except Exception as error:
            raise SpeedproofError(
                f"structured: torch-pruning cannot prune {type(module).__name__}: {type(error).__name__}: {error}"
            ) from error
        for layer in attention:
            layer.num_heads = layer.query.out_features // head_widths[layer]
        if after_round is not None:
            after_round(number)
    return StructuredResult(
        ignored_layers=len(ignored),
        attention_modules=len(attention),
        heads_before=heads_before,
        heads_after=sum(layer.num_heads for layer in attention),
    )


def _head_shares(heads: int, cumulative: list[float]) -> list[float]:
    """Per round, the share of the heads left that torch-pruning's ceil(share * heads) turns into
    the heads to remove, so that after the last round ceil(ratio * heads) are gone, as in one shot."""
    left = [heads - math.ceil(ratio * heads - 1e-9) for ratio in cumulative]
    shares, current = [], heads
    for target in left:
        removed = current - max(target, 1)
        shares.append((removed - 1e-6) / current if removed > 0 else 0.0)
        current -= max(removed, 0)
    return shares
