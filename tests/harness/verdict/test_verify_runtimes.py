"""verify over two runtimes in one run (--backend onnxruntime,openvino): each variant judged against the
baseline on its own runtime, the baselines A/B across runtimes, quality evaluated on each runtime, and the
tables and lines that say where a compression pays. Real ONNX Runtime and OpenVINO workers."""

import pytest

pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install 'speedproof[openvino]'")

from harness.cli import main  # noqa: E402
from harness.reports.table import record_text  # noqa: E402
from harness.verdict.verify import VerifyRequest, run_verify  # noqa: E402
from tests.helpers import (  # noqa: E402
    FAST_POLICY,
    FAST_POLICY_FLAGS,
    FAST_PROTOCOL,
    TINY_CNN,
)

pytestmark = pytest.mark.slow


def _verify_int8_on(backend: str, out_dir) -> dict:
    request = VerifyRequest(
        model=TINY_CNN,
        recipes=("int8-static",),
        backend=backend,
        threads=1,
        policy_overrides=FAST_POLICY,
        protocol=FAST_PROTOCOL,
        out_dir=out_dir,
    )
    return run_verify(request)[0]


@pytest.fixture(scope="module")
def on_two_runtimes(tmp_path_factory):
    return _verify_int8_on("onnxruntime,openvino", tmp_path_factory.mktemp("runtimes"))


def test_every_variant_gets_a_verdict_on_each_runtime_against_that_runtimes_baseline(on_two_runtimes):
    cells = [(cell["backend"], cell["variant"]) for cell in on_two_runtimes["cells"]]
    assert cells == [
        ("onnxruntime", "baseline"),
        ("onnxruntime", "int8-static"),
        ("openvino", "baseline"),
        ("openvino", "int8-static"),
    ]
    for cell in on_two_runtimes["cells"]:
        assert cell["status"] == "ok", cell["error"]
        if not cell.get("reference"):
            assert cell["verdict"]["decision"] in ("ACCEPT", "REJECT") and cell["speedup"]["ratio"] > 0
            assert cell["ab"]["baseline"]["provider"] == cell["provider"]  # both sides on the same runtime
    providers = {cell["backend"]: cell["provider"] for cell in on_two_runtimes["cells"] if not cell.get("reference")}
    assert providers == {"onnxruntime": "CPUExecutionProvider", "openvino": "openvino-CPU"}


def test_the_baselines_are_ab_measured_across_runtimes(on_two_runtimes):
    first, second = (cell for cell in on_two_runtimes["cells"] if cell.get("reference"))
    assert "runtime_switch" not in first
    switch = second["runtime_switch"]
    assert (switch["from_backend"], switch["to_backend"]) == ("onnxruntime", "openvino")
    speedup = switch["speedup"]
    assert speedup["ci_low"] <= speedup["ratio"] <= speedup["ci_high"] and switch["pairs"] >= 1


def test_quality_is_evaluated_on_each_runtime(on_two_runtimes):
    quality = {(cell["backend"], cell["variant"]): cell["quality"] for cell in on_two_runtimes["cells"]}
    for backend in ("onnxruntime", "openvino"):
        assert quality[(backend, "baseline")]["metric"] == "accuracy"
        assert quality[(backend, "int8-static")]["samples"] == quality[(backend, "baseline")]["samples"]
    # the float baseline computes the same on both runtimes
    assert quality[("openvino", "baseline")]["accuracy"] == pytest.approx(
        quality[("onnxruntime", "baseline")]["accuracy"], abs=0.02
    )


def test_the_table_has_one_section_per_runtime_and_a_line_per_variant_saying_where_it_pays(on_two_runtimes):
    text = record_text(on_two_runtimes)
    assert "on onnxruntime:" in text and "on openvino:" in text
    assert "where each variant pays" in text
    assert "tiny_cnn baseline on openvino vs on onnxruntime: " in text
    line = next(line for line in text.splitlines() if line.strip().startswith("tiny_cnn int8-static:"))
    assert " on onnxruntime " in line and " on openvino " in line
    assert "int8-static on openvino" in text  # notes name the runtime
    # the build's warning is the variant's, the same on both runtimes: said once
    calibration = [line for line in text.splitlines() if "calibration samples" in line]
    assert calibration and len(calibration) == 1 and calibration[0].startswith("warning tiny_cnn int8-static: ")


def test_the_command_line_takes_a_list_and_refuses_the_same_backend_twice(tmp_path, capsys):
    code = main(
        [
            "verify",
            TINY_CNN,
            "--recipes",
            "structured:0.5",
            "--backend",
            "onnxruntime,onnxruntime:graph_optimization_level=basic",
            "--out",
            str(tmp_path),
            *FAST_POLICY_FLAGS,
        ]
    )
    assert code == 2
    assert "names onnxruntime more than once" in capsys.readouterr().err


def test_search_measures_on_one_backend_and_says_so(tmp_path, capsys):
    code = main(["search", TINY_CNN, "--backend", "onnxruntime,openvino", "--out", str(tmp_path), "--budget-s", "60"])
    assert code == 2
    assert "speedproof search measures on one backend" in capsys.readouterr().err


def test_an_int8_variant_that_runs_in_float_on_one_runtime_is_fell_back_there_and_measured_on_the_other(tmp_path):
    record = _verify_int8_on("onnxruntime,openvino:low_precision=off", tmp_path)
    cells = {(cell["backend"], cell["variant"]): cell for cell in record["cells"]}
    assert cells[("onnxruntime", "int8-static")]["status"] == "ok"
    assert cells[("openvino", "baseline")]["status"] == "ok"  # a float model has nothing to fall back from
    fell_back = cells[("openvino", "int8-static")]["verdict"]
    assert fell_back["decision"] == "REJECT" and [reason["code"] for reason in fell_back["reasons"]] == ["FELL_BACK"]
    message = fell_back["reasons"][0]["message"]
    assert message.startswith("openvino could not run 'int8-static': openvino fell back: ")
    assert "quantized layers ran in float on OpenVINO: " in message and "(Convolution, f32)" in message
