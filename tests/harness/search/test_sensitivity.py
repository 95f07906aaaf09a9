"""Per-layer sensitivity on a tiny residual CNN: the groups torch-pruning narrows together, each
pruned alone, the ranking and the bar chart, the weighted ratios and the recipe that uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.cli import EXIT_OK, EXIT_USAGE, main
from harness.recipes.apply_torch import apply_torch_steps
from harness.recipes.grammar import parse_recipe
from harness.recipes.sensitivity import (
    LayerSensitivity,
    PrunableGroup,
    layer_sensitivities,
    prunable_groups,
    pruned_alone,
    sensitivity_ratios,
)
from tests.helpers import FAST_POLICY_FLAGS, TINY_CNN
from tests.tiny_models import tiny_cnn, tiny_cnn_self_labelled, tiny_cnn_without_data


def _widths(module: torch.nn.Module) -> dict[str, int]:
    return {
        name: child.weight.shape[0]
        for name, child in module.named_modules()
        if isinstance(child, torch.nn.Conv2d | torch.nn.Linear)
    }


def test_the_groups_are_what_structured_pruning_narrows_together() -> None:
    model = tiny_cnn()
    groups = {group.name: group for group in prunable_groups(model.module, model.example_inputs)}
    # the residual add couples the stem with conv2; the classifier (the output) is never a group
    coupled = next(group for group in groups.values() if "stem.0" in group.layers)
    assert set(coupled.layers) == {"stem.0", "conv2"} and coupled.channels == 24
    assert {"conv1", "expand", "head.2"} <= set(groups)
    assert all("classifier" not in group.layers for group in groups.values())


def test_pruning_a_group_alone_narrows_only_that_group() -> None:
    model = tiny_cnn()
    before = _widths(model.module)
    group = next(group for group in prunable_groups(model.module, model.example_inputs) if group.name == "expand")
    after = _widths(pruned_alone(model, group, 0.5))
    assert after["expand"] == 20
    assert {name: width for name, width in after.items() if name != "expand"} == {
        name: width for name, width in before.items() if name != "expand"
    }
    assert _widths(model.module) == before  # the source module is left as it was


def test_each_groups_drop_is_the_accuracy_it_costs_alone() -> None:
    model = tiny_cnn()
    messages: list[str] = []
    baseline, found = layer_sensitivities(model, 0.5, progress=messages.append)
    assert len(found) == len(prunable_groups(model.module, model.example_inputs)) == len(messages)
    for item in found:
        assert item.drop == pytest.approx(baseline - item.accuracy)
        assert 0 < item.params_kept < 1


def _item(name: str, drop: float, channels: int = 10) -> LayerSensitivity:
    return LayerSensitivity(PrunableGroup(name, (name,), channels), 0.9 - drop, drop, 0.8)


def test_weighted_ratios_prune_less_where_the_drop_is_larger_and_average_to_the_ratio() -> None:
    ratios = sensitivity_ratios([_item("a", 0.02), _item("b", 0.04), _item("c", 0.08)], 0.3)
    assert ratios["a"] > ratios["b"] > ratios["c"]
    assert sum(ratios.values()) / 3 == pytest.approx(0.3, abs=1e-3)
    # drops under the floor count as the floor: equal ratios
    assert set(sensitivity_ratios([_item("a", 0.0), _item("b", -0.01)], 0.4).values()) == {0.4}
    # capped at twice the ratio (and 0.9)
    capped = sensitivity_ratios([_item("a", 0.01), _item("b", 0.5), _item("c", 0.5)], 0.3)
    assert capped["a"] == 0.6
    assert sensitivity_ratios([], 0.5) == {}


def test_a_structured_recipe_with_sensitivity_ratios_prunes_each_group_at_its_own() -> None:
    model = tiny_cnn_self_labelled()  # 100% at baseline: every group's drop is its own
    recipe = parse_recipe("structured:0.5:layer_ratios=sensitivity")
    pruned, notes = apply_torch_steps(model, recipe.torch_steps())
    ratios = notes[0]["layer_ratios"]
    assert set(ratios) == {group.name for group in prunable_groups(model.module, model.example_inputs)}
    widths, before = _widths(pruned.module), _widths(model.module)
    for name, entry in ratios.items():
        assert abs(widths[name] - before[name] * (1 - entry["ratio"])) < 1  # torch-pruning rounds down
    assert len({entry["ratio"] for entry in ratios.values()}) > 1


def test_sensitivity_ratios_and_global_ranking_are_refused_together() -> None:
    from targets.errors import SpeedproofError

    with pytest.raises(SpeedproofError, match="layer_ratios=sensitivity sets a ratio per layer"):
        apply_torch_steps(tiny_cnn(), parse_recipe("structured:0.5:layer_ratios=sensitivity:global=true").torch_steps())


def test_the_sensitivity_command_ranks_the_groups_and_times_each(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["sensitivity", TINY_CNN, "--speed", "--threads", "1", "--out", str(tmp_path), *FAST_POLICY_FLAGS])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "sensitivity of tiny_cnn to structured:0.5" in out and "weighted ratio" in out
    (record_path,) = tmp_path.glob("*.json")
    import json

    record = json.loads(record_path.read_text())
    layers = record["sensitivity"]["layers"]
    drops = [layer["drop"] for layer in layers]
    assert drops == sorted(drops, reverse=True) and [layer["rank"] for layer in layers] == list(
        range(1, len(layers) + 1)
    )
    assert len(record["cells"]) == len(layers) + 1 and record["cells"][0]["reference"]
    assert all(layer["speedup"]["ci_low"] <= layer["speedup"]["ci_high"] for layer in layers)
    assert record_path.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--recipe", "unstructured:0.5"], "sensitivity prunes one layer group at a time with a structured recipe"),
        (["--recipe", "structured:0.5:finetune=2"], "no recovery, steps or chains"),
    ],
)
def test_a_sensitivity_that_cannot_run_says_why(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["sensitivity", TINY_CNN, *argv, "--out", str(tmp_path)]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_source_without_labelled_data_cannot_rank_its_layers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert tiny_cnn_without_data().eval_data is None
    code = main(["sensitivity", "tests.tiny_models:tiny_cnn_without_data", "--out", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "labelled data, and this source provides none" in capsys.readouterr().err
