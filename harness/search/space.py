"""The search space of `speedproof search`: families of recipes (one kind of compression, or a chain
such as structured+int8), each with the ranges its options are drawn from. A point of the space is
a recipe string exactly as `verify --recipes` takes it, so every trial can be pasted and re-run.

Parameters are named `family.option` so that each family keeps its own distributions. Each family
has a first point (its guides' default) that the search tries before the optimiser draws: with a
budget of a few dozen trials, every family is then seen at least once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from targets.errors import UsageError, did_you_mean


class Trial(Protocol):
    """The part of optuna's trial that a family draws from."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class SpaceFacts:
    """What the space depends on: the source (torch module or ONNX file, training data, a layer
    stack, matmuls) and the target (GPU or not)."""

    torch_source: bool
    trains: bool  # the source provides training data: finetune and distill are in the space
    stack_layers: int = 0  # layers of the source's encoder stack (drop-layers), 0 when none
    has_matmuls: bool = False  # MatMul/Gemm with constant weights (int4-weight)
    gpu: bool = False


Suggest = Callable[[Trial, SpaceFacts], str]


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    needs_torch: bool
    suggest: Suggest
    first: Mapping[str, Any]  # the parameters of its first point
    in_default: Callable[[SpaceFacts], bool]
    applies: Callable[[SpaceFacts], str | None] = lambda facts: None  # why it cannot apply, else None

    def first_point(self, facts: SpaceFacts) -> dict[str, Any]:
        """The first point's parameters, without recovery when the source cannot train."""
        return {
            f"{self.name}.{key}": value
            for key, value in self.first.items()
            if facts.trains or key not in ("finetune", "distill")
        }


STRUCTURED_RATIOS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
ROUND_TO = (1, 8, 16)
FINETUNE_EPOCHS = (0, 2, 5, 10)
UNSTRUCTURED_SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9)
RANK_FRACTIONS = (0.25, 0.375, 0.5, 0.625, 0.75)


def _recovery(trial: Trial, facts: SpaceFacts, family: str) -> str:
    """`:finetune=E[:distill=true]` when the source trains (and E > 0), else nothing."""
    if not facts.trains:
        return ""
    epochs = int(trial.suggest_categorical(f"{family}.finetune", FINETUNE_EPOCHS))
    if not epochs:
        return ""
    distill = bool(trial.suggest_categorical(f"{family}.distill", (False, True)))
    return f":finetune={epochs}" + (":distill=true" if distill else "")


def _structured_options(trial: Trial, facts: SpaceFacts, family: str) -> str:
    ratio = trial.suggest_categorical(f"{family}.ratio", STRUCTURED_RATIOS)
    text = f"structured:{ratio:g}"
    round_to = int(trial.suggest_categorical(f"{family}.round_to", ROUND_TO))
    if round_to > 1:
        text += f":round_to={round_to}"
    importance = trial.suggest_categorical(f"{family}.importance", ("l1", "l2"))
    if importance != "l1":
        text += f":importance={importance}"
    if trial.suggest_categorical(f"{family}.global", (False, True)):
        text += ":global=true"
    recovery = _recovery(trial, facts, family)
    if recovery:  # rounds pay only with recovery between them
        steps = int(trial.suggest_categorical(f"{family}.steps", (1, 3)))
        if steps > 1:
            text += f":steps={steps}"
    return text + recovery


def _int8_options(trial: Trial, family: str) -> str:
    mode = trial.suggest_categorical(f"{family}.int8", ("static", "dynamic"))
    text = f"int8-{mode}"
    if not trial.suggest_categorical(f"{family}.per_channel", (True, False)):
        text += ":per_channel=false"
    return text


def _structured(trial: Trial, facts: SpaceFacts) -> str:
    return _structured_options(trial, facts, "structured")


def _structured_int8(trial: Trial, facts: SpaceFacts) -> str:
    return _structured_options(trial, facts, "structured+int8") + "+" + _int8_options(trial, "structured+int8")


def _unstructured(trial: Trial, facts: SpaceFacts) -> str:
    sparsity = trial.suggest_categorical("unstructured.sparsity", UNSTRUCTURED_SPARSITIES)
    return f"unstructured:{sparsity:g}" + _recovery(trial, facts, "unstructured")


def _semi_structured(trial: Trial, facts: SpaceFacts) -> str:
    return "semi-structured" + _recovery(trial, facts, "semi-structured")


def _lowrank(trial: Trial, facts: SpaceFacts) -> str:
    fraction = trial.suggest_categorical("lowrank.rank", RANK_FRACTIONS)
    return f"lowrank:{fraction:g}" + _recovery(trial, facts, "lowrank")


def _drop_layers(trial: Trial, facts: SpaceFacts) -> str:
    dropped = int(trial.suggest_categorical("drop-layers.layers", tuple(range(1, facts.stack_layers))))
    text = f"drop-layers:{dropped}"
    keep = trial.suggest_categorical("drop-layers.keep", ("ends", "first", "last"))
    if keep != "ends":
        text += f":keep={keep}"
    return text + _recovery(trial, facts, "drop-layers")


def _int8(trial: Trial, facts: SpaceFacts) -> str:
    return _int8_options(trial, "int8")


def _int4(trial: Trial, facts: SpaceFacts) -> str:
    block = trial.suggest_categorical("int4.block_size", ("32", "64", "128"))
    level = trial.suggest_categorical("int4.accuracy_level", ("4", "0"))
    return (
        "int4-weight"
        + (f":block_size={block}" if block != "32" else "")
        + (f":accuracy_level={level}" if level != "4" else "")
    )


def _fp16(trial: Trial, facts: SpaceFacts) -> str:
    return "fp16"


def _needs_stack(facts: SpaceFacts) -> str | None:
    return None if facts.stack_layers > 1 else "the model has no stack of repeated encoder layers"


def _needs_matmuls(facts: SpaceFacts) -> str | None:
    return None if facts.has_matmuls else "the model has no MatMul or Gemm with constant weights"


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "structured",
            "channel/head pruning: ratio, round_to, importance, global, steps, finetune, distill",
            True,
            _structured,
            {
                "ratio": 0.5,
                "round_to": 8,
                "importance": "l1",
                "global": False,
                "finetune": 10,
                "distill": False,
                "steps": 1,
            },
            lambda facts: True,
        ),
        Family(
            "structured+int8",
            "structured pruning, then int8 quantization of the pruned model",
            True,
            _structured_int8,
            {
                "ratio": 0.5,
                "round_to": 8,
                "importance": "l1",
                "global": False,
                "finetune": 10,
                "distill": False,
                "steps": 1,
                "int8": "static",
                "per_channel": True,
            },
            lambda facts: not facts.gpu,
        ),
        Family(
            "int8",
            "onnxruntime int8 quantization: static (calibrated) or dynamic, per channel or per tensor",
            False,
            _int8,
            {"int8": "static", "per_channel": True},
            lambda facts: not facts.gpu,
        ),
        Family(
            "lowrank",
            "SVD factorisation of linear layers and 1x1 convs: rank fraction, finetune, distill",
            True,
            _lowrank,
            {"rank": 0.5, "finetune": 5, "distill": False},
            lambda facts: facts.has_matmuls,
        ),
        Family(
            "drop-layers",
            "depth pruning of a transformer's encoder stack: layers, keep, finetune, distill",
            True,
            _drop_layers,
            {"layers": 1, "keep": "ends", "finetune": 5, "distill": False},
            lambda facts: facts.stack_layers > 1,
            _needs_stack,
        ),
        Family(
            "int4",
            "4-bit weight-only quantization of matmuls: block_size, accuracy_level",
            False,
            _int4,
            {"block_size": "32", "accuracy_level": "4"},
            lambda facts: facts.has_matmuls and not facts.gpu,
            _needs_matmuls,
        ),
        Family(
            "unstructured",
            "magnitude pruning to a sparsity (smaller files; dense kernels rarely run faster)",
            True,
            _unstructured,
            {"sparsity": 0.7, "finetune": 5, "distill": False},
            lambda facts: False,
        ),
        Family(
            "semi-structured",
            "2:4 sparsity (sparse kernels only on GPUs with the torch backend)",
            True,
            _semi_structured,
            {"finetune": 5, "distill": False},
            lambda facts: False,
        ),
        Family("fp16", "float16 weights and compute", False, _fp16, {}, lambda facts: facts.gpu),
    )
}
FAMILY_PARAMETER = "family"


def space_families(text: str | None, facts: SpaceFacts) -> list[Family]:
    """The families of `--space A,B,...` (all must apply to the source), or the default space: the
    families that can pay on this target for this source."""
    if text is None:
        chosen = [
            family
            for family in FAMILIES.values()
            if family.in_default(facts) and (facts.torch_source or not family.needs_torch) and not family.applies(facts)
        ]
        if not chosen:
            raise UsageError("no compression family of the default space applies to this model; name them with --space")
        return chosen
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--space {text!r}: name at least one family, e.g. --space structured,int8")
    chosen = []
    for name in names:
        if name not in FAMILIES:
            raise UsageError(
                f"--space: unknown family {name!r}{did_you_mean(name, FAMILIES)}; valid: {', '.join(FAMILIES)}"
            )
        family = FAMILIES[name]
        if family.needs_torch and not facts.torch_source:
            raise UsageError(
                f"--space {name}: {name} transforms the torch module, and this source is an ONNX file; an ONNX file "
                f"can be searched with {', '.join(f.name for f in FAMILIES.values() if not f.needs_torch)}"
            )
        why_not = family.applies(facts)
        if why_not:
            raise UsageError(f"--space {name}: {why_not}")
        if family in chosen:
            raise UsageError(f"--space names {name} twice")
        chosen.append(family)
    return chosen


def suggest_recipe(trial: Trial, families: Sequence[Family], facts: SpaceFacts) -> str:
    """Draw one point: the family, then its options; returns the recipe string."""
    name = trial.suggest_categorical(FAMILY_PARAMETER, tuple(family.name for family in families))
    return FAMILIES[name].suggest(trial, facts)


def first_points(families: Sequence[Family], facts: SpaceFacts) -> list[dict[str, Any]]:
    """Each family's first point, as the parameters optuna's `enqueue_trial` takes."""
    return [{FAMILY_PARAMETER: family.name, **family.first_point(facts)} for family in families]


# each pruning family's strength: its parameter and choices from the gentlest to the strongest
STRENGTHS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "structured": ("ratio", STRUCTURED_RATIOS),
    "structured+int8": ("ratio", STRUCTURED_RATIOS),
    "unstructured": ("sparsity", UNSTRUCTURED_SPARSITIES),
    "lowrank": ("rank", tuple(reversed(RANK_FRACTIONS))),  # a smaller rank is stronger
}


def more_recovery(params: Mapping[str, Any], facts: SpaceFacts) -> dict[str, Any] | None:
    """The same point with the next longer fine-tuning (after a quality cut), or None when it has
    the longest already or the source cannot train."""
    family = str(params.get(FAMILY_PARAMETER))
    key = f"{family}.finetune"
    if not facts.trains or key not in params or params[key] not in FINETUNE_EPOCHS:
        return None
    position = FINETUNE_EPOCHS.index(params[key]) + 1
    if position >= len(FINETUNE_EPOCHS):
        return None
    longer = {**params, key: FINETUNE_EPOCHS[position]}
    longer.setdefault(f"{family}.distill", False)
    return longer


def neighbour(params: Mapping[str, Any], gentler: bool, facts: SpaceFacts) -> dict[str, Any] | None:
    """The same point one step gentler (after a quality cut) or stronger (after a point that held
    quality and ran faster): the seeds' search of the ratio toward the quality limit, as points the
    optimiser is given next. None for a family without a strength, or at the end of its range."""
    family = str(params.get(FAMILY_PARAMETER))
    if family == "drop-layers":
        name, choices = "layers", tuple(range(1, facts.stack_layers))
    elif family in STRENGTHS:
        name, choices = STRENGTHS[family]
    else:
        return None
    key = f"{family}.{name}"
    if params.get(key) not in choices:
        return None
    position = choices.index(params[key]) + (-1 if gentler else 1)
    if not 0 <= position < len(choices):
        return None
    return {**params, key: choices[position]}


def describe_families() -> str:
    return "\n".join(f"  {family.name}: {family.help}" for family in FAMILIES.values())
