"""digits-cnn with real data (scikit-learn's digits, shipped in the package), shortened to three epochs:
it trains, caches with a checksum, evaluates on the test split, and fine-tunes pruned variants.
The full schedule's accuracy (>= 97%) is checked by the demo's test, which trains it anyway."""

import json

import numpy as np
import pytest

from harness.models import digits
from harness.models.training import torch_accuracy
from harness.models.zoo import ZOO
from harness.recipes.apply_torch import apply_torch_steps
from harness.recipes.grammar import parse_recipe

pytest.importorskip("sklearn", reason="digits-cnn needs scikit-learn")


@pytest.fixture(scope="module")
def one_epoch_cache(tmp_path_factory):
    """Weights trained for three epochs (instead of eight) in a private cache folder."""
    folder = tmp_path_factory.mktemp("digits-cache")
    messages: list[str] = []
    with pytest.MonkeyPatch.context() as patch:  # shortened for this training only
        patch.setattr(digits, "TRAIN_EPOCHS", 3)
        digits.trained_weights(folder, messages.append)
    return folder, messages


def test_split_is_fixed_disjoint_and_upscaled():
    first, second = digits.load_digits_splits(), digits.load_digits_splits()
    assert np.array_equal(first.test.labels, second.test.labels)
    assert first.train.inputs.shape[1:] == (1, 32, 32) and first.train.inputs.dtype == np.float32
    sizes = len(first.train), len(first.validation), len(first.test)
    assert sum(sizes) == 1797 and sizes[0] > sizes[2] > sizes[1]
    assert set(np.unique(first.test.labels)) == set(range(10))


def test_training_reaches_far_above_chance_and_is_cached_with_its_checksum(one_epoch_cache):
    folder, messages = one_epoch_cache
    assert any("training on" in message for message in messages)
    (weights,) = folder.glob("*.pt")
    facts = json.loads(weights.with_suffix(".json").read_text())
    assert facts["test_accuracy"] > 0.8  # chance is 0.1; three epochs reached 0.95, the full eight 0.994
    again: list[str] = []
    path, digest = digits.trained_weights(folder, again.append)
    assert path == weights and digest == facts["sha256"] and again == []  # reused, not retrained


def test_a_cache_that_fails_its_checksum_is_retrained(tmp_path, monkeypatch):
    monkeypatch.setattr(digits, "TRAIN_EPOCHS", 1)
    path, _ = digits.trained_weights(tmp_path)
    path.write_bytes(path.read_bytes()[:-10] + b"corrupted!")
    messages: list[str] = []
    _, digest = digits.trained_weights(tmp_path, messages.append)
    assert any("do not match their checksum" in message for message in messages)
    assert digest == json.loads(path.with_suffix(".json").read_text())["sha256"]


def test_model_provides_training_calibration_and_test_data(one_epoch_cache):
    model = digits.load_digits_cnn(one_epoch_cache[0])
    assert model.train_data is not None and model.eval_data is not None and model.calibration_data is not None
    assert len(model.calibration_data) == digits.CALIBRATION_SAMPLES
    assert not model.latency_only
    assert model.provided_data() == ZOO["digits-cnn"].provides  # the zoo declares it without loading
    assert torch_accuracy(model.module, model.eval_data) > 0.8


def test_finetune_recovers_accuracy_after_structured_pruning(one_epoch_cache):
    model = digits.load_digits_cnn(one_epoch_cache[0])
    pruned, _ = apply_torch_steps(model, parse_recipe("structured:0.5").torch_steps())
    finetuned, notes = apply_torch_steps(model, parse_recipe("structured:0.5:finetune=1").torch_steps())
    assert notes[0]["finetune_epochs"] == 1
    assert model.eval_data is not None
    assert torch_accuracy(finetuned.module, model.eval_data) > torch_accuracy(pruned.module, model.eval_data)
