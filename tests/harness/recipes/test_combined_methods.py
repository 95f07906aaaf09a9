"""The methods practitioners combine with pruning, on tiny models: iterative pruning (steps=N),
distillation as the recovery, layer dropping; their options' grammar."""

import copy

import pytest
import torch
from torch import nn

from harness.models.training import Distillation
from harness.recipes.apply_torch import apply_torch_steps
from harness.recipes.channel_pruning import compounding_ratios
from harness.recipes.grammar import parse_recipe
from harness.recipes.layer_dropping import drop_layers, kept_indices
from harness.recipes.pruning import prunable_weights
from harness.reports.table import step_round_notes
from targets.errors import SpeedproofError
from tests.tiny_models import tiny_cnn, tiny_cnn_without_data, tiny_encoder, tiny_torch_transformer


def _transform(recipe: str, source=None):
    source = source or tiny_cnn()
    return source, apply_torch_steps(source, parse_recipe(recipe).torch_steps())


def _zero_share(module) -> float:
    weights = [getattr(layer, name).detach() for layer, name in prunable_weights(module)]
    return 1 - sum(int(torch.count_nonzero(w)) for w in weights) / sum(w.numel() for w in weights)


def _widths(module):
    return [
        layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
        for layer in module.modules()
        if isinstance(layer, nn.Conv2d | nn.Linear)
    ]


def test_rounds_compound_to_the_target():
    ratios = compounding_ratios(0.5, 5)
    assert ratios[-1] == pytest.approx(0.5) and ratios == sorted(ratios)
    # each round removes the same share of what the one before left
    left = [1.0, *(1 - ratio for ratio in ratios)]
    shares = [1 - after / before for before, after in zip(left, left[1:], strict=False)]
    assert shares == pytest.approx([shares[0]] * 5) and shares[0] == pytest.approx(1 - 0.5**0.2)


def test_iterative_unstructured_reaches_the_sparsity_and_notes_each_round():
    _, (pruned, notes) = _transform("unstructured:0.8:steps=3:finetune=1")
    assert abs(_zero_share(pruned.module) - 0.8) <= 0.01
    rounds = notes[0]["rounds"]
    assert [note["round"] for note in rounds] == [1, 2, 3]
    sparsities = [note["sparsity"] for note in rounds]
    assert sparsities == sorted(sparsities) and sparsities[0] == pytest.approx(1 - 0.2 ** (1 / 3), abs=0.01)
    assert all(0.0 <= note["accuracy"] <= 1.0 and "finetune_final_loss" in note for note in rounds)
    assert notes[0]["accuracy"] == rounds[-1]["accuracy"] and notes[0]["finetune_epochs"] == 1


@pytest.mark.parametrize("source", [tiny_cnn, tiny_encoder], ids=["cnn", "encoder-heads"])
def test_iterative_structured_ends_where_one_shot_pruning_does(source):
    _, (one_shot, shot_notes) = _transform("structured:0.5", source())
    _, (iterative, notes) = _transform("structured:0.5:steps=3", source())
    assert _widths(iterative.module) == _widths(one_shot.module)
    assert notes[0]["heads_after"] == shot_notes[0]["heads_after"]
    kept = [note["params_kept"] for note in notes[0]["rounds"]]
    assert kept == sorted(kept, reverse=True) and len(kept) == 3 and kept[0] < 1.0


def test_iterative_two_four_ends_as_exact_two_four():
    _, (pruned, notes) = _transform("semi-structured:steps=2")
    _, (one_shot, _) = _transform("semi-structured")
    first, last = notes[0]["rounds"]
    assert first["sparsity"] < last["sparsity"] == pytest.approx(_zero_share(one_shot.module), abs=0.001)
    for layer, name in prunable_weights(pruned.module):
        weight = getattr(layer, name).detach().movedim(1, -1)
        if weight.shape[-1] % 4 == 0:
            assert int((weight.reshape(-1, 4) != 0).sum(dim=1).max()) <= 2


def test_distillation_loss_is_cross_entropy_at_alpha_0_and_zero_soft_loss_for_the_teachers_twin():
    teacher = nn.Linear(4, 3)
    inputs = torch.randn(8, 4)
    with torch.no_grad():
        scores = teacher(inputs)
    hard = nn.functional.cross_entropy(scores, torch.zeros(8, dtype=torch.long))
    assert float(Distillation(teacher, 4.0, 0.0).loss(scores, inputs, hard)) == pytest.approx(float(hard))
    assert float(Distillation(teacher, 4.0, 1.0).loss(scores, inputs, hard)) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(8, 3)
    assert float(Distillation(teacher, 4.0, 1.0).loss(other, inputs, hard)) > 0.01


def test_distilled_recovery_leaves_the_teacher_untouched_and_says_so():
    source = tiny_cnn()
    before = copy.deepcopy(source.module.state_dict())
    _, (_, notes) = _transform("structured:0.5:finetune=1:distill=true:temperature=2:alpha=0.5", source)
    assert notes[0]["distilled"] == {"temperature": 2.0, "alpha": 0.5}
    assert all(torch.equal(before[key], value) for key, value in source.module.state_dict().items())
    assert not source.module.training


@pytest.mark.parametrize(
    ("recipe", "source", "message"),
    [
        ("structured:0.5:distill=true", tiny_cnn, "distill=true distils during fine-tuning; add finetune=E"),
        ("structured:0.5:finetune=1:distill=true", tiny_cnn_without_data, "distill=true needs training data"),
    ],
)
def test_distillation_without_what_it_needs_is_a_clear_error(recipe, source, message):
    with pytest.raises(SpeedproofError, match=message):
        _transform(recipe, source())


def test_ends_keep_the_first_and_last_layers():
    assert kept_indices(12, 6, "ends") == [0, 1, 2, 9, 10, 11]
    assert kept_indices(4, 2, "ends") == [0, 3]
    assert kept_indices(4, 1, "ends") == [0, 1, 3]
    assert kept_indices(4, 2, "first") == [0, 1] and kept_indices(4, 2, "last") == [2, 3]


def test_drop_layers_on_the_zoo_encoders_stack_keeps_outputs_and_recovers():
    source, (dropped, notes) = _transform("drop-layers:1:keep=first", tiny_encoder())
    assert len(dropped.module.layers) == 1 and dropped.module.layers[0] is not source.module.layers[0]
    assert notes[0]["stack"] == "layers" and notes[0]["kept_layers"] == [0] and notes[0]["layers_before"] == 2
    tokens = source.example_inputs[0]
    assert dropped.module(tokens).shape == source.module(tokens).shape
    assert len(source.module.layers) == 2  # the baseline keeps its layers
    kept, original = dropped.module.layers[0], source.module.layers[0]
    torch.testing.assert_close(kept.intermediate.weight, original.intermediate.weight)


def test_drop_layers_on_torchs_transformer_encoder_updates_its_depth():
    source, (dropped, notes) = _transform("drop-layers:1", tiny_torch_transformer())
    assert notes[0]["stack"] == "encoder.layers"
    assert len(dropped.module.encoder.layers) == dropped.module.encoder.num_layers == 1
    example = source.example_inputs[0]
    assert dropped.module(example).shape == source.module(example).shape


def test_drop_layers_finds_a_hugging_face_style_encoder_layer_list():
    class Config:
        num_hidden_layers = 6

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.ModuleList(nn.Linear(8, 8) for _ in range(6))

    class Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = Config()
            self.encoder = Encoder()

    model = Bert()
    notes = drop_layers(model, 4, "ends")
    assert notes["stack"] == "encoder.layer" and notes["kept_layers"] == [0, 5]
    assert isinstance(model.encoder.layer, nn.ModuleList) and len(model.encoder.layer) == 2
    assert model.config.num_hidden_layers == 2


def test_drop_layers_says_what_it_looked_for_and_how_many_may_go():
    with pytest.raises(SpeedproofError, match=r"TinyResidualCNN has no stack of repeated layers.*encoder\.layer"):
        _transform("drop-layers:1", tiny_cnn())
    with pytest.raises(SpeedproofError, match="layers has 2 layers; at most 1 can be dropped"):
        _transform("drop-layers:2", tiny_encoder())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("drop-layers:1.5", "must be a whole number, at least 1"),
        ("drop-layers:0", "must be a whole number, at least 1"),
        ("drop-layers", "needs its layer count K"),
        ("structured:0.5:finetune=2:distill=true:temperature=warm", "temperature must be a number"),
        ("structured:0.5:finetune=2:distill=true:alpha=2", "alpha must be at least 0 and at most 1"),
        ("structured:0.5:steps=0", "steps must be at least 1"),
        ("drop-layers:1:keep=middle", "keep must be one of ends, first, last"),
    ],
)
def test_the_new_options_are_checked_with_what_would_be_valid(text, message):
    with pytest.raises(SpeedproofError, match=message):
        parse_recipe(text)


def test_the_variants_notes_show_each_rounds_accuracy():
    variant = {
        "recipe": "structured:0.5:steps=2:finetune=1",
        "steps": [
            {
                "step": "structured",
                "rounds": [
                    {"round": 1, "params_kept": 0.61, "accuracy": 0.945},
                    {"round": 2, "params_kept": 0.26, "accuracy": 0.9},
                ],
            }
        ],
    }
    assert step_round_notes(variant) == [
        "rounds structured:0.5:steps=2:finetune=1 (structured): 1: params 61% acc 94.5% | 2: params 26% acc 90.0%"
    ]
    assert step_round_notes({"recipe": "identity", "steps": []}) == []
