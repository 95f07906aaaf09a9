"""Apply the torch-level steps of a recipe to a copy of the baseline torch model, with optional
recovery (`finetune=E` epochs, distilled from the baseline with `distill=true`), and say what each
step did. An iterative step (`steps=N`) recovers after each of its rounds, and its note lists the
rounds with the accuracy on the source's labelled data after each; every other step recovers once,
after it is done."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from harness.models.data import TorchModel
from harness.models.training import Distillation, torch_accuracy, train_classifier
from harness.recipes.catalogue import RecipeStep
from harness.recipes.pruning import make_pruning_permanent
from targets.errors import SpeedproofError

FINETUNE_LEARNING_RATE = 1e-3


def copy_torch_model(source: TorchModel) -> TorchModel:
    """A deep copy of the module, so variants never change the baseline or each other."""
    return replace(source, module=copy.deepcopy(source.module))


def apply_torch_steps(source: TorchModel, steps: tuple[RecipeStep, ...]) -> tuple[TorchModel, list[dict[str, Any]]]:
    """Transform a copy of `source` step by step; returns it and one note per step. `source`'s
    module, never changed, is the teacher of a distilled recovery."""
    model = copy_torch_model(source)
    notes = []
    for step in steps:
        notes.append(_apply_step(model, step, teacher=source.module))
    model.module.eval()
    return model, notes


class Recovery:
    """What a step runs after it transforms the model (an iterative one after each round): the
    fine-tuning the recipe asks for and, for a step of several rounds, the accuracy on the source's
    labelled data after it. Called as `recover(left)` with what the round left; keeps each round's
    note (a one-shot step's accuracy is the artifact's, measured by the variant builder)."""

    def __init__(self, model: TorchModel, step: RecipeStep, teacher: Any) -> None:
        options = step.kind.options
        self.model = model
        self.epochs = int(step.option("finetune")) if "finetune" in options else 0
        self.iterative = "steps" in options and int(step.option("steps")) > 1
        distill = bool(step.option("distill")) if "distill" in options else False
        if distill and not self.epochs:
            raise SpeedproofError(
                f"{step.name}: distill=true distils during fine-tuning; add finetune=E (epochs), e.g. "
                f"{step.name}:...:finetune=4:distill=true"
            )
        if self.epochs and model.train_data is None:
            what = "distill=true" if distill else f"finetune={self.epochs}"
            raise SpeedproofError(
                f"{step.name}: {what} needs training data, and this model source provides none "
                "(a TorchModel with train_data does; see harness.models.data)"
            )
        self.distillation = (
            Distillation(teacher, float(step.option("temperature")), float(step.option("alpha"))) if distill else None
        )
        self.rounds: list[dict[str, Any]] = []

    def __call__(self, left: dict[str, Any] | None = None) -> None:
        note: dict[str, Any] = {"round": len(self.rounds) + 1, **(left or {})}
        if self.epochs:
            assert self.model.train_data is not None
            # masks stay in place while training, so pruned weights remain zero
            note["finetune_final_loss"] = train_classifier(
                self.model.module,
                self.model.train_data,
                self.epochs,
                learning_rate=FINETUNE_LEARNING_RATE,
                distillation=self.distillation,
            )
        if self.iterative and self.model.eval_data is not None:
            note["accuracy"] = round(torch_accuracy(self.model.module, self.model.eval_data), 4)
        self.rounds.append(note)

    def summary(self) -> dict[str, Any]:
        """The step note's recovery part: epochs per round, distillation and, for an iterative
        step, its rounds' notes and the accuracy after the last."""
        summary: dict[str, Any] = {}
        if self.epochs:
            summary["finetune_epochs"] = self.epochs
            summary["finetune_final_loss"] = self.rounds[-1]["finetune_final_loss"]
        if self.distillation is not None:
            summary["distilled"] = {"temperature": self.distillation.temperature, "alpha": self.distillation.alpha}
        if self.iterative:
            summary["rounds"] = self.rounds
            if "accuracy" in self.rounds[-1]:
                summary["accuracy"] = self.rounds[-1]["accuracy"]
        return summary


def _apply_step(model: TorchModel, step: RecipeStep, teacher: Any) -> dict[str, Any]:
    assert step.kind.apply_torch is not None, f"not a torch-level step: {step.name}"
    recover = Recovery(model, step, teacher)
    note: dict[str, Any] = {"step": step.name, **step.kind.apply_torch(model, step, recover)}
    if not recover.rounds:  # a one-shot step: it leaves the recovery to be run after it
        recover()
    note.update(recover.summary())
    make_pruning_permanent(model.module)
    model.module.eval()
    return note
