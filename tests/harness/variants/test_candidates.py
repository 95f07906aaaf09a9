"""Candidates: compressed files the user made elsewhere, here by ONNX Runtime's own quantizer and
float16 converter called directly (not speedproof's recipe code), measured and judged beside the
baseline like a built variant, with their interface checked before anything is measured."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from harness.cli import EXIT_USAGE, main
from harness.verdict.reasons import Decision, NextStep, ReasonCode, next_step_for
from tests.helpers import FAST_FLAGS, FAST_POLICY_FLAGS, make_onnx_model


@pytest.fixture(scope="module")
def third_party_candidates(tiny_conv_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An int8 file from onnxruntime.quantization.quantize_dynamic and a float16 one from
    onnxruntime.transformers.float16, as a user would make them in a script."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static
    from onnxruntime.transformers.float16 import convert_float_to_float16

    folder = tmp_path_factory.mktemp("candidates")
    int8 = folder / "tiny_int8.onnx"
    quantize_dynamic(str(tiny_conv_onnx), str(int8), weight_type=QuantType.QInt8)
    fp16 = folder / "tiny_fp16.onnx"
    # saved as the converter leaves it: its input casts after their users (ONNX Runtime sorts on load)
    onnx.save(convert_float_to_float16(onnx.load(str(tiny_conv_onnx)), keep_io_types=True), str(fp16))
    static = folder / "tiny_int8_static.onnx"
    quantize_static(str(tiny_conv_onnx), str(static), _Calibration(onnx.load(str(tiny_conv_onnx)).graph.input[0].name))
    # a graph simplifier's output (ONNX Runtime's own optimizer, saved): another file, the same computation
    simplified = folder / "tiny_simplified.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(simplified)
    ort.InferenceSession(str(tiny_conv_onnx), options, providers=["CPUExecutionProvider"])
    return {"int8": int8, "fp16": fp16, "static": static, "simplified": simplified}


class _Calibration:
    """onnxruntime.quantization's CalibrationDataReader protocol: feed dicts, then None."""

    def __init__(self, name: str) -> None:
        import numpy as np

        rng = np.random.default_rng(0)
        self.feeds = iter([{name: rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

    def get_next(self):
        return next(self.feeds, None)


def variants_of(record: dict) -> dict[str, dict]:
    return {variant["recipe"]: variant for variant in record["variants"]}


def _verify(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(["verify", *args, *FAST_POLICY_FLAGS])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.serial  # its verdicts rest on measured speed
def test_candidates_are_judged_beside_the_baseline(tiny_conv_onnx, third_party_candidates, tmp_path, capsys):
    args = [
        str(tiny_conv_onnx),
        "--candidate",
        f"{third_party_candidates['int8']}=int8-ort",
        "--candidate",
        str(third_party_candidates["fp16"]),
        "--candidate",
        f"{tiny_conv_onnx}=same-file",
        "--candidate",
        f"{third_party_candidates['static']}=int8-static-ort",
        "--candidate",
        f"{third_party_candidates['simplified']}=simplified",
        "--out",
        str(tmp_path),
        "--json",
    ]
    code, err = _verify(args, capsys)
    assert code in (0, 1), err
    [path] = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    cells = {cell["variant"]: cell for cell in record["cells"]}
    assert set(cells) == {"baseline", "int8-ort", "tiny_fp16.onnx", "same-file", "int8-static-ort", "simplified"}
    assert "QuantizeLinear" in cells["int8-static-ort"]["artifact"]["op_histogram"]  # QDQ, its default format
    # the simplified graph is another file computing the same thing: an identity-like control, never accepted
    simplified = cells["simplified"]
    assert not variants_of(record)["simplified"]["candidate"]["same_as_baseline"]
    assert simplified["verdict"]["decision"] == "REJECT" and simplified["quality"]["mean_cosine"] > 0.9999
    assert {reason["code"] for reason in simplified["verdict"]["reasons"]} & {
        "NO_REAL_SPEEDUP",
        "INCONCLUSIVE",
        "SLOWER",
    }
    variants = {variant["recipe"]: variant for variant in record["variants"]}
    int8 = variants["int8-ort"]["candidate"]
    assert int8["producer_name"] == "onnx.quantize" and int8["path"] == str(third_party_candidates["int8"].resolve())
    assert int8["sha256"] == cells["int8-ort"]["artifact"]["sha256"] and not int8["same_as_baseline"]
    # the kept copy is what was measured, beside the record
    kept = Path(cells["int8-ort"]["artifact"]["path"])
    assert kept.is_file() and kept.is_relative_to(Path(record["artifact_dir"]))
    # the baseline's own file is an identity control: never accepted, and said so
    same = cells["same-file"]
    assert variants["same-file"]["candidate"]["same_as_baseline"]
    assert same["verdict"]["decision"] == "REJECT" and any("baseline file itself" in w for w in same["warnings"])
    # the converter's out-of-order nodes are measured as they are, and counted: the same MACs as the baseline
    assert cells["tiny_fp16.onnx"]["artifact"]["macs"] == cells["baseline"]["artifact"]["macs"] > 0
    assert cells["tiny_fp16.onnx"]["artifact"]["weight_dtypes"].get("float16", 0) > 0
    # a float16 copy keeps the outputs: no false FIDELITY_LOW
    assert "FIDELITY_LOW" not in {reason["code"] for reason in cells["tiny_fp16.onnx"]["verdict"]["reasons"]}
    for name in ("int8-ort", "tiny_fp16.onnx", "same-file", "int8-static-ort", "simplified"):
        assert cells[name]["verdict"]["next_step"] in {"keep", "tune", "reject", "remeasure"}


def test_bench_measures_a_candidate(tiny_conv_onnx, third_party_candidates, tmp_path, capsys):
    args = ["bench", str(tiny_conv_onnx), "--candidate", f"{third_party_candidates['int8']}=int8", "--batch", "1"]
    assert main([*args, *FAST_FLAGS, "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    [path] = tmp_path.glob("*.json")
    cells = json.loads(path.read_text())["cells"]
    assert [cell["variant"] for cell in cells] == ["baseline", "int8"]
    assert all(cell["status"] == "ok" for cell in cells)


def _other_interface(folder: Path, name: str, elem_type: int = TensorProto.FLOAT, width: int = 16) -> Path:
    model = make_onnx_model(
        [helper.make_tensor_value_info(name, elem_type, ["N", 3, width, width])],
        [helper.make_node("ReduceMean", [name], ["y"], axes=[2, 3], keepdims=0)],
        [helper.make_tensor_value_info("y", elem_type, ["N", 3])],
    )
    path = folder / f"other-{name}-{elem_type}-{width}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder: _other_interface(folder, "pixels"), "lacks input 'input'"),
        (lambda folder: _other_interface(folder, "input", TensorProto.DOUBLE), "input 'input' is float64, baseline"),
        (lambda folder: _other_interface(folder, "input", width=32), "has shape [N, 3, 32, 32], baseline"),
    ],
)
def test_a_candidate_with_another_interface_is_refused_before_measuring(
    tiny_conv_onnx, tmp_path, capsys, make, message
):
    candidate = make(tmp_path)
    code, err = _verify([str(tiny_conv_onnx), "--candidate", str(candidate), "--out", str(tmp_path / "out")], capsys)
    assert code == EXIT_USAGE and message in err and "Traceback" not in err, err
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_candidate_with_other_outputs_is_refused(tiny_conv_onnx, tmp_path, capsys):
    model = make_onnx_model(
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_node("ReduceMean", ["input"], ["y"], axes=[2, 3], keepdims=0)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    candidate = tmp_path / "three-classes.onnx"
    onnx.save(model, str(candidate))
    code, err = _verify([str(tiny_conv_onnx), "--candidate", str(candidate), "--out", str(tmp_path)], capsys)
    assert code == EXIT_USAGE and "output 0 has shape [N, 3]" in err, err


@pytest.mark.parametrize(
    ("decision", "codes", "step"),
    [
        (Decision.ACCEPT, [], NextStep.KEEP),
        (Decision.REJECT, [ReasonCode.NO_REAL_SPEEDUP], NextStep.REJECT),
        (Decision.REJECT, [ReasonCode.SLOWER, ReasonCode.ACCURACY_DROP], NextStep.REJECT),
        (Decision.REJECT, [ReasonCode.ACCURACY_DROP], NextStep.TUNE),
        (Decision.REJECT, [ReasonCode.FIDELITY_LOW, ReasonCode.MEMORY_GREW], NextStep.TUNE),
        (Decision.REJECT, [ReasonCode.INCONCLUSIVE], NextStep.REMEASURE),
        (Decision.REJECT, [ReasonCode.FAILED], NextStep.REMEASURE),
        (Decision.REJECT, [ReasonCode.MEMORY_EXCEEDED], NextStep.REJECT),
    ],
)
def test_next_step(decision, codes, step):
    assert next_step_for(decision, codes) == step


def _with_rate(path, takes_rate: bool):
    """x [N, 16] -> x * 2 (+ 0 * sr when it takes a scalar sample rate `sr`, as a voice model does)."""
    import numpy as np
    from onnx import numpy_helper

    nodes = [helper.make_node("Mul", ["x", "two"], ["scaled"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])]
    if takes_rate:
        inputs.append(helper.make_tensor_value_info("sr", TensorProto.INT64, []))
        nodes += [
            helper.make_node("Cast", ["sr"], ["rate"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["rate", "zero"], ["nothing"]),
            helper.make_node("Add", ["scaled", "nothing"], ["y"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["scaled"], ["y"]))
    constants = [
        numpy_helper.from_array(np.array(2, np.float32), "two"),
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
    ]
    graph = helper.make_graph(
        nodes, "rate", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])], constants
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_candidate_without_an_input_the_run_fixes_to_a_constant_is_fed_without_it(tmp_path, capsys):
    """The voice model's own 16 kHz-only variant drops `sr`: with --input-value sr=16000 it is measured
    on the same feed less `sr` (it was refused before); without the constant it is still refused."""
    base = _with_rate(tmp_path / "base.onnx", takes_rate=True)
    only_16k = _with_rate(tmp_path / "only16k.onnx", takes_rate=False)
    common = [
        "verify",
        str(base),
        "--candidate",
        f"{only_16k}=only16k",
        *FAST_POLICY_FLAGS,
        "--out",
        str(tmp_path / "o"),
    ]
    main([*common, "--input-value", "sr=16000"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "only16k" in line and "FAILED" not in line)
    assert "cos 1.0000" in row
    assert "FAILED" not in out.split("next step")[0]
    assert main(common) == EXIT_USAGE and "lacks input 'sr'" in capsys.readouterr().err
