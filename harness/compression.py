"""Apply the torch-level steps of a recipe to a copy of the baseline torch model, with optional
recovery fine-tuning (`finetune=E`), and say what each step did."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from harness.errors import SpeedproofError
from harness.lowrank import factorize_low_rank
from harness.model_data import TorchModel
from harness.pruning import (
    apply_semi_structured_masks,
    apply_unstructured_masks,
    make_pruning_permanent,
    prune_structured,
)
from harness.recipes import RecipeStep
from harness.training import train_classifier

FINETUNE_LEARNING_RATE = 1e-3


def copy_torch_model(source: TorchModel) -> TorchModel:
    """A deep copy of the module, so variants never change the baseline or each other."""
    return replace(source, module=copy.deepcopy(source.module))


def apply_torch_steps(source: TorchModel, steps: tuple[RecipeStep, ...]) -> tuple[TorchModel, list[dict[str, Any]]]:
    """Transform a copy of `source` step by step; returns it and one note per step."""
    model = copy_torch_model(source)
    notes = []
    for step in steps:
        notes.append(_apply_step(model, step))
    model.module.eval()
    return model, notes


def _apply_step(model: TorchModel, step: RecipeStep) -> dict[str, Any]:
    module = model.module
    epochs = int(step.option("finetune"))
    if epochs and model.train_data is None:
        raise SpeedproofError(
            f"{step.name}: finetune={epochs} needs training data, and this model source provides none "
            "(a TorchModel with train_data does; see harness.model_data)"
        )
    note: dict[str, Any] = {"step": step.name}
    if step.name == "unstructured":
        assert step.value is not None
        note["masked_tensors"] = apply_unstructured_masks(module, step.value, per_layer=step.option("scope") == "layer")
    elif step.name == "semi-structured":
        note["masked_layers"], note["skipped_layers"] = apply_semi_structured_masks(module)
    elif step.name == "structured":
        assert step.value is not None
        result = prune_structured(
            module,
            model.example_inputs,
            step.value,
            importance=str(step.option("importance")),
            round_to=int(step.option("round_to")),
            global_pruning=bool(step.option("global")),
        )
        note.update(vars(result))
    elif step.name == "lowrank":
        assert step.value is not None
        note.update(vars(factorize_low_rank(module, step.value, int(step.option("min_features")))))
    else:
        raise AssertionError(f"not a torch-level step: {step.name}")
    if epochs:
        assert model.train_data is not None
        # masks stay in place while training, so pruned weights remain zero
        note["finetune_epochs"] = epochs
        note["finetune_final_loss"] = train_classifier(
            module, model.train_data, epochs, learning_rate=FINETUNE_LEARNING_RATE
        )
    make_pruning_permanent(module)
    module.eval()
    return note
