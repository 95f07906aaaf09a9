"""The recipe space of a decoder search: families of decoder recipes (weight-only int4 and int8 with their block
sizes and accuracy levels, dropped layers and pruned widths with or without recovery and with or without int4 after
them), how optuna draws a point of each, the first points tried, and the next step after an outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.errors import UsageError

FAMILY_PARAMETER = "family"
BLOCK_SIZES = ("32", "64", "128")
# MatMulNBits' compute types that x86 CPUs run: 1 fp32, 4 int8 (2 and 3, fp16 and bf16, fall back to fp32 here)
ACCURACY_LEVELS = ("4", "1")
WIDTH_RATIOS = (0.25, 0.5, 0.75)
RECOVERIES = ("none", "finetune=2", "finetune=2:distill=true")
THEN = ("none", "int4-weight")
FAMILY_HELP = {
    "int4": "int4-weight (the model builder's int4): block_size 32/64/128, accuracy_level 4 (int8 compute) or 1",
    "int8": "int8-weight: block_size 32/64/128, accuracy_level 4 or 1",
    "drop-layers": "drop-layers:K for K in 1..layers-1, recovered (finetune=2, distill) where the training text is "
    "known, int4 after it or not",
    "structured": "structured:R (MLP channels and head groups) for R in 0.25/0.5/0.75, heads or MLP alone, recovered "
    "where the training text is known, int4 after it or not",
}
FAMILIES = tuple(FAMILY_HELP)


@dataclass(frozen=True)
class DecoderSpace:
    """The families searched and what bounds them: the layers there are, whether recovery can train."""

    families: tuple[str, ...]
    layers: int
    trains: bool

    def recoveries(self) -> tuple[str, ...]:
        return RECOVERIES if self.trains else RECOVERIES[:1]


def decoder_families(text: str | None) -> tuple[str, ...]:
    """The families `--space A,B` names (every family by default), checked before anything is built."""
    names = tuple(FAMILIES) if text is None else tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FAMILIES]
    if unknown or not names:
        raise UsageError(
            f"--space {text!r}: the families of a decoder search are "
            + "; ".join(f"{name} ({what})" for name, what in FAMILY_HELP.items())
        )
    return names


def decoder_space(names: tuple[str, ...], layers: int, trains: bool) -> DecoderSpace:
    """The space of these families on a decoder with `layers` layers (one layer: nothing to drop)."""
    if layers < 2:
        names = tuple(name for name in names if name != "drop-layers")
        if not names:
            raise UsageError("--space drop-layers: the decoder has one layer; there is none to drop")
    return DecoderSpace(names, layers, trains)


def describe_decoder_families() -> str:
    return "\n".join(f"  {name}: {what}" for name, what in FAMILY_HELP.items())


def suggest_decoder_recipe(trial: Any, space: DecoderSpace) -> str:
    """Draw the trial's point and return its recipe text (the variant's name)."""
    family = trial.suggest_categorical(FAMILY_PARAMETER, list(space.families))
    if family in ("int4", "int8"):
        block = trial.suggest_categorical(f"{family}.block_size", list(BLOCK_SIZES))
        level = trial.suggest_categorical(f"{family}.accuracy_level", list(ACCURACY_LEVELS))
        return f"{family}-weight:block_size={block}:accuracy_level={level}"
    if family == "drop-layers":
        count = trial.suggest_int("drop-layers.count", 1, space.layers - 1)
        recipe = f"drop-layers:{count}"
    else:
        ratio = trial.suggest_categorical("structured.ratio", list(WIDTH_RATIOS))
        heads = trial.suggest_categorical("structured.heads", [True, False])
        recipe = f"structured:{ratio:g}" + ("" if heads else ":heads=false")
    recovery = trial.suggest_categorical(f"{family}.recovery", list(space.recoveries()))
    then = trial.suggest_categorical(f"{family}.then", list(THEN))
    return recipe + ("" if recovery == "none" else f":{recovery}") + ("" if then == "none" else f"+{then}")


def first_decoder_points(space: DecoderSpace) -> list[dict[str, Any]]:
    """Each family once at its plainest point, before the sampler draws."""
    points: dict[str, dict[str, Any]] = {
        "int4": {FAMILY_PARAMETER: "int4", "int4.block_size": "32", "int4.accuracy_level": "4"},
        "int8": {FAMILY_PARAMETER: "int8", "int8.block_size": "32", "int8.accuracy_level": "4"},
        "drop-layers": {
            FAMILY_PARAMETER: "drop-layers",
            "drop-layers.count": max(1, space.layers // 4),
            "drop-layers.recovery": "none",
            "drop-layers.then": "none",
        },
        "structured": {
            FAMILY_PARAMETER: "structured",
            "structured.ratio": 0.5,
            "structured.heads": True,
            "structured.recovery": "none",
            "structured.then": "none",
        },
    }
    return [points[name] for name in space.families]


def next_decoder_points(params: dict[str, Any], state: str, paid: bool, space: DecoderSpace) -> list[dict[str, Any]]:
    """Toward the perplexity limit: a structural point cut by quality is tried again with the next recovery (or,
    recovered fully, one step gentler); one that held quality and paid is tried one step stronger, and with int4
    after it."""
    family = params.get(FAMILY_PARAMETER)
    if family not in ("drop-layers", "structured"):
        return []
    points = []
    recoveries = space.recoveries()
    if state == "cut_by_quality":
        index = recoveries.index(params[f"{family}.recovery"])
        if index + 1 < len(recoveries):
            points.append({**params, f"{family}.recovery": recoveries[index + 1]})
        else:
            gentler = _step(params, family, -1, space)
            if gentler is not None:
                points.append(gentler)
    elif state == "timed" and paid:
        stronger = _step(params, family, 1, space)
        if stronger is not None:
            points.append(stronger)
        if params[f"{family}.then"] == "none":
            points.append({**params, f"{family}.then": "int4-weight"})
    return points


def _step(params: dict[str, Any], family: str, direction: int, space: DecoderSpace) -> dict[str, Any] | None:
    if family == "drop-layers":
        count = int(params["drop-layers.count"]) + direction
        return {**params, "drop-layers.count": count} if 1 <= count <= space.layers - 1 else None
    index = WIDTH_RATIOS.index(float(params["structured.ratio"])) + direction
    return {**params, "structured.ratio": WIDTH_RATIOS[index]} if 0 <= index < len(WIDTH_RATIOS) else None
