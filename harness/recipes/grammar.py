"""Recipe strings: parse and validate `name[:value][:key=value...]`, chains joined with `+`,
lists joined with `,`, against the recipe kinds the catalogue holds.

A variant is named everywhere by its recipe string exactly as the user wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.recipes.catalogue import BASELINE, IDENTITY, RECIPE_KINDS, OptionValue, RecipeKind, RecipeStep
from targets.errors import UsageError, did_you_mean, unknown_choice

TRUE_WORDS = ("true", "yes", "1", "on")
FALSE_WORDS = ("false", "no", "0", "off")


@dataclass(frozen=True)
class Recipe:
    text: str  # exactly as the user wrote it: the variant's name
    steps: tuple[RecipeStep, ...]

    @property
    def is_baseline(self) -> bool:
        return self.steps[0].name == BASELINE

    @property
    def is_identity(self) -> bool:
        return self.steps[0].name == IDENTITY

    def torch_steps(self) -> tuple[RecipeStep, ...]:
        return tuple(step for step in self.steps if step.kind.level == "torch")

    def onnx_steps(self) -> tuple[RecipeStep, ...]:
        return tuple(step for step in self.steps if step.kind.level == "onnx")


def _parse_option(recipe: str, kind: RecipeKind, key: str, text: str) -> OptionValue:
    if key not in kind.options:
        valid = ", ".join(sorted(kind.options)) or "none"
        raise UsageError(
            f"recipe {recipe!r}: {kind.name} has no option {key!r}{did_you_mean(key, kind.options)}; valid: {valid}"
        )
    spec = kind.options[key]
    if spec.kind == "bool":
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise UsageError(f"recipe {recipe!r}: {key} must be true or false, got {text!r}")
    if spec.kind == "choice":
        if text not in spec.choices:
            raise UsageError(
                f"recipe {recipe!r}: {key} must be one of {', '.join(spec.choices)}, got {text!r}"
                f"{did_you_mean(text, spec.choices)}"
            )
        return text
    number: int | float
    try:
        number = int(text) if spec.kind == "int" else float(text)
    except ValueError:
        what = "an integer" if spec.kind == "int" else "a number"
        raise UsageError(f"recipe {recipe!r}: {key} must be {what}, got {text!r}") from None
    if not spec.minimum <= number <= (spec.maximum if spec.maximum is not None else float("inf")):
        upper = f" and at most {spec.maximum:g}" if spec.maximum is not None else ""
        raise UsageError(f"recipe {recipe!r}: {key} must be at least {spec.minimum:g}{upper}, got {text!r}")
    return number


def _parse_value(recipe: str, kind: RecipeKind, text: str) -> float:
    assert kind.value is not None
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not kind.value.accepts(number):
        raise UsageError(
            f"recipe {recipe!r}: the {kind.value.meaning} of {kind.name} must be {kind.value.describe()}, got {text!r}"
        )
    return number


def parse_step(recipe: str, text: str) -> RecipeStep:
    name, *parts = text.strip().split(":")
    if name not in RECIPE_KINDS:
        raise unknown_choice("recipe", name, RECIPE_KINDS)
    kind = RECIPE_KINDS[name]
    value: float | None = None
    if parts and "=" not in parts[0]:
        if kind.value is None:
            raise UsageError(f"recipe {recipe!r}: {name} takes no value, got {parts[0]!r}")
        value = _parse_value(recipe, kind, parts[0])
        parts = parts[1:]
    elif kind.value is not None:
        raise UsageError(
            f"recipe {recipe!r}: {name} needs its {kind.value.meaning}, e.g. {name}:0.5 ({kind.value.describe()})"
        )
    options: dict[str, OptionValue] = {}
    for part in parts:
        key, separator, option_text = part.partition("=")
        if not separator or not key:
            raise UsageError(f"recipe {recipe!r}: expected key=value after the value, got {part!r}")
        if key in options:
            raise UsageError(f"recipe {recipe!r}: option {key!r} given twice")
        options[key] = _parse_option(recipe, kind, key, option_text)
    return RecipeStep(kind, value, options)


def parse_recipe(text: str) -> Recipe:
    """Parse one recipe (possibly a `+` chain); errors name the recipe and what would be valid."""
    if not text.strip():
        raise UsageError("empty recipe; valid recipes: " + ", ".join(sorted(RECIPE_KINDS)))
    steps = tuple(parse_step(text, part) for part in text.split("+"))
    solo = [step.name for step in steps if step.name in (BASELINE, IDENTITY)]
    if solo and len(steps) > 1:
        raise UsageError(f"recipe {text!r}: {solo[0]} cannot be part of a chain")
    seen_onnx = False
    for step in steps:
        if step.kind.level == "onnx":
            seen_onnx = True
        elif step.kind.level == "torch" and seen_onnx:
            raise UsageError(
                f"recipe {text!r}: torch-level {step.name} cannot follow an ONNX-level step; put torch-level "
                "recipes (unstructured, structured, semi-structured, lowrank, drop-layers) first"
            )
    return Recipe(text.strip(), steps)


def parse_recipe_list(texts: Iterable[str]) -> list[Recipe]:
    """Parse `--recipes a,b` / repeated `--recipe`; the baseline comes first, always."""
    recipes: list[Recipe] = []
    seen: set[str] = set()
    for text in texts:
        items = text.split(",")
        if any(not item.strip() for item in items):
            raise UsageError(
                f"recipe list {text!r} has an empty item; separate recipes with single commas, e.g. "
                "structured:0.5,unstructured:0.9"
            )
        for item in items:
            recipe = parse_recipe(item)
            if recipe.text in seen:
                raise UsageError(f"recipe {recipe.text!r} is listed twice")
            seen.add(recipe.text)
            recipes.append(recipe)
    baseline = [recipe for recipe in recipes if recipe.is_baseline] or [parse_recipe(BASELINE)]
    return baseline + [recipe for recipe in recipes if not recipe.is_baseline]


def check_recipes_apply(
    recipes: Iterable[Recipe], source_is_torch: bool, source_name: str, source_is: str = "an ONNX file"
) -> None:
    """Torch-level recipes need a torch module; say which recipes apply to a source without one."""
    if source_is_torch:
        return
    for recipe in recipes:
        torch_steps = recipe.torch_steps()
        if torch_steps:
            applicable = sorted(name for name, kind in RECIPE_KINDS.items() if kind.level != "torch")
            raise UsageError(
                f"recipe {recipe.text!r}: {torch_steps[0].name} transforms a torch model, but {source_name} is "
                f"{source_is}; recipes that apply to it: {', '.join(applicable)}"
            )


def describe_recipes() -> str:
    """One line per recipe for --help."""
    lines = []
    for kind in RECIPE_KINDS.values():
        usage = kind.name + (":" + kind.value.meaning.split()[-1] if kind.value else "")
        options = ", ".join(
            f"{key}=" + (spec.kind if not spec.choices else "|".join(spec.choices))
            for key, spec in kind.options.items()
        )
        lines.append(f"{usage} [{kind.level}]: {kind.help}" + (f" (options: {options})" if options else ""))
    return "\n".join(lines)
