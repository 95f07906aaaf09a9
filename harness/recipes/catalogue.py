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
    from harness.recipes.grammar import RecipeStep

Level = Literal["none", "torch", "onnx", "any"]
OptionValue = str | int | float | bool
BASELINE = "baseline"
IDENTITY = "identity"


class OnnxStepContext(Protocol):
    """What an ONNX-level step may ask of the build it is part of."""

    def calibration_feeds(self, samples: int) -> list[dict[str, np.ndarray]]: ...


# a torch-level step transforms the module in place and returns what it did (for the record)
TorchStep = Callable[["TorchModel", "RecipeStep"], dict[str, Any]]
# an ONNX-level step writes `destination` from `source`
OnnxStep = Callable[["RecipeStep", Path, Path, OnnxStepContext], None]


@dataclass(frozen=True)
class OptionSpec:
    kind: Literal["int", "bool", "choice"]
    default: OptionValue
    help: str
    choices: tuple[str, ...] = ()
    minimum: int = 0


@dataclass(frozen=True)
class ValueSpec:
    """The recipe's main number: a fraction with an open or closed upper bound."""

    meaning: str
    upper_inclusive: bool = False

    def describe(self) -> str:
        return f"a number in (0, 1{']' if self.upper_inclusive else ')'}"


FINETUNE = OptionSpec(
    "int", 0, "epochs of recovery training after the transformation (sources with training data only)"
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


RECIPE_KINDS: dict[str, RecipeKind] = {}


def register(kind: RecipeKind) -> RecipeKind:
    """Add a recipe kind to the catalogue (once; the level says which apply function it needs)."""
    if kind.name in RECIPE_KINDS:
        raise ValueError(f"recipe kind {kind.name!r} is registered twice")
    if kind.level == "torch" and kind.apply_torch is None or kind.level == "onnx" and kind.apply_onnx is None:
        raise ValueError(f"recipe kind {kind.name!r} of level {kind.level} has no apply function")
    RECIPE_KINDS[kind.name] = kind
    return kind
