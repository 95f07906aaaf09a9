"""Recipe strings: grammar, validation messages, chains, lists."""

import pytest

from harness.recipes.grammar import check_recipes_apply, describe_recipes, parse_recipe, parse_recipe_list
from targets.errors import SpeedproofError


def test_value_and_options_are_parsed_and_typed():
    recipe = parse_recipe("structured:0.5:round_to=8:importance=l2:global=true")
    (step,) = recipe.steps
    assert (step.name, step.value) == ("structured", 0.5)
    assert step.option("round_to") == 8 and step.option("importance") == "l2" and step.option("global") is True
    assert step.option("finetune") == 0  # default


def test_variant_name_is_the_recipe_exactly_as_written():
    assert parse_recipe("structured:0.50:round_to=8").text == "structured:0.50:round_to=8"


def test_chain_is_applied_left_to_right_with_torch_steps_first():
    recipe = parse_recipe("structured:0.5+unstructured:0.5+int8-static")
    assert [step.name for step in recipe.steps] == ["structured", "unstructured", "int8-static"]
    assert [step.name for step in recipe.torch_steps()] == ["structured", "unstructured"]
    assert [step.name for step in recipe.onnx_steps()] == ["int8-static"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("structurd:0.5", r'unknown recipe .*did you mean "structured".*valid: baseline'),
        ("structured", r"needs its ratio R, e.g. structured:0.5"),
        ("structured:1.5", r"must be a number in \(0, 1\), got '1.5'"),
        ("unstructured:0", r"must be a number in \(0, 1\)"),
        ("lowrank:abc", r"must be a number in \(0, 1\]"),
        ("fp16:0.5", r"fp16 takes no value"),
        ("structured:0.5:round=8", r'no option \'round\' \(did you mean "round_to"\?\); valid: alpha, distill'),
        ("structured:0.5:round_to=0", r"round_to must be at least 1"),
        ("structured:0.5:round_to=x", r"round_to must be an integer"),
        ("structured:0.5:global=maybe", r"global must be true or false"),
        ("structured:0.5:importance=l3", r"importance must be one of l1, l2, random"),
        ("unstructured:0.5:scope=layer:scope=global", r"option 'scope' given twice"),
        ("int8-static+structured:0.5", r"torch-level structured cannot follow an ONNX-level step"),
        ("identity+fp16", r"identity cannot be part of a chain"),
        ("int8-dynamic:finetune=1", r"int8-dynamic has no option 'finetune'"),
    ],
)
def test_bad_recipes_say_what_is_wrong_and_what_is_valid(text, message):
    with pytest.raises(SpeedproofError, match=message):
        parse_recipe(text)


def test_list_always_starts_with_the_baseline_and_refuses_duplicates():
    recipes = parse_recipe_list(["unstructured:0.9,structured:0.5", "fp16"])
    assert [recipe.text for recipe in recipes] == ["baseline", "unstructured:0.9", "structured:0.5", "fp16"]
    assert [recipe.text for recipe in parse_recipe_list(["fp16,baseline"])] == ["baseline", "fp16"]
    with pytest.raises(SpeedproofError, match="listed twice"):
        parse_recipe_list(["fp16,fp16"])


def test_torch_recipes_on_an_onnx_file_name_the_recipes_that_apply():
    recipes = parse_recipe_list(["int8-dynamic,structured:0.5"])
    check_recipes_apply(recipes, source_is_torch=True, source_name="m.onnx")
    with pytest.raises(SpeedproofError, match=r"m.onnx is an ONNX file; recipes that apply .*fp16.*int8-static"):
        check_recipes_apply(recipes, source_is_torch=False, source_name="m.onnx")


def test_every_recipe_is_described_for_help():
    text = describe_recipes()
    for name in ("unstructured:S", "structured:R", "semi-structured", "lowrank:K", "int8-dynamic", "int8-static"):
        assert name in text
