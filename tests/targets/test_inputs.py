import re

import numpy as np
import onnx
import pytest

from exporters.onnx_file import read_model_inputs
from targets.errors import SpeedproofError
from targets.inputs import (
    InputSettings,
    ModelInput,
    generate_feed,
    parse_input_shape,
    resolve_input_specs,
    shape_overrides,
    with_batch_axes,
)


def test_parse_input_shape_with_and_without_name():
    assert parse_input_shape("1x3x224x224") == (None, (1, 3, 224, 224))
    assert parse_input_shape("input_ids=1x128") == ("input_ids", (1, 128))


@pytest.mark.parametrize("text", ["1,3,224", "x=", "1x0", "ax3"])
def test_bad_input_shape_says_what_is_valid(text):
    with pytest.raises(SpeedproofError, match="expected|positive"):
        parse_input_shape(text)


def test_symbolic_batch_takes_the_batch_size():
    inputs = [ModelInput("x", "float32", ("batch", 3, 8, 8))]
    (spec,) = resolve_input_specs(inputs, 8)
    assert spec.shape == (8, 3, 8, 8)


def test_unresolvable_dim_names_the_input_shape_to_pass(embedding_onnx):
    inputs = read_model_inputs(onnx.load(embedding_onnx))
    with pytest.raises(SpeedproofError) as caught:
        resolve_input_specs(inputs, 1)
    assert "--input-shape ids=1xN" in str(caught.value)


def test_override_first_dim_is_replaced_by_batch(embedding_onnx):
    inputs = read_model_inputs(onnx.load(embedding_onnx))
    (spec,) = resolve_input_specs(inputs, 4, shape_overrides(["1x16"]))
    assert spec.shape == (4, 16)


def test_token_ids_stay_inside_the_embedding_table(embedding_onnx):
    inputs = read_model_inputs(onnx.load(embedding_onnx))
    assert inputs[0].int_high == 50
    specs = resolve_input_specs(inputs, 64, shape_overrides(["ids=1x128"]))
    ids = generate_feed(specs)["ids"]
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 50


def test_fixed_batch_rejects_another_batch_size(fixed_batch_onnx):
    inputs = read_model_inputs(onnx.load(fixed_batch_onnx))
    assert resolve_input_specs(inputs, 1)[0].shape == (1, 4)
    with pytest.raises(SpeedproofError, match="fixed batch dimension of 1"):
        resolve_input_specs(inputs, 8)


def test_override_must_match_fixed_dims_and_known_names():
    inputs = [ModelInput("x", "float32", ("batch", 3, 8, 8))]
    with pytest.raises(SpeedproofError, match="dim 1 is fixed at 3"):
        resolve_input_specs(inputs, 1, shape_overrides(["1x4x8x8"]))
    with pytest.raises(SpeedproofError, match="model's inputs are: x"):
        resolve_input_specs(inputs, 1, shape_overrides(["y=1x3x8x8"]))
    with pytest.raises(SpeedproofError, match="has 2 dims"):
        resolve_input_specs(inputs, 1, shape_overrides(["1x3"]))


def test_feed_is_reproducible_and_typed():
    inputs = [
        ModelInput("image", "float32", ("batch", 3, 4, 4)),
        ModelInput("mask", "bool", ("batch", 4)),
        ModelInput("pixels", "uint8", ("batch", 4)),
    ]
    specs = resolve_input_specs(inputs, 2)
    first, second = generate_feed(specs, seed=3), generate_feed(specs, seed=3)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert first["image"].dtype == np.float32 and first["image"].shape == (2, 3, 4, 4)
    assert first["mask"].dtype == np.bool_
    assert first["pixels"].dtype == np.uint8
    assert not np.array_equal(generate_feed(specs, seed=4)["image"], first["image"])


RNN_INPUTS = [
    ModelInput("x", "float32", ("batch", 64)),
    ModelInput("state", "float32", (2, "batch", 16)),
    ModelInput("sr", "int64", ()),
]


def test_the_batch_axis_is_found_where_the_batch_symbol_is():
    """An RNN state [layers, batch, hidden] carries the batch on dim 1; a scalar carries none."""
    annotated = with_batch_axes(RNN_INPUTS)
    assert [item.batch_axis for item in annotated] == [0, 1, None]
    specs = resolve_input_specs(annotated, 4)
    assert [spec.shape for spec in specs] == [(4, 64), (2, 4, 16), ()]


def test_batch_axes_and_constants_given_by_the_user():
    sequence_first = [ModelInput("tokens", "int64", ("seq", "batch"))]
    settings = InputSettings(batch_axes=("tokens=1",), input_values=())
    [tokens] = settings.apply(sequence_first)
    with pytest.raises(SpeedproofError, match="--input-shape tokens=Nx1"):
        resolve_input_specs([tokens], 8)  # the sequence length is the user's to give
    assert resolve_input_specs([tokens], 8, {"tokens": (128, 1)})[0].shape == (128, 8)
    constants = InputSettings(input_values=("sr=16000",)).apply(with_batch_axes(RNN_INPUTS))
    feed = generate_feed(resolve_input_specs(constants, 2))
    assert feed["sr"].shape == () and feed["sr"].dtype == np.int64 and int(feed["sr"]) == 16000


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (InputSettings(batch_axes=("state=7",)), "--batch-axis state=7: input 'state' has 3 dims"),
        (InputSettings(batch_axes=("nope=1",)), "--batch-axis names input 'nope'"),
        (InputSettings(batch_axes=("state",)), "expected NAME=K"),
        (InputSettings(input_values=("sr=abc",)), "expected NAME=NUMBER"),
        (InputSettings(input_values=("sr=0.5",)), "input 'sr' is int64"),
        (InputSettings(input_values=("sr=1", "sr=2")), "given twice"),
    ],
)
def test_bad_batch_axes_and_values(settings, message):
    with pytest.raises(SpeedproofError, match=re.escape(message)):
        settings.check()
        settings.apply(RNN_INPUTS)


def test_a_fixed_dim_that_is_not_the_batch_gets_advice_for_this_model():
    fixed = with_batch_axes([ModelInput("x", "float32", (1, 64)), ModelInput("state", "float32", (2, 1, 16))])
    with pytest.raises(SpeedproofError, match="--batch-axis state=K, or =none"):
        resolve_input_specs(fixed, 1)  # state's dim 0 (2 layers) taken as the batch: the advice says how to fix it


def test_inputs_sharing_a_symbolic_dim_are_named_together_in_one_error():
    """input_ids and attention_mask share `seq`: one error names both (it took two failed tries)."""
    from targets.errors import UsageError
    from targets.inputs import ModelInput, resolve_input_specs

    inputs = [
        ModelInput("input_ids", "int64", ("batch", "seq")),
        ModelInput("attention_mask", "int64", ("batch", "seq")),
    ]
    with pytest.raises(UsageError) as raised:
        resolve_input_specs(inputs, 1, {})
    message = str(raised.value)
    assert "--input-shape input_ids=1xN --input-shape attention_mask=1xN" in message and "share 'seq'" in message
    shapes = [spec.shape for spec in resolve_input_specs(inputs, 1, {"input_ids": (1, 8), "attention_mask": (1, 8)})]
    assert shapes == [(1, 8), (1, 8)]
