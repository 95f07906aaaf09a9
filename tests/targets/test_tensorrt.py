"""TensorRT without a GPU: what the engine inspector says (parsed from a stored inspector JSON), the
builder's sparsity messages, the hints they give, the ONNX facts and build flags an engine is made
from, its cache key, and the missing-TensorRT messages. On a CUDA host with TensorRT (marker `gpu`):
engines built and run for a small conv net and a small transformer, fp16, int8 and 2:4."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from targets.backends.tensorrt.engines import build_flags, engine_cache_key, onnx_facts
from targets.backends.tensorrt.inspection import (
    kernel_report,
    parse_layers,
    sparsity_from_log,
    tensor_precision,
    tensorrt_hints,
)
from targets.errors import SpeedproofError
from tests.helpers import make_onnx_model

SAMPLE = Path(__file__).parent / "data" / "tensorrt_inspector_sample.json"


def _sample():
    return json.loads(SAMPLE.read_text())


def test_each_layers_precision_tactic_and_sparse_kernel_come_from_the_inspector():
    layers = {layer.name: layer for layer in parse_layers(_sample())}
    conv1, conv2, gemm = layers["/conv1/Conv + /relu1/Relu"], layers["/conv2/Conv"], layers["/fc/Gemm"]
    assert (conv1.type, conv1.precision, conv1.sparse_kernel) == ("Convolution", "int8", True)
    assert (conv2.precision, conv2.sparse_kernel) == ("fp16", False)
    assert (gemm.type, gemm.precision) == ("MatrixMultiply", "fp32")
    assert not layers["/pool/GlobalAveragePool"].computes and conv1.computes
    assert tensor_precision("Channel major FP16 format where channel % 8 == 0") == "fp16"
    assert tensor_precision("Row major linear Half") == "fp16" and tensor_precision(None) is None


def test_the_report_counts_int8_layers_and_names_the_ones_left_in_float():
    report = kernel_report(_sample(), int8_requested=True, sparsity_requested=True, eligible_from_weights=2)
    facts = report.as_dict()
    assert facts["int8"] == {
        "requested": True,
        "compute_layers": 3,
        "int8_layers": 1,
        "float_layers": ["/conv2/Conv", "/fc/Gemm"],
    }
    assert facts["sparsity"]["eligible_layers"] == 2 and facts["sparsity"]["sparse_layers"] == [
        "/conv1/Conv + /relu1/Relu"
    ]
    assert facts["compute_layer_precisions"] == {"int8": 1, "fp16": 1, "fp32": 1}
    hints = tensorrt_hints(facts)
    assert "2:4 used in 1 of 2 eligible layers (/conv1/Conv + /relu1/Relu)" in hints
    assert any(
        hint.startswith("int8 requested but 2 of 3 compute layers ran in fp16/fp32 (/conv2/Conv, /fc/Gemm)")
        for hint in hints
    )


def test_the_builders_own_sparsity_messages_win_over_tactic_names():
    log = sparsity_from_log(
        [
            "[I] [TRT] (Sparsity) Layers eligible for sparse math: /conv1/Conv + /relu1/Relu, /conv2/Conv",
            "[I] [TRT] (Sparsity) TRT inference plan picks sparse implementation for layers: ",
        ]
    )
    assert log.eligible == ("/conv1/Conv + /relu1/Relu", "/conv2/Conv") and log.picked == ()
    report = kernel_report(_sample(), False, True, eligible_from_weights=0, sparsity_log=log).as_dict()
    assert report["sparsity"]["eligible_layers"] == 2 and report["sparsity"]["sparse_layers"] == []
    (hint,) = tensorrt_hints(report)
    assert hint.startswith("sparsity requested but no sparse kernel picked: TensorRT enabled sparse weights for 2")


def test_no_hints_when_nothing_was_requested_and_a_bare_inspector_is_said():
    assert tensorrt_hints(kernel_report(_sample(), False, False, 0).as_dict()) == []
    assert tensorrt_hints(None) == []
    bare = kernel_report({"Layers": ["/conv1/Conv", "/fc/Gemm"]}, False, False, 0).as_dict()
    assert bare["detailed"] is False
    assert "no per-layer details" in tensorrt_hints(bare)[0]


def test_the_verdict_carries_the_tensorrt_hints():
    from dataclasses import replace

    from harness.verdict.policy import build_policy
    from harness.verdict.rules import Evidence, decide

    evidence = Evidence(
        recipe="int8-static:symmetric=true",
        policy=build_policy(),
        baseline_facts={},
        variant_facts={},
        baseline_quality=None,
        variant_quality=None,
    )
    facts = kernel_report(_sample(), True, False, 0).as_dict()
    assert not any("int8 requested" in hint for hint in decide(evidence).hints)
    assert any("int8 requested but 2 of 3" in hint for hint in decide(replace(evidence, tensorrt=facts)).hints)


def _gemm_model(path, weight, qdq_zero_point=None):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)]
    initializers = [numpy_helper.from_array(weight, "w")]
    if qdq_zero_point is not None:
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
            helper.make_node("Gemm", ["xd", "w"], ["y"], transB=1),
        ]
        initializers += [
            numpy_helper.from_array(np.array(0.1, dtype=np.float32), "scale"),
            numpy_helper.from_array(np.array(qdq_zero_point, dtype=np.int8), "zero"),
        ]
    model = make_onnx_model(
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", weight.shape[1]])],
        nodes,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", weight.shape[0]])],
        initializers,
    )
    onnx.save(model, path)
    return path


def test_onnx_facts_find_two_four_weights_and_qdq_zero_points(tmp_path):
    dense = np.arange(1, 33, dtype=np.float32).reshape(4, 8)
    two_four = dense.copy()
    two_four[:, [0, 1, 4, 5]] = 0  # two zeros in each group of four along K (axis 1 with transB)
    assert onnx_facts(_gemm_model(tmp_path / "dense.onnx", dense)).two_four_layers == ()
    facts = onnx_facts(_gemm_model(tmp_path / "sparse.onnx", two_four))
    assert len(facts.two_four_layers) == 1 and not facts.int8_requested
    symmetric = onnx_facts(_gemm_model(tmp_path / "q.onnx", dense, qdq_zero_point=0))
    assert symmetric.int8_requested and symmetric.nonzero_zero_points == ()
    asymmetric = onnx_facts(_gemm_model(tmp_path / "qa.onnx", dense, qdq_zero_point=3))
    assert len(asymmetric.nonzero_zero_points) == 2


def test_build_flags_follow_the_options_the_artifact_and_the_batch(tmp_path):
    dense = onnx_facts(_gemm_model(tmp_path / "dense.onnx", np.ones((4, 8), dtype=np.float32)))
    weights = np.ones((4, 8), dtype=np.float32)
    weights[:, ::2] = 0
    sparse = onnx_facts(_gemm_model(tmp_path / "sparse.onnx", weights))
    flags = build_flags({"max_batch_size": 64}, sparse, {"x": (8, 8)})
    assert (flags.min_batch, flags.opt_batch, flags.max_batch) == (1, 8, 64)
    assert flags.sparse_weights and flags.precision == "model"
    assert flags.shapes("x") == ((1, 8), (8, 8), (64, 8))
    assert not build_flags({}, dense, {"x": (1, 8)}).sparse_weights
    assert not build_flags({"sparsity": "dense"}, sparse, {"x": (1, 8)}).sparse_weights
    assert build_flags({"max_batch_size": 4}, dense, {"x": (16, 8)}).max_batch == 16
    with pytest.raises(SpeedproofError, match='precision = \'int8\'; valid: "model", "fp16"'):
        build_flags({"precision": "int8"}, dense, {"x": (1, 8)})


def test_the_engine_cache_key_changes_with_everything_that_changes_the_engine(tmp_path):
    facts = onnx_facts(_gemm_model(tmp_path / "dense.onnx", np.ones((4, 8), dtype=np.float32)))
    flags = build_flags({}, facts, {"x": (1, 8)})
    key = engine_cache_key("a" * 64, "10.13.0", "NVIDIA H100 sm_90", flags)
    assert key == engine_cache_key("a" * 64, "10.13.0", "NVIDIA H100 sm_90", flags)
    others = {
        engine_cache_key("b" * 64, "10.13.0", "NVIDIA H100 sm_90", flags),
        engine_cache_key("a" * 64, "11.4.0", "NVIDIA H100 sm_90", flags),
        engine_cache_key("a" * 64, "10.13.0", "NVIDIA A100 sm_80", flags),
        engine_cache_key("a" * 64, "10.13.0", "NVIDIA H100 sm_90", build_flags({}, facts, {"x": (8, 8)})),
        engine_cache_key(
            "a" * 64, "10.13.0", "NVIDIA H100 sm_90", build_flags({"precision": "fp16"}, facts, {"x": (1, 8)})
        ),
    }
    assert key not in others and len(others) == 5


def _tensorrt_importable():
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(_tensorrt_importable(), reason="TensorRT is installed here")
def test_a_host_without_tensorrt_says_what_to_install(tiny_conv_onnx, tmp_path, capsys):
    from harness.cli import EXIT_USAGE, main
    from targets.backends.tensorrt.runner import tensorrt_unavailable_reason

    assert tensorrt_unavailable_reason({}) == "TensorRT is not installed: pip install 'speedproof[trt]'"
    assert main(["targets", "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)["targets"]}
    (tensorrt,) = [backend for backend in listed["cuda-gpu"]["backends"] if backend["name"] == "tensorrt"]
    assert any("pip install 'speedproof[trt]'" in reason for reason in tensorrt["reasons"])
    code = main(["bench", str(tiny_conv_onnx), "--target", "cuda-gpu", "--backend", "tensorrt", "--out", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "pip install 'speedproof[trt]'" in capsys.readouterr().err


@pytest.mark.skipif(_tensorrt_importable(), reason="TensorRT is installed here")
def test_a_gate_that_asks_for_tensorrt_on_a_host_without_it_is_skipped_with_the_reason(tmp_path):
    from harness.cli import main
    from tests.helpers import TINY_CNN

    gate = tmp_path / "speedproof.toml"
    gate.write_text(
        f'[[check]]\nmodel = "{TINY_CNN}"\nrecipes = ["fp16"]\ntargets = ["cuda-gpu"]\nbackend = "tensorrt"\n'
    )
    out = tmp_path / "results"
    assert main(["gate", "--config", str(gate), "--out", str(out), "--require-all-targets"]) == 1
    record = json.loads(sorted(out.glob("*.json"))[-1].read_text())
    (skip,) = record["gate"]["skipped"]
    assert "backend tensorrt: TensorRT is not installed: pip install 'speedproof[trt]'" in skip["reason"]
    assert any("--require-all-targets" in failure for failure in record["gate"]["failures"])


# on a CUDA host with TensorRT -------------------------------------------------------------------
def _run_engine(path, batch, options=None):
    from targets.backends.tensorrt.runner import TensorRTRunner

    with TensorRTRunner(str(path), 1, options or {}) as runner:
        (metadata,) = runner.get_input_metadata()
        shape = (batch, *[dim if isinstance(dim, int) else 1 for dim in metadata.shape[1:]])
        feed = {metadata.name: np.random.default_rng(0).standard_normal(shape).astype(metadata.dtype)}
        outputs = runner.infer(feed)
        runner.synchronize()
        elapsed = runner.device_elapsed_ns()
        return runner.outputs_as_numpy(outputs)[0], elapsed, runner.runtime_facts()["tensorrt"], runner.actual_provider


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["conv", "transformer"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_an_engine_is_built_run_and_inspected_on_the_gpu(model, precision, tiny_conv_onnx, tmp_path, monkeypatch):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed: pip install 'speedproof[trt]'")
    import torch

    from exporters.onnx_transforms import convert_fp16, quantize_int8_static
    from exporters.torch_to_onnx import export_to_onnx
    from tests.tiny_models import tiny_torch_transformer

    monkeypatch.setenv("SPEEDPROOF_ENGINE_CACHE", str(tmp_path / "engines"))
    if model == "conv":
        path, shape = tiny_conv_onnx, (2, 3, 16, 16)
    else:
        transformer = tiny_torch_transformer()
        path = export_to_onnx(transformer.module, list(transformer.example_inputs), tmp_path / "transformer.onnx")
        shape = tuple(transformer.example_inputs[0].shape)
    if precision == "fp16":
        path = convert_fp16(path, tmp_path / "fp16.onnx")
    elif precision == "int8":
        feeds = [{"input": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)} for seed in range(8)]
        name = onnx.load(str(path)).graph.input[0].name
        feeds = [{name: feed["input"]} for feed in feeds]
        path = quantize_int8_static(path, tmp_path / "int8.onnx", feeds, per_channel=True, symmetric=True)
    output, elapsed, facts, provider = _run_engine(path, batch=shape[0])
    assert provider.startswith("tensorrt ") and elapsed > 0 and np.all(np.isfinite(output))
    assert facts["engine"]["source"] == "built" and facts["detailed"] and facts["layers"]
    assert facts["int8"]["requested"] == (precision == "int8")
    if precision == "int8":
        assert facts["int8"]["int8_layers"] >= 1
    _, _, again, _ = _run_engine(path, batch=shape[0])
    assert again["engine"]["source"] == "cache" and again["engine"]["cache_key"] == facts["engine"]["cache_key"]
    del torch


@pytest.mark.gpu
def test_a_two_four_model_enables_sparse_weights_and_says_which_layers_ran_sparse(tmp_path, monkeypatch):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed: pip install 'speedproof[trt]'")
    import torch

    from exporters.onnx_transforms import convert_fp16
    from exporters.torch_to_onnx import export_to_onnx
    from harness.recipes.pruning import apply_semi_structured_masks, make_pruning_permanent

    monkeypatch.setenv("SPEEDPROOF_ENGINE_CACHE", str(tmp_path / "engines"))
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024)).eval()
    apply_semi_structured_masks(module)
    make_pruning_permanent(module)
    path = convert_fp16(
        export_to_onnx(module, [torch.randn(64, 1024)], tmp_path / "two_four.onnx"), tmp_path / "f.onnx"
    )
    assert len(onnx_facts(path).two_four_layers) == 2
    _, _, facts, _ = _run_engine(path, batch=64)
    assert facts["sparsity"]["requested"] and facts["sparsity"]["eligible_layers"] >= 1
    assert isinstance(facts["sparsity"]["sparse_layers"], list)  # which ones TensorRT picked is its choice


def test_int8_static_symmetric_gives_the_zero_points_tensorrt_needs(tiny_conv_onnx, tmp_path):
    from exporters.onnx_transforms import quantize_int8_static

    name = onnx.load(str(tiny_conv_onnx)).graph.input[0].name
    feeds = [{name: np.random.default_rng(seed).random((2, 3, 16, 16)).astype(np.float32)} for seed in range(4)]
    asymmetric = quantize_int8_static(tiny_conv_onnx, tmp_path / "a.onnx", feeds, per_channel=False)
    symmetric = quantize_int8_static(tiny_conv_onnx, tmp_path / "s.onnx", feeds, per_channel=False, symmetric=True)
    assert onnx_facts(asymmetric).nonzero_zero_points  # inputs in [0, 1): MinMax puts the zero point off 0
    facts = onnx_facts(symmetric)
    assert facts.int8_requested and facts.nonzero_zero_points == ()
