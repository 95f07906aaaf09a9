"""digits-transformer: the zoo's transformer with real accuracy, trained here for six epochs
(instead of thirty) in a private cache: patch tokens, training, the cache, the layer stack that
drop-layers and head pruning work on."""

import json

import numpy as np
import pytest
import torch

from harness.models import digits_transformer
from harness.models.zoo import ZOO
from harness.recipes.apply_torch import apply_torch_steps
from harness.recipes.grammar import parse_recipe

pytest.importorskip("sklearn", reason="digits-transformer needs scikit-learn")


@pytest.fixture(scope="module")
def short_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits-transformer-cache")
    messages: list[str] = []
    with pytest.MonkeyPatch.context() as patch:  # shortened for this training only
        patch.setattr(digits_transformer, "TRAIN_EPOCHS", 6)
        digits_transformer.trained_transformer_weights(folder, messages.append)
    return folder, messages


def test_images_become_sixteen_patch_tokens_row_by_row():
    images = torch.arange(16 * 16, dtype=torch.float32).reshape(1, 1, 16, 16)
    tokens = digits_transformer.patches_of(images)
    assert tokens.shape == (1, 16, 16)
    # the first token is the top-left 4x4 patch, the second the patch to its right
    assert tokens[0, 0].tolist() == [float(row * 16 + col) for row in range(4) for col in range(4)]
    assert tokens[0, 1, 0] == 4.0 and tokens[0, 4, 0] == 4 * 16.0


def test_training_learns_and_is_cached_with_its_checksum(short_cache):
    folder, messages = short_cache
    assert any("digits-transformer: training on 1257 digits images (6 epochs" in message for message in messages)
    (weights,) = folder.glob("digits-transformer-*.pt")
    facts = json.loads(weights.with_suffix(".json").read_text())
    assert facts["test_accuracy"] > 0.5  # chance is 0.1; six epochs reached 0.82, the full thirty 0.98
    again: list[str] = []
    path, digest = digits_transformer.trained_transformer_weights(folder, again.append)
    assert path == weights and digest == facts["sha256"] and again == []


def test_the_model_provides_its_data_and_its_layers_can_be_dropped_and_its_heads_pruned(short_cache):
    model = digits_transformer.load_digits_transformer(short_cache[0])
    assert model.provided_data() == ZOO["digits-transformer"].provides
    assert model.eval_data is not None and model.eval_data.inputs.shape[1:] == (16, 16)
    assert model.example_inputs[0].shape == (2, 16, 16) and model.input_names == ("patches",)
    dropped, notes = apply_torch_steps(model, parse_recipe("drop-layers:2").torch_steps())
    assert notes[0]["kept_layers"] == [0, 3] and len(dropped.module.layers) == 2
    pruned, notes = apply_torch_steps(model, parse_recipe("structured:0.5").torch_steps())
    assert notes[0]["heads_before"] == 16 and notes[0]["heads_after"] == 8
    with torch.no_grad():
        scores = pruned.module(torch.from_numpy(model.eval_data.inputs[:5]))
    assert scores.shape == (5, 10) and np.isfinite(scores.numpy()).all()
