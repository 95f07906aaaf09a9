"""The user's data, checked against the model's inputs and batched as each input carries its batch:
an RNN-style state with the batch on dim 1, a scalar constant, a sequence length only the data
fixes; a data function's feed dicts joined into samples; the timed values travelling to a worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.models.user_data import check_data_arrays, load_user_data, read_npz
from targets.errors import SpeedproofError
from targets.inputs import InputSpec, ModelInput, generate_feed, resolve_input_specs, with_batch_axes
from targets.runners.base import WorkerRequest
from tests.helpers import cell_request

RNN_INPUTS = with_batch_axes(
    [
        ModelInput("x", "float32", ("batch", "seq")),
        ModelInput("state", "float32", (2, "batch", 4)),
        ModelInput("sr", "int64", ()),
    ]
)


def _rnn_arrays(samples: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((samples, 6)),  # float64: same kind as the float32 input
        "state": rng.standard_normal((samples, 2, 4)).astype(np.float32),
        "sr": np.array(16000),
        "labels": np.arange(samples),
    }


def test_samples_come_first_and_each_input_gets_its_batch_on_its_own_axis():
    data = check_data_arrays("--data d.npz", "d.npz", _rnn_arrays(), RNN_INPUTS, None)
    assert data.samples == 10 and set(data.per_sample) == {"x", "state"} and set(data.fixed) == {"sr"}
    overrides = data.sample_overrides(RNN_INPUTS)
    assert overrides == {"x": (1, 6), "state": (2, 1, 4)}  # the data fixes the sequence length
    feeds = data.batches(RNN_INPUTS, 4, overrides)
    assert [feed["state"].shape for feed in feeds] == [(2, 4, 4), (2, 4, 4), (2, 2, 4)]
    assert feeds[0]["x"].dtype == np.float32 and feeds[0]["sr"].shape == () and int(feeds[0]["sr"]) == 16000
    np.testing.assert_array_equal(feeds[1]["state"][:, 0], data.per_sample["state"][4])


def test_the_timed_feed_is_the_first_samples_repeated_to_the_batch_and_travels_to_the_worker(tiny_conv_onnx):
    data = check_data_arrays("--data d.npz", "d.npz", _rnn_arrays(), RNN_INPUTS, None)
    overrides = data.sample_overrides(RNN_INPUTS)
    specs = data.timed_specs(resolve_input_specs(RNN_INPUTS, 12, overrides), RNN_INPUTS)
    state = next(spec for spec in specs if spec.name == "state")
    assert state.values is not None and state.values.shape == (2, 12, 4)
    np.testing.assert_array_equal(state.values[:, 10], data.per_sample["state"][0])  # 12 > 10 samples: repeated
    request = cell_request(tiny_conv_onnx)
    travelled = WorkerRequest.from_dict({**request.as_dict(), "inputs": [spec.as_dict() for spec in specs]})
    feed = generate_feed(list(travelled.inputs))
    np.testing.assert_array_equal(feed["state"], state.values)
    assert feed["sr"].shape == () and feed["x"].shape == (12, 6)


def test_generated_values_and_given_ones_never_mix_up_shapes():
    spec = InputSpec("x", "float32", (2, 3), values=np.zeros((3, 2), np.float32))
    with pytest.raises(SpeedproofError, match=r"the data given is float32 \[3, 2\], the plan needs float32 \[2, 3\]"):
        generate_feed([spec])


def test_a_constant_given_by_input_value_needs_no_array():
    inputs = [
        *RNN_INPUTS[:2],
        ModelInput("sr", "int64", (), batch_axis=None, constant=8000.0),
    ]
    arrays = {key: value for key, value in _rnn_arrays().items() if key != "sr"}
    data = check_data_arrays("--data d.npz", "d.npz", arrays, inputs, None)
    feed = data.batches(inputs, 8, data.sample_overrides(inputs))[0]
    assert int(feed["sr"]) == 8000


def test_an_npz_is_read_without_unpickling(tmp_path: Path):
    path = tmp_path / "d.npz"
    np.savez(path, **_rnn_arrays())
    data = load_user_data(str(path), RNN_INPUTS, "--data", tmp_path)
    assert data.sha256 and data.entry()["arrays"]["state"] == {"dtype": "float32", "shape": [10, 2, 4]}
    assert data.entry()["labels"] == {"dtype": "int64", "shape": [10]}
    assert set(read_npz(path, "here")) == {"x", "state", "sr", "labels"}


def test_a_data_function_yields_feed_dicts_that_become_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "my_loader.py").write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    rng = np.random.default_rng(1)\n"
        "    for index in range(3):\n"
        "        yield {'x': rng.standard_normal((4, 6)).astype(np.float32),\n"
        "               'state': rng.standard_normal((2, 4, 4)).astype(np.float32),\n"
        "               'sr': np.array(16000), 'labels': np.arange(4) + 4 * index}\n"
    )
    monkeypatch.chdir(tmp_path)
    data = load_user_data("my_loader:batches", RNN_INPUTS, "--data", tmp_path / "work")
    assert data.samples == 12 and data.per_sample["state"].shape == (12, 2, 4)
    np.testing.assert_array_equal(data.labels, np.arange(12))
    assert int(data.fixed["sr"]) == 16000


def test_int8_static_calibrates_on_the_data_and_quality_is_judged_on_it(tiny_conv_onnx, tmp_path: Path):
    import onnx

    from harness.variants.job import VariantsRequest, run_variants
    from targets.inputs import InputSettings

    name = onnx.load(str(tiny_conv_onnx)).graph.input[0].name
    data = tmp_path / "inputs.npz"
    np.savez(data, **{name: np.random.default_rng(0).standard_normal((24, 3, 16, 16)).astype(np.float32)})
    request = VariantsRequest(
        model=str(tiny_conv_onnx),
        recipes=("int8-static:calibration=16",),
        threads=1,
        inputs=InputSettings(data=str(data)),
        out_dir=tmp_path / "out",
    )
    record, _ = run_variants(request)
    int8 = record["variants"][1]
    assert int8["status"] == "ok" and not any("generated inputs" in warning for warning in int8["warnings"])
    assert int8["quality"]["inputs"] == "data" and int8["quality"]["samples"] == 24
    assert record["model_source"]["data"]["samples"] == 24
