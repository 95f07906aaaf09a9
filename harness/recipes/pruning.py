"""Pruning of torch modules: unstructured magnitude pruning, 2:4 semi-structured sparsity (both as
masks that `make_pruning_permanent` folds into the weights, so fine-tuning can keep zeros at zero),
and structured channel / attention-head pruning (`channel_pruning`; with `layer_ratios=sensitivity`,
per-layer ratios weighted by what each layer costs alone: `sensitivity`). Registers the
`unstructured`, `structured` and `semi-structured` recipes.

Each can reach its target in rounds (`steps=N`, iterative pruning): every round removes the same
share of what is left, so the rounds compound to the target (sparsity S in N rounds: 1 - (1 - S)^(1/N)
of the remaining weights each), and the recovery (fine-tuning) runs after each round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.recipes.catalogue import RECOVERY_OPTIONS, STEPS, OptionSpec, RecipeKind, Recover, ValueSpec, register
from harness.recipes.channel_pruning import compounding_ratios, prune_structured
from harness.recipes.sensitivity import layer_sensitivities, sensitivity_ratios
from targets.errors import SpeedproofError

if TYPE_CHECKING:
    import torch

    from harness.models.data import TorchModel
    from harness.recipes.catalogue import RecipeStep

SEMI_STRUCTURED_GROUP = 4
SEMI_STRUCTURED_KEEP = 2


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

    importance, round_to = str(step.option("importance")), int(step.option("round_to"))
    layer_ratios = None
    note: dict[str, Any] = {}
    if step.option("layer_ratios") == "sensitivity":
        if step.option("global"):
            raise SpeedproofError(
                "structured: layer_ratios=sensitivity sets a ratio per layer, global=true ranks channels across "
                "layers; give one"
            )
        _, sensitivities = layer_sensitivities(model, step.value, importance, round_to)
        layer_ratios = sensitivity_ratios(sensitivities, step.value)
        note["layer_ratios"] = {
            item.group.name: {"drop_alone": round(item.drop, 4), "ratio": layer_ratios[item.group.name]}
            for item in sensitivities
        }
    result = prune_structured(
        model.module,
        model.example_inputs,
        step.value,
        importance=importance,
        round_to=round_to,
        global_pruning=bool(step.option("global")),
        rounds=int(step.option("steps")),
        after_round=after_round,
        layer_ratios=layer_ratios,
        heads=bool(step.option("heads")),
    )
    return {**vars(result), **note}


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
            "heads": OptionSpec(
                "bool",
                True,
                "remove whole attention heads too, at the ratio (false: channels and MLP neurons only; on a GQA "
                "decoder a key/value head goes with its query heads)",
            ),
            "layer_ratios": OptionSpec(
                "choice",
                "uniform",
                "uniform: every layer at R; sensitivity: prune each layer alone first (accuracy on the source's "
                "labelled data) and prune less where the drop is larger, about R of the channels in all",
                ("uniform", "sensitivity"),
            ),
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
