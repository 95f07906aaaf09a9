"""The recipe catalogue: every recipe kind, with its value, its options and the function that
applies it, registered by the module of its step family (`controls`, `pruning`, `lowrank`,
`onnx_steps`). Importing `harness.recipes` registers them all; nothing here dispatches on names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np

    from harness.models.data import TorchModel

Level = Literal["none", "torch", "onnx", "any"]
OptionValue = str | int | float | bool
BASELINE = "baseline"
IDENTITY = "identity"


class OnnxStepContext(Protocol):
    """What an ONNX-level step may ask of the build it is part of."""

    def calibration_feeds(self, samples: int) -> list[dict[str, np.ndarray]]: ...


# what a torch-level step calls after each round of an iterative transformation, with what the
# round left (for the round's note): the recovery (fine-tuning, distilled or not)
Recover = Callable[[dict[str, Any]], None]
# a torch-level step transforms the module in place and returns what it did (for the record); a
# step that does not call `recover` is recovered once after it
TorchStep = Callable[["TorchModel", "RecipeStep", Recover], dict[str, Any]]
# an ONNX-level step writes `destination` from `source`, and may say what it did (for the record)
OnnxStep = Callable[["RecipeStep", Path, Path, OnnxStepContext], "dict[str, Any] | None"]


@dataclass(frozen=True)
class OptionSpec:
    kind: Literal["int", "float", "bool", "choice"]
    default: OptionValue
    help: str
    choices: tuple[str, ...] = ()
    minimum: float = 0
    maximum: float | None = None  # numbers only; None: no upper bound


@dataclass(frozen=True)
class ValueSpec:
    """The recipe's main number: a fraction with an open or closed upper bound, or (`whole`) a
    count of at least 1."""

    meaning: str
    upper_inclusive: bool = False
    whole: bool = False

    def describe(self) -> str:
        if self.whole:
            return "a whole number, at least 1"
        return f"a number in (0, 1{']' if self.upper_inclusive else ')'}"

    def accepts(self, number: float) -> bool:
        if self.whole:
            return number >= 1 and float(number).is_integer()
        return number > 0 and (number <= 1 if self.upper_inclusive else number < 1)


FINETUNE = OptionSpec(
    "int", 0, "epochs of recovery training after the transformation (sources with training data only)"
)
# knowledge distillation as the recovery: the baseline module teaches, on the training data
DISTILLATION_OPTIONS: Mapping[str, OptionSpec] = {
    "distill": OptionSpec(
        "bool",
        False,
        "fine-tune with the baseline as teacher: alpha * KL(teacher/T || student/T) * T^2 + (1 - alpha) * "
        "cross-entropy (needs finetune=E)",
    ),
    "temperature": OptionSpec("float", 4.0, "distillation temperature T", minimum=0.1, maximum=100.0),
    "alpha": OptionSpec("float", 0.7, "weight of the teacher's soft targets", minimum=0.0, maximum=1.0),
}
# the recovery options of a recipe that changes weights: fine-tuning, optionally distilled
RECOVERY_OPTIONS: Mapping[str, OptionSpec] = {"finetune": FINETUNE, **DISTILLATION_OPTIONS}
# iterative pruning: the ratio reached in N steps, with the recovery after each
STEPS = OptionSpec(
    "int",
    1,
    "reach the ratio in N pruning steps, each removing the same share of what is left (finetune=E after each)",
    minimum=1,
    maximum=50,
)


@dataclass(frozen=True)
class RecipeKind:
    name: str
    level: Level  # "any": works on torch and on ONNX sources (identity)
    help: str
    value: ValueSpec | None = None
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    apply_torch: TorchStep | None = field(default=None, compare=False)  # level "torch"
    apply_onnx: OnnxStep | None = field(default=None, compare=False)  # level "onnx"


@dataclass(frozen=True)
class RecipeStep:
    """One step of a parsed recipe: its kind, value and options (the grammar makes them)."""

    kind: RecipeKind
    value: float | None
    options: Mapping[str, OptionValue]

    @property
    def name(self) -> str:
        return self.kind.name

    def option(self, key: str) -> OptionValue:
        return self.options.get(key, self.kind.options[key].default)


RECIPE_KINDS: dict[str, RecipeKind] = {}


def register(kind: RecipeKind) -> RecipeKind:
    """Add a recipe kind to the catalogue (once; the level says which apply function it needs)."""
    if kind.name in RECIPE_KINDS:
        raise ValueError(f"recipe kind {kind.name!r} is registered twice")
    if kind.level == "torch" and kind.apply_torch is None or kind.level == "onnx" and kind.apply_onnx is None:
        raise ValueError(f"recipe kind {kind.name!r} of level {kind.level} has no apply function")
    RECIPE_KINDS[kind.name] = kind
    return kind
