"""Judged on the user's own data: a multi-output detector-like model with an npz and a task metric
(the metric decides, per candidate), the digits teacher and a student distilled from its soft
targets as two ONNX files with an npz of the test split (accuracy, verdict, next step), closeness of
every output on real inputs without labels, compare and gate with candidates and data."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.cli import EXIT_CELL_FAILED, main
from tests.helpers import FAST_POLICY_FLAGS, FAST_POLICY_TOML, make_onnx_model

BOX_METRIC = '''
import numpy as np

def box_score(outputs, labels):
    """1 - relative L1 error of the boxes: higher is better."""
    predicted = np.concatenate([call["boxes"] for call in outputs])
    return float(1 - np.mean(np.abs(predicted - labels)) / np.mean(np.abs(labels)))
'''


def _detector(path: Path, box_noise: float) -> Path:
    """images [batch, 3, 4, 4] -> scores [batch, 5] (softmax), boxes [batch, 4]; `box_noise` moves the boxes."""
    rng = np.random.default_rng(0)
    scores_weight = rng.standard_normal((48, 5)).astype(np.float32)
    boxes_weight = rng.standard_normal((48, 4)).astype(np.float32)
    boxes_weight += box_noise * np.random.default_rng(1).standard_normal((48, 4)).astype(np.float32)
    model = make_onnx_model(
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [
            helper.make_node("Flatten", ["images"], ["flat"]),
            helper.make_node("MatMul", ["flat", "W1"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=-1),
            helper.make_node("MatMul", ["flat", "W2"], ["boxes"]),
        ],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 5]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", 4]),
        ],
        initializers=[numpy_helper.from_array(scores_weight, "W1"), numpy_helper.from_array(boxes_weight, "W2")],
    )
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def detection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder: the detector, a close copy and a far one, an npz with ground-truth boxes, a metric module."""
    import onnxruntime as ort

    folder = tmp_path_factory.mktemp("detection")
    baseline = _detector(folder / "det.onnx", 0.0)
    _detector(folder / "det_close.onnx", 0.001)
    _detector(folder / "det_far.onnx", 0.5)
    images = np.random.default_rng(2).standard_normal((32, 3, 4, 4)).astype(np.float32)
    boxes = ort.InferenceSession(str(baseline)).run(["boxes"], {"images": images})[0]
    np.savez(folder / "val.npz", images=images, labels=boxes + 0.01)
    (folder / "det_metrics.py").write_text(BOX_METRIC)
    return folder


def _verify(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["verify", *args, *FAST_POLICY_FLAGS, "--out", str(out)])
    captured = capsys.readouterr()
    [path] = out.glob("*.json")
    assert captured.err == "" or "error" not in captured.err, captured.err
    return code, json.loads(path.read_text())


def test_a_task_metric_on_the_users_data_judges_a_multi_output_model(detection, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(detection)
    code, record = _verify(
        [
            "det.onnx",
            "--candidate",
            "det_close.onnx=close",
            "--candidate",
            "det_far.onnx=far",
            "--data",
            "val.npz",
            "--metric-fn",
            "det_metrics:box_score",
        ],
        tmp_path,
        capsys,
    )
    cells = {cell["variant"]: cell for cell in record["cells"]}
    assert cells["baseline"]["quality"]["metric"] == "task" and cells["baseline"]["quality"]["score"] > 0.99
    assert cells["close"]["quality"]["score"] == pytest.approx(cells["baseline"]["quality"]["score"], abs=1e-3)
    far_codes = [reason["code"] for reason in cells["far"]["verdict"]["reasons"]]
    close_codes = [reason["code"] for reason in cells["close"]["verdict"]["reasons"]]
    assert "ACCURACY_DROP" in far_codes and "ACCURACY_DROP" not in close_codes
    assert "box_score" in next(r["message"] for r in cells["far"]["verdict"]["reasons"] if r["code"] == "ACCURACY_DROP")
    assert record["model_source"]["data"]["samples"] == 32 and record["model_source"]["metric_fn"]
    assert code == EXIT_CELL_FAILED  # nothing here is faster than the baseline


def test_without_a_metric_every_output_is_compared_on_the_users_inputs(detection, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(detection)
    np.savez(tmp_path / "inputs.npz", images=np.load(detection / "val.npz")["images"])
    _, record = _verify(
        ["det.onnx", "--candidate", "det_far.onnx=far", "--data", str(tmp_path / "inputs.npz")], tmp_path, capsys
    )
    far = next(cell for cell in record["cells"] if cell["variant"] == "far")
    quality = far["quality"]
    assert quality["inputs"] == "data" and [item["name"] for item in quality["outputs"]] == ["scores", "boxes"]
    by_name = {item["name"]: item for item in quality["outputs"]}
    assert by_name["scores"]["mean_cosine"] == pytest.approx(1.0) and quality["mean_cosine"] < 0.99
    messages = [reason["message"] for reason in far["verdict"]["reasons"] if reason["code"] == "FIDELITY_LOW"]
    assert messages and "judged by cosine" in messages[0]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits teacher and a student distilled from its soft targets, as ONNX files, and the test split."""
    from tests.own_data_models import write_distilled_pair

    folder = tmp_path_factory.mktemp("distilled")
    write_distilled_pair(folder)
    return folder


def test_a_distilled_student_is_judged_by_its_accuracy_on_the_test_split(distilled, tmp_path, capsys):
    data = distilled / "digits_test.npz"
    _, record = _verify(
        [str(distilled / "teacher.onnx"), "--candidate", f"{distilled / 'student.onnx'}=student", "--data", str(data)],
        tmp_path,
        capsys,
    )
    cells = {cell["variant"]: cell for cell in record["cells"]}
    teacher, student = cells["baseline"]["quality"], cells["student"]["quality"]
    assert teacher["metric"] == student["metric"] == "accuracy" and teacher["samples"] == student["samples"] > 300
    assert teacher["accuracy"] > 0.9 and student["accuracy"] > 0.5  # it learnt from soft targets alone
    verdict = cells["student"]["verdict"]
    assert verdict["next_step"] in ("keep", "tune", "reject", "remeasure")
    dropped = teacher["accuracy"] - student["accuracy"] > 0.01
    assert ("ACCURACY_DROP" in [reason["code"] for reason in verdict["reasons"]]) == dropped


def test_a_gate_check_takes_data_and_a_metric_with_paths_relative_to_its_config(
    detection, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(detection)  # where the metric module is importable from
    (detection / "release").mkdir(exist_ok=True)
    config = detection / "release" / "gate.toml"
    config.write_text(
        textwrap.dedent(
            """
            [[check]]
            model = "../det.onnx"
            candidates = [{path = "../det_far.onnx", label = "far"}]
            data = "../val.npz"
            metric_fn = "det_metrics:box_score"
            required = ["far"]
            """
        )
        + FAST_POLICY_TOML.replace("[policy]", "[check.policy]")
    )
    out = tmp_path / "results"
    code = main(["gate", "--config", str(config), "--out", str(out)])
    [path] = out.glob("*.json")
    cells = {cell["variant"]: cell for cell in json.loads(path.read_text())["cells"]}
    assert code == EXIT_CELL_FAILED
    assert cells["far"]["quality"]["metric"] == "task"
    assert "ACCURACY_DROP" in [reason["code"] for reason in cells["far"]["verdict"]["reasons"]]
    # a path that exists only relative to the current folder, as configs were read before, is refused with why
    config.write_text('[[check]]\nmodel = "det.onnx"\nrecipes = ["identity"]\n')
    assert main(["gate", "--config", str(config), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "relative to the config's folder" in error and "exists relative to the current folder" in error


def test_labels_that_no_measure_uses_are_said_on_the_terminal(detection, tmp_path, capsys, monkeypatch):
    """val.npz's labels are boxes, not class indices, and no --metric-fn is given: they are unused,
    which the terminal says (only the JSON did before)."""
    monkeypatch.chdir(detection)
    main(
        [
            "verify",
            "det.onnx",
            "--candidate",
            "det_far.onnx=far",
            "--data",
            "val.npz",
            *FAST_POLICY_FLAGS,
            "--out",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert "note det: the labels were not used" in printed and "--metric-fn" in printed
