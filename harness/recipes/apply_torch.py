"""Apply the torch-level steps of a recipe to a copy of the baseline torch model, with optional
recovery fine-tuning (`finetune=E`), and say what each step did."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from harness.models.data import TorchModel
from harness.models.training import train_classifier
from harness.recipes.grammar import RecipeStep
from harness.recipes.pruning import make_pruning_permanent
from targets.errors import SpeedproofError

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
            "(a TorchModel with train_data does; see harness.models.data)"
        )
    assert step.kind.apply_torch is not None, f"not a torch-level step: {step.name}"
    note: dict[str, Any] = {"step": step.name, **step.kind.apply_torch(model, step)}
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
