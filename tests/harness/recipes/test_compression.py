"""Torch-level recipes on tiny models: the properties each transformation promises."""

import numpy as np
import pytest
import torch

from harness.recipes.apply_torch import apply_torch_steps
from harness.recipes.channel_pruning import find_classifier_layers
from harness.recipes.grammar import parse_recipe
from harness.recipes.lowrank import factorize_low_rank
from harness.recipes.pruning import prunable_weights, semi_structured_mask
from targets.errors import SpeedproofError
from tests.tiny_models import NUM_CLASSES, tiny_cnn, tiny_cnn_without_data, tiny_encoder


def _transform(recipe: str, source=None):
    source = source or tiny_cnn()
    return source, apply_torch_steps(source, parse_recipe(recipe).torch_steps())


def _weights(module):
    return [getattr(layer, name).detach() for layer, name in prunable_weights(module)]


@pytest.mark.parametrize("recipe", ["unstructured:0.9", "unstructured:0.9:scope=layer"])
def test_unstructured_leaves_the_asked_share_of_nonzeros_and_no_masks(recipe):
    source, (pruned, notes) = _transform(recipe)
    weights = _weights(pruned.module)
    nonzero = sum(int(torch.count_nonzero(w)) for w in weights) / sum(w.numel() for w in weights)
    assert abs(nonzero - 0.10) <= 0.01
    # made permanent: plain parameters, no reparametrisation or hooks reach the export
    assert not any(name.endswith("_orig") for name, _ in pruned.module.named_parameters())
    assert not any(layer._forward_pre_hooks for layer in pruned.module.modules())
    assert notes[0]["masked_tensors"] == len(weights)
    # the baseline is untouched
    assert all(int(torch.count_nonzero(w)) == w.numel() for w in _weights(source.module))


def test_per_layer_scope_prunes_every_layer_to_the_same_sparsity():
    _, (pruned, _) = _transform("unstructured:0.5:scope=layer")
    for weight in _weights(pruned.module):
        assert abs(1 - int(torch.count_nonzero(weight)) / weight.numel() - 0.5) <= 0.5 / weight.numel() + 1e-9


def test_structured_removes_channels_and_keeps_output_shapes():
    source, (pruned, notes) = _transform("structured:0.5")
    example = source.example_inputs[0]
    assert pruned.module(example).shape == source.module(example).shape == (2, NUM_CLASSES)
    assert pruned.module.stem[0].out_channels == 12  # 24 * 0.5
    assert pruned.module.classifier.out_features == NUM_CLASSES  # the classifier's outputs are never pruned
    assert sum(p.numel() for p in pruned.module.parameters()) < sum(p.numel() for p in source.module.parameters())


def _pruned_widths(module):
    return [
        layer.out_channels if isinstance(layer, torch.nn.Conv2d) else layer.out_features
        for layer in module.modules()
        if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear) and layer is not module.classifier
    ]


def test_round_to_makes_every_pruned_width_a_multiple():
    _, (pruned, _) = _transform("structured:0.3:round_to=8")
    widths = _pruned_widths(pruned.module)
    assert widths and all(width % 8 == 0 for width in widths), widths
    _, (unrounded, _) = _transform("structured:0.3")
    assert any(width % 8 for width in _pruned_widths(unrounded.module))  # what round_to prevents


def test_structured_prunes_whole_attention_heads_consistently():
    source, (pruned, notes) = _transform("structured:0.5", tiny_encoder())
    assert notes[0]["heads_before"] == 8 and notes[0]["heads_after"] == 4
    for layer in pruned.module.layers:
        attention = layer.attention
        assert attention.num_heads == 2
        assert attention.query.out_features == attention.key.out_features == attention.value.out_features == 128
    assert pruned.module.token_embedding.embedding_dim == 256  # the residual stream is not pruned
    tokens = source.example_inputs[0]
    assert pruned.module(tokens).shape == source.module(tokens).shape


def test_structured_with_heads_false_keeps_every_attention_head():
    source, (pruned, notes) = _transform("structured:0.5:heads=false", tiny_encoder())
    assert notes[0]["heads_before"] == notes[0]["heads_after"] == 8
    for layer in pruned.module.layers:
        assert layer.attention.num_heads == 4 and layer.attention.query.out_features == 256
    tokens = source.example_inputs[0]
    assert pruned.module(tokens).shape == source.module(tokens).shape


def test_semi_structured_keeps_two_of_every_four_input_weights():
    _, (pruned, notes) = _transform("semi-structured")
    conv = pruned.module.conv1.weight.detach()  # (24, 24, 3, 3): groups of 4 along input channels
    groups = conv.movedim(1, -1).reshape(-1, 4)
    assert torch.all(torch.count_nonzero(groups, dim=1) <= 2)
    assert notes[0]["masked_layers"] >= 5
    # the stem has 3 input channels: not a multiple of 4, so it is skipped and stays dense
    assert notes[0]["skipped_layers"] >= 1
    assert int(torch.count_nonzero(pruned.module.stem[0].weight)) == pruned.module.stem[0].weight.numel()


def test_semi_structured_mask_keeps_the_two_largest():
    weight = torch.tensor([[0.1, -4.0, 3.0, 0.2, 1.0, 2.0, -3.0, 0.0]])
    assert semi_structured_mask(weight).tolist() == [[0, 1, 1, 0, 0, 1, 1, 0]]
    assert semi_structured_mask(torch.ones(2, 6)) is None


def test_lowrank_is_exact_for_a_low_rank_layer_and_skips_where_nothing_is_saved():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 8))
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(64, 8) @ torch.randn(8, 64))  # rank 8
    x = torch.randn(5, 64)
    expected = model(x)
    result = factorize_low_rank(model, fraction=0.125, min_features=16)
    assert (result.factored, result.skipped_too_small) == (1, 1)  # the 64->8 layer is below min_features
    assert isinstance(model[0], torch.nn.Sequential) and model[0][0].out_features == 8
    assert torch.allclose(model(x), expected, atol=1e-3)
    assert factorize_low_rank(torch.nn.Sequential(torch.nn.Linear(64, 64)), 0.9, 16).skipped_no_saving == 1


def test_lowrank_factors_pointwise_convolutions():
    source, (factored, notes) = _transform("lowrank:0.25:min_features=8")
    assert notes[0]["factored"] >= 2  # expand (1x1 conv) and head linear
    assert isinstance(factored.module.expand, torch.nn.Sequential)
    example = source.example_inputs[0]
    assert factored.module(example).shape == source.module(example).shape


def test_finetune_recovers_accuracy_and_keeps_pruned_weights_at_zero():
    source = tiny_cnn()
    _, (pruned, notes) = _transform("unstructured:0.8:finetune=3", source)
    assert notes[0]["finetune_epochs"] == 3 and np.isfinite(notes[0]["finetune_final_loss"])
    weights = _weights(pruned.module)
    nonzero = sum(int(torch.count_nonzero(w)) for w in weights) / sum(w.numel() for w in weights)
    assert abs(nonzero - 0.2) <= 0.01  # training did not revive pruned weights


def test_finetune_without_training_data_is_a_clear_error():
    with pytest.raises(SpeedproofError, match=r"finetune=1 needs training data.*provides none"):
        _transform("structured:0.5:finetune=1", tiny_cnn_without_data())


def test_classifier_is_found_through_flatten_and_views():
    source = tiny_cnn()
    assert find_classifier_layers(source.module, source.example_inputs) == [source.module.classifier]
