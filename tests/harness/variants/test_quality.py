"""Accuracy and fidelity, run on real onnxruntime sessions of graphs built in the tests."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from harness.models.data import LabelledData
from harness.variants.quality import QualityBackend, accuracy, data_feeds, fidelity, generated_feeds
from targets.errors import SpeedproofError
from targets.inputs import ModelInput
from targets.profiles import BackendSpec
from targets.runners.local import LocalRunner

CPU = BackendSpec("onnxruntime", {"execution_provider": "CPUExecutionProvider"})


def _identity_classifier(path, batch="batch"):
    """y = x: the predicted class is the index of the largest input."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_accuracy_counts_top1_hits_on_the_artifact(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((150, 5)).astype(np.float32)
    labels = inputs.argmax(axis=1)
    labels[:30] = (labels[:30] + 1) % 5  # 30 of 150 wrong
    path = _identity_classifier(tmp_path / "m.onnx")
    evaluator = QualityBackend(LocalRunner(), CPU, threads=1)
    result = accuracy(evaluator, path, [ModelInput("x", "float32", ("batch", 5))], LabelledData(inputs, labels))
    assert result == {"metric": "accuracy", "accuracy": pytest.approx(0.8), "samples": 150}


def test_a_fixed_batch_dimension_sets_the_evaluation_batch():
    model_inputs = [ModelInput("x", "float32", (4, 5))]
    feeds = data_feeds(model_inputs, np.zeros((10, 5), np.float32), batch=64)
    assert [feed["x"].shape[0] for feed in feeds] == [4, 4]  # the tail of 2 cannot run at batch 4


def test_fidelity_of_identical_outputs_is_perfect_and_of_shuffled_ones_is_not():
    rng = np.random.default_rng(1)
    baseline = rng.standard_normal((32, 10))
    same = fidelity(baseline.copy(), baseline)
    assert same["top1_agreement"] == 1.0 and same["mean_cosine"] == pytest.approx(1.0)
    other = fidelity(rng.standard_normal((32, 10)), baseline)
    assert other["top1_agreement"] < 0.5 and abs(other["mean_cosine"]) < 0.5
    scaled = fidelity(baseline * 3.0, baseline)  # same direction: same classes, cosine 1
    assert scaled["top1_agreement"] == 1.0 and scaled["mean_cosine"] == pytest.approx(1.0)


def test_fidelity_handles_zero_outputs_and_says_when_shapes_differ():
    zeros = np.zeros((4, 3))
    assert fidelity(zeros, zeros)["mean_cosine"] == 1.0
    assert fidelity(zeros, np.ones((4, 3)))["mean_cosine"] == 0.0
    other = fidelity(np.zeros((4, 3)), np.zeros((4, 2)))  # a data-dependent size (detections after NMS)
    assert other["mean_cosine"] is None and "shape [4, 3] vs the baseline's [4, 2]" in other["incomparable"][0]
    with pytest.raises(SpeedproofError, match="outputs"):
        fidelity([[zeros, zeros]], [[zeros]])


def test_fidelity_judges_every_output_and_the_worst_leads():
    """A detector's scores stay close while its boxes drift: the boxes decide, and each output is named."""
    rng = np.random.default_rng(5)
    scores, boxes = rng.standard_normal((8, 80)), rng.standard_normal((8, 4))
    drifted = boxes + rng.standard_normal((8, 4))
    result = fidelity([[scores, drifted]], [[scores, boxes]], names=["scores", "boxes"])
    by_name = {item["name"]: item for item in result["outputs"]}
    assert by_name["scores"]["mean_cosine"] == pytest.approx(1.0)
    assert result["mean_cosine"] == by_name["boxes"]["mean_cosine"] < 0.9
    assert result["auto_measure"] == "cosine" and "2 outputs" in result["auto_measure_reason"]


def test_generated_feeds_are_the_same_every_time():
    model_inputs = [ModelInput("x", "float32", ("batch", 5))]
    first, second = generated_feeds(model_inputs, {}), generated_feeds(model_inputs, {})
    assert len(first) == 8 and all(np.array_equal(a["x"], b["x"]) for a, b in zip(first, second, strict=True))


def test_the_measure_fits_the_output():
    """Top-1 only for [batch, classes] scores; a detector's [batch, 84, anchors] (or boxes, a map)
    is judged by closeness, so a float16 copy with cosine 1.0 is not called unfaithful."""
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((16, 10))
    assert fidelity(scores + 1e-3, scores)["auto_measure"] == "top1"
    detections = rng.standard_normal((4, 84, 100)).astype(np.float32)
    rounded = detections.astype(np.float16).astype(np.float32)  # what a float16 copy does to the outputs
    close = fidelity(rounded, detections)
    assert close["auto_measure"] == "cosine" and "shape [4, 84, 100]" in close["auto_measure_reason"]
    assert close["mean_cosine"] > 0.9999 and close["snr_db"] > 50 and close["max_abs_diff"] < 1e-2
    vector = fidelity(rng.standard_normal(8), rng.standard_normal(8))
    assert vector["top1_agreement"] is None and vector["auto_measure"] == "cosine"
    assert fidelity(scores.copy(), scores)["snr_db"] == 200.0


def _detector_outputs(seed: int, scores_alive: bool = True) -> np.ndarray:
    """[1, 4 + 80, 64]: box rows in pixels (0-640), class-score rows in 0-1."""
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 640, (1, 4, 64))
    scores = rng.uniform(0, 1, (1, 80, 64)) * (1.0 if scores_alive else 0.0)
    return np.concatenate([boxes, scores], axis=1).astype(np.float32)


def test_a_collapsed_head_is_seen_per_channel_where_the_whole_tensor_looks_close():
    from harness.variants.quality import fidelity

    baseline = [[_detector_outputs(seed)] for seed in range(4)]
    dead = [[np.concatenate([feed[0][:, :4], feed[0][:, 4:] * 0], axis=1)] for feed in baseline]
    figures = fidelity(dead, baseline, ["output0"])
    assert figures["mean_cosine"] > 0.999  # the box rows dominate the whole tensor
    worst = figures["worst_channels"]
    assert worst["output"] == "output0" and worst["axis"] == 1 and worst["count"] == 84
    assert sorted(index for index, snr in worst["worst"] if snr < 0) == list(range(4, 84))
    noisy = [
        [feed[0] + np.random.default_rng(9).normal(0, 0.01, feed[0].shape).astype(np.float32)] for feed in baseline
    ]
    assert min(snr for _, snr in fidelity(noisy, baseline)["worst_channels"]["worst"]) > 10  # small noise: no collapse
