"""Pruning of torch modules: unstructured magnitude pruning, 2:4 semi-structured sparsity (both as
masks that `make_pruning_permanent` folds into the weights, so fine-tuning can keep zeros at zero),
and structured channel / attention-head pruning with torch-pruning's dependency graph. Registers
the `unstructured`, `structured` and `semi-structured` recipes.

Each can reach its target in rounds (`steps=N`, iterative pruning): every round removes the same
share of what is left, so the rounds compound to the target (sparsity S in N rounds: 1 - (1 - S)^(1/N)
of the remaining weights each), and the recovery (fine-tuning) runs after each round.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.models.encoder_mini import attention_modules
from harness.recipes.catalogue import RECOVERY_OPTIONS, STEPS, OptionSpec, RecipeKind, Recover, ValueSpec, register
from targets.errors import SpeedproofError

if TYPE_CHECKING:
    import torch

    from harness.models.data import TorchModel
    from harness.recipes.grammar import RecipeStep

SEMI_STRUCTURED_GROUP = 4
SEMI_STRUCTURED_KEEP = 2
PRUNING_SEED = 0


def prunable_weights(module: torch.nn.Module) -> list[tuple[torch.nn.Module, str]]:
    """(module, parameter name) of every conv, linear and attention projection weight."""
    from torch import nn

    found: list[tuple[nn.Module, str]] = []
    for child in module.modules():
        if isinstance(child, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            found.append((child, "weight"))
        elif isinstance(child, nn.MultiheadAttention) and child.in_proj_weight is not None:
            found.append((child, "in_proj_weight"))  # its out_proj is an nn.Linear, found above
    return found


def compounding_ratios(target: float, rounds: int) -> list[float]:
    """The cumulative ratio after each of `rounds` rounds that each remove the same share of what is
    left, ending at `target`: 0.5 in 5 rounds -> 0.129, 0.242, 0.340, 0.426, 0.5."""
    return [1.0 - (1.0 - target) ** (number / rounds) for number in range(1, rounds + 1)]


def apply_unstructured_masks(module: torch.nn.Module, sparsity: float, per_layer: bool) -> int:
    """Mask the smallest-magnitude weights (globally or per layer) to `sparsity` of the weights not
    masked yet (torch's pruning containers count a second call from what the first left); returns
    the number of masked tensors."""
    from torch.nn.utils import prune

    weights = prunable_weights(module)
    if not weights:
        raise SpeedproofError("unstructured: the model has no conv, linear or attention weights to prune")
    if per_layer:
        for child, name in weights:
            prune.l1_unstructured(child, name, amount=sparsity)
    else:
        prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=sparsity)
    return len(weights)


def semi_structured_mask(weight: torch.Tensor, share: float = 1.0) -> torch.Tensor | None:
    """Keep the 2 largest of every 4 consecutive input weights; None when the input width (per
    group, for convs) is not a multiple of 4. With `share` < 1 (a round of iterative 2:4 pruning),
    only that share of the weights 2:4 would remove is removed, the smallest of them first."""
    import torch

    if weight.dim() < 2 or weight.shape[1] % SEMI_STRUCTURED_GROUP:
        return None
    # inputs last: (out, kh, kw, in) for convs, (out, in) for linears
    moved = weight.detach().abs().movedim(1, -1)
    groups = moved.reshape(-1, SEMI_STRUCTURED_GROUP)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, groups.topk(SEMI_STRUCTURED_KEEP, dim=1).indices, True)
    if share < 1.0:
        candidates = groups[~keep]  # what 2:4 removes, in the layer's order
        removed = int(round(share * candidates.numel()))
        spared = torch.ones_like(candidates, dtype=torch.bool)
        if removed:
            spared[candidates.argsort(stable=True)[:removed]] = False
        keep[~keep] = spared
    return keep.reshape(moved.shape).movedim(-1, 1).to(weight.dtype)


def apply_semi_structured_masks(module: torch.nn.Module, share: float = 1.0) -> tuple[int, int]:
    """2:4 masks (or, with `share` < 1, that share of them: see semi_structured_mask) on every
    conv/linear whose shape allows it; returns (masked, skipped) counts."""
    from torch.nn.utils import prune

    masked = skipped = 0
    for child, name in prunable_weights(module):
        mask = semi_structured_mask(getattr(child, name), share)
        if mask is None:
            skipped += 1
            continue
        prune.custom_from_mask(child, name, mask)
        masked += 1
    if not masked:
        raise SpeedproofError(
            "semi-structured: no conv/linear layer has an input width that is a multiple of 4; 2:4 sparsity "
            "cannot be applied"
        )
    return masked, skipped


def make_pruning_permanent(module: torch.nn.Module) -> None:
    """Fold every pruning mask into its weight so no mask or hook reaches the export."""
    from torch.nn.utils import prune

    for child in module.modules():
        for hook in list(child._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(child, hook._tensor_name)


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
) -> StructuredResult:
    """Remove channels, neurons and whole attention heads in place; the classifier's outputs and
    embedding widths are kept, so outputs keep their shapes. In `rounds` rounds the ratio grows
    as `compounding_ratios` (of the original widths), `after_round(number)` running after each."""
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
    ignored: list[nn.Module] = find_classifier_layers(module, example_inputs)
    # embedding widths are the residual stream of a transformer: pruning them is not channel pruning
    ignored += [child for child in module.modules() if isinstance(child, nn.Embedding)]
    attention = attention_modules(module)
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
                global_pruning=global_pruning,
                round_to=round_to if round_to > 1 else None,
                ignored_layers=ignored,
                num_heads=num_heads,
                prune_num_heads=bool(attention),
                prune_head_dims=False,
                head_pruning_ratio=ratio if attention else 0.0,
                iterative_steps=rounds,
                iterative_pruning_ratio_scheduler=schedule,
            )
    except Exception as error:
        raise SpeedproofError(
            f"structured: torch-pruning cannot prune {type(module).__name__}: {type(error).__name__}: {error}"
        ) from error
    if attention and rounds > 1:
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


def _parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def _zero_share(module: torch.nn.Module) -> float:
    """The share of zeros among the prunable weights, masks applied."""
    weights = [getattr(child, name) for child, name in prunable_weights(module)]
    total = sum(weight.numel() for weight in weights)
    zeros = sum(int((weight == 0).sum()) for weight in weights)
    return zeros / total if total else 0.0


def _unstructured(model: TorchModel, step: RecipeStep, recover: Recover) -> dict[str, Any]:
    assert step.value is not None
    per_layer = step.option("scope") == "layer"
    rounds = int(step.option("steps"))
    masked = 0
    share = compounding_ratios(step.value, rounds)[0]  # of what is left, each round
    for _ in range(rounds):
        masked = apply_unstructured_masks(model.module, share, per_layer=per_layer)
        recover({"sparsity": round(_zero_share(model.module), 4)})
    return {"masked_tensors": masked}


def _structured(model: TorchModel, step: RecipeStep, recover: Recover) -> dict[str, Any]:
    assert step.value is not None
    params_before = _parameter_count(model.module)

    def after_round(number: int) -> None:
        recover({"params_kept": round(_parameter_count(model.module) / params_before, 4)})

    result = prune_structured(
        model.module,
        model.example_inputs,
        step.value,
        importance=str(step.option("importance")),
        round_to=int(step.option("round_to")),
        global_pruning=bool(step.option("global")),
        rounds=int(step.option("steps")),
        after_round=after_round,
    )
    return dict(vars(result))


def _semi_structured(model: TorchModel, step: RecipeStep, recover: Recover) -> dict[str, Any]:
    rounds = int(step.option("steps"))
    masked = skipped = 0
    for number in range(1, rounds + 1):
        masked, skipped = apply_semi_structured_masks(model.module, share=number / rounds)
        recover({"sparsity": round(_zero_share(model.module), 4)})
    return {"masked_layers": masked, "skipped_layers": skipped}


register(
    RecipeKind(
        "unstructured",
        "torch",
        "global L1 magnitude pruning of conv/linear/attention weights to sparsity S, made permanent",
        ValueSpec("sparsity S"),
        {
            "scope": OptionSpec("choice", "global", "rank weights across all layers or per layer", ("global", "layer")),
            "steps": STEPS,
            **RECOVERY_OPTIONS,
        },
        apply_torch=_unstructured,
    )
)
register(
    RecipeKind(
        "structured",
        "torch",
        "channel/neuron (and attention head) pruning with torch-pruning's dependency graph at ratio R",
        ValueSpec("ratio R"),
        {
            "importance": OptionSpec("choice", "l1", "how channels are ranked", ("l1", "l2", "random")),
            "round_to": OptionSpec("int", 1, "keep every pruned width a multiple of N", minimum=1),
            "global": OptionSpec("bool", False, "rank channels across layers instead of per layer"),
            "steps": STEPS,
            **RECOVERY_OPTIONS,
        },
        apply_torch=_structured,
    )
)
register(
    RecipeKind(
        "semi-structured",
        "torch",
        "2:4 sparsity: 2 of every 4 consecutive input weights zeroed by magnitude (dense ONNX)",
        options={"steps": STEPS, **RECOVERY_OPTIONS},
        apply_torch=_semi_structured,
    )
)
