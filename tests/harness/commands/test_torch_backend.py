"""`--backend torch` end to end on this CPU: bench and verify build torch.export programs from the
source, measure them in real workers, and keep them beside the record; what the torch backend
cannot run is said, per variant or for the run."""

import hashlib
import json
from pathlib import Path

import pytest

from harness.cli import EXIT_CELL_FAILED, EXIT_OK, EXIT_USAGE, main
from tests.helpers import FAST_FLAGS, FAST_POLICY_FLAGS, TINY_CNN


def test_bench_measures_programs_with_the_torch_backend(tmp_path, capsys):
    recipes = "identity,fp16,semi-structured"
    arguments = ["bench", TINY_CNN, "--backend", "torch", "--recipes", recipes, "--batch", "1,4"]
    code = main([*arguments, "--threads", "1", "--out", str(tmp_path), "--json", *FAST_FLAGS])
    assert code == EXIT_OK
    record = json.loads(capsys.readouterr().out)
    assert [backend["name"] for backend in record["target"]["backends"]] == ["torch"]
    cells = record["cells"]
    assert [(cell["variant"], cell["batch_size"]) for cell in cells] == [
        ("baseline", 1),
        ("baseline", 4),
        ("identity", 1),
        ("identity", 4),
        ("fp16", 1),
        ("fp16", 4),
        ("semi-structured", 1),
        ("semi-structured", 4),
    ]
    for cell in cells:
        assert cell["status"] == "ok", cell["error"]
        assert cell["backend"] == "torch" and cell["provider"] == "torch-eager on cpu"
        assert cell["latency_ms"]["p50"] <= cell["latency_ms"]["p99"]
    variants = {variant["recipe"]: variant for variant in record["variants"]}
    assert variants["fp16"]["steps"] == [{"step": "fp16"}]
    for variant in variants.values():
        assert variant["artifact"]["path"].endswith(".pt2") and variant["artifact"]["macs"] > 0
    # 2:4 on a CPU: the record says which layers carry the pattern and why none runs sparse
    for cell in cells:
        two_four = (cell["runtime"] or {}).get("semi_structured")
        if cell["variant"] != "semi-structured":
            assert two_four is None
            continue
        assert two_four["requested_layers"] >= 1 and two_four["sparse_layers"] == 0
        assert any(warning.startswith("2:4 requested but not used by the runtime") for warning in cell["warnings"])
    # a float16 program holds half the bytes of its weights
    assert variants["fp16"]["artifact"]["bytes"] < 0.8 * variants["baseline"]["artifact"]["bytes"]


def test_verify_keeps_the_verified_programs_and_fails_onnx_only_recipes(tmp_path, capsys):
    arguments = ["verify", TINY_CNN, "--backend", "torch", "--recipes", "structured:0.5,int8-dynamic"]
    code = main([*arguments, "--threads", "1", "--out", str(tmp_path), "--json", *FAST_POLICY_FLAGS])
    assert code == EXIT_CELL_FAILED  # int8-dynamic cannot be a torch program
    record = json.loads(capsys.readouterr().out)
    cells = {cell["variant"]: cell for cell in record["cells"]}
    structured = cells["structured:0.5"]
    assert structured["status"] == "ok", structured["error"]
    assert structured["backend"] == "torch" and structured["verdict"]["decision"] in ("ACCEPT", "REJECT")
    assert structured["speedup"]["ci_low"] <= structured["speedup"]["ratio"] <= structured["speedup"]["ci_high"]
    kept = Path(structured["artifact"]["path"])
    assert kept.suffix == ".pt2" and kept.is_relative_to(tmp_path)
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == structured["artifact"]["sha256"]
    int8 = cells["int8-dynamic"]
    assert int8["status"] == "failed" and int8["verdict"]["decision"] == "REJECT"
    assert "work on ONNX graphs" in int8["error"] and "--backend onnxruntime" in int8["error"]


@pytest.mark.parametrize(
    ("model_is_onnx", "backend", "message"),
    [
        (True, "torch", "the torch backend runs torch.export programs"),
        (False, "tensorrt", "has no backend 'tensorrt'; it lists: onnxruntime, torch"),
        (False, "torch:mode=turbo", "--backend torch: mode='turbo'; valid: eager, compile, cuda-graph"),
        (False, "torch:mdoe=compile", "unknown option 'mdoe' (did you mean \"mode\"?)"),
        (False, "torch:mode", "expected key=value items"),
    ],
)
def test_a_backend_that_cannot_measure_the_run_is_a_usage_error(
    tiny_conv_onnx, model_is_onnx, backend, message, tmp_path, capsys
):
    model = str(tiny_conv_onnx) if model_is_onnx else TINY_CNN
    code = main(["bench", model, "--target", "x86-cpu", "--backend", backend, "--out", str(tmp_path), *FAST_FLAGS])
    assert code == EXIT_USAGE
    error = capsys.readouterr().err
    assert message in error
    assert not list(tmp_path.glob("*.json"))


def test_backend_options_from_the_command_line_reach_the_worker(tmp_path, capsys):
    arguments = ["bench", TINY_CNN, "--backend", "torch:dtype=bfloat16", "--batch", "2", "--threads", "1"]
    assert main([*arguments, "--out", str(tmp_path), "--json", *FAST_FLAGS]) == EXIT_OK
    record = json.loads(capsys.readouterr().out)
    assert record["target"]["backends"] == [
        {"name": "torch", "options": {"device": "cpu", "mode": "eager", "dtype": "bfloat16"}}
    ]
    (cell,) = record["cells"]
    assert cell["status"] == "ok", cell["error"]


@pytest.fixture(scope="module")
def cnn_program_file(tmp_path_factory):
    from exporters.torch_program import export_program
    from tests.tiny_models import tiny_cnn_without_data

    model = tiny_cnn_without_data()
    path = tmp_path_factory.mktemp("source") / "cnn.pt2"
    return export_program(model.module, model.example_inputs, path, ["input"])


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_a_program_file_is_a_model_source_for_both_backends(cnn_program_file, backend, tmp_path, capsys):
    arguments = ["bench", str(cnn_program_file), "--backend", backend, "--recipes", "identity,fp16", "--batch", "2"]
    assert main([*arguments, "--threads", "1", "--out", str(tmp_path), "--json", *FAST_FLAGS]) == EXIT_OK
    record = json.loads(capsys.readouterr().out)
    assert record["model_source"]["kind"] == "program"
    assert all(cell["status"] == "ok" for cell in record["cells"]), [cell["error"] for cell in record["cells"]]
    variants = {variant["recipe"]: variant for variant in record["variants"]}
    suffix = ".pt2" if backend == "torch" else ".onnx"
    assert all(variant["artifact"]["path"].endswith(suffix) for variant in variants.values())
    if backend == "torch":  # the program itself is the baseline, measured where it is
        assert variants["baseline"]["artifact"]["path"] == str(cnn_program_file.resolve())
    assert variants["fp16"]["quality"]["top1_agreement"] >= 0.9


def test_torch_level_recipes_on_a_program_file_are_a_usage_error(cnn_program_file, tmp_path, capsys):
    code = main(["variants", str(cnn_program_file), "--recipes", "structured:0.5", "--out", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "cnn.pt2 is a torch.export program (no module to transform)" in capsys.readouterr().err
