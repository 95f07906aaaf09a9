"""The Python API used directly, as a notebook would: real variants, a real candidate made with ONNX
Runtime's quantizer, real live workers; typed results, errors as exceptions, progress as a callback."""

import ast
import json
from pathlib import Path

import pytest

import harness
from harness import (
    Cell,
    ConfigurationError,
    InputError,
    Result,
    SpeedproofError,
    UsageError,
    bench,
    build_variants,
    load_record,
    verify,
)
from harness.measure.speedup import SpeedupEstimate
from harness.verdict.reasons import Decision, Verdict
from tests.helpers import FAST_POLICY, TINY_CNN


@pytest.fixture(scope="module")
def int8_candidate(tiny_conv_onnx, tmp_path_factory):
    """A model compressed elsewhere: ONNX Runtime's dynamic quantizer on the baseline file."""
    from onnxruntime.quantization import quantize_dynamic

    path = tmp_path_factory.mktemp("candidate") / "conv_int8.onnx"
    quantize_dynamic(str(tiny_conv_onnx), str(path))
    return path


@pytest.fixture(scope="module")
def verified(tiny_conv_onnx, int8_candidate, tmp_path_factory):
    lines = []
    result = verify(
        str(tiny_conv_onnx),
        recipes=["identity"],
        candidates={"int8-ort": int8_candidate},
        threads=1,
        out=tmp_path_factory.mktemp("verify"),
        progress=lines.append,
        **FAST_POLICY,
    )
    return result, lines


def test_verify_returns_typed_verdicts_for_a_recipe_and_a_candidate(verified):
    result, _ = verified
    assert isinstance(result, Result) and result.command == "verify" and result.target == "x86-cpu"
    assert [cell.variant for cell in result.cells] == ["baseline", "identity", "int8-ort"]
    assert [cell.variant for cell in result.verdicts] == ["identity", "int8-ort"]
    baseline = result.cells[0]
    assert baseline.reference and baseline.verdict is None and baseline.status == "ok"
    for cell in result.verdicts:
        assert isinstance(cell, Cell) and isinstance(cell.verdict, Verdict) and cell.status == "ok", cell.error
        assert isinstance(cell.speedup, SpeedupEstimate)
        assert cell.speedup.ci_low <= cell.speedup.ratio <= cell.speedup.ci_high
        assert cell.verdict.decision in (Decision.ACCEPT, Decision.REJECT)
        assert cell.accepted == (cell.verdict.decision == Decision.ACCEPT)
    # identity is a copy of the baseline: never a real speedup
    assert result.verdict_of("identity").decision == Decision.REJECT
    assert result.verdict_of("no such variant") is None
    assert sorted(cell.variant for cell in (*result.accepted(), *result.rejected())) == ["identity", "int8-ort"]
    assert result.all_accepted() is False and result.failed() == ()


def test_the_result_is_the_record_written_and_load_record_reads_it_back(verified):
    result, _ = verified
    assert result.path is not None and result.path.is_file()
    assert json.loads(result.path.read_text()) == result.record
    again = load_record(result.path)
    assert again.cells == result.cells and again.run_id == result.run_id and again.path == result.path
    assert again.verdict_of("int8-ort") == result.verdict_of("int8-ort")


def test_progress_lines_go_to_the_callback(verified):
    _, lines = verified
    assert lines and all(isinstance(line, str) for line in lines)
    assert any("identity" in line for line in lines) and any("int8-ort" in line for line in lines)


def test_bench_and_variants_return_cells_and_artifacts(tiny_conv_onnx, tmp_path):
    measured = bench(
        str(tiny_conv_onnx),
        batch_sizes=[1],
        threads=1,
        out=tmp_path,
        min_iterations=5,
        min_duration_s=0.02,
        warmup_min_iterations=2,
        warmup_min_duration_s=0.0,
    )
    assert [cell.variant for cell in measured.cells] == ["baseline"] and measured.failed() == ()
    cell = measured.cells[0]
    assert cell.verdict is None and cell.latency_ms["p50"] <= cell.latency_ms["p99"]
    assert cell.raw["iterations"] >= 5
    built = build_variants(TINY_CNN, recipes="structured:0.5", threads=1, out=tmp_path)
    assert [variant["recipe"] for variant in built.variants] == ["baseline", "structured:0.5"]
    assert built.cells == () and built.command == "variants"


def test_inputs_take_the_cli_forms_or_mappings():
    from harness.api import _candidates, _texts

    assert _texts("input_shapes", (1, 3, 16, 16), shapes=True) == ("1x3x16x16",)
    assert _texts("input_shapes", {"x": (1, 8), "y": "2x4"}, shapes=True) == ("x=1x8", "y=2x4")
    assert _texts("input_shapes", ["x=1x8", (2, 4)], shapes=True) == ("x=1x8", "2x4")
    assert _texts("input_values", {"sr": 16000}) == ("sr=16000",)
    assert _texts("batch_axes", "state=1") == ("state=1",)
    assert _candidates({"int8": Path("m.onnx")}) == ("m.onnx=int8",)
    assert _candidates(Path("m.onnx")) == ("m.onnx",)
    with pytest.raises(UsageError, match="expected strings"):
        _texts("batch_axes", [1, 2])


def test_errors_are_exceptions_of_the_kind_that_says_whose_move_it_is(tiny_conv_onnx, tmp_path):
    with pytest.raises(UsageError, match="unknown recipe"):
        verify(str(tiny_conv_onnx), recipes=["nonsense:0.5"], out=tmp_path)
    with pytest.raises(UsageError, match='unexpected keyword argument .min_sped.*did you mean "min_speedup"'):
        verify(str(tiny_conv_onnx), recipes=["identity"], out=tmp_path, min_sped=1.2)
    with pytest.raises(UsageError, match="min_speedup"):
        verify(str(tiny_conv_onnx), recipes=["identity"], out=tmp_path, min_speedup="fast")
    with pytest.raises(UsageError, match="protocol keywords"):
        bench(str(tiny_conv_onnx), out=tmp_path, min_iteration=3)
    profile = tmp_path / "broken.toml"
    profile.write_text('name = "broken"\nisa = "x86_64"\nbogus = 1\n')
    with pytest.raises(ConfigurationError, match="broken.toml"):
        verify(str(tiny_conv_onnx), recipes=["identity"], target=str(profile), out=tmp_path)
    with pytest.raises(InputError, match="missing.npz"):
        verify(str(tiny_conv_onnx), recipes=["identity"], data=tmp_path / "missing.npz", out=tmp_path)
    not_a_record = tmp_path / "notes.json"
    not_a_record.write_text("[1, 2]")
    with pytest.raises(InputError, match="notes.json"):
        load_record(not_a_record)
    for kind in (UsageError, ConfigurationError, InputError):
        assert issubclass(kind, SpeedproofError)


def test_a_record_part_a_later_version_wrote_is_an_input_error_when_read(verified, tmp_path):
    result, _ = verified
    record = json.loads(result.path.read_text())
    record["cells"][1]["verdict"]["reasons"] = [{"code": "FROM_THE_FUTURE", "message": "?"}]
    path = tmp_path / "later.json"
    path.write_text(json.dumps(record))
    loaded = load_record(path)  # the record itself loads; its cells are read when asked for
    with pytest.raises(InputError, match=r"later.json: cells\[1\]"):
        loaded.cells  # noqa: B018


def test_harness_exports_the_api_and_imports_it_only_when_asked():
    """Even once the packages harness.variants and harness.search are imported, the names harness
    exports are the API's functions."""
    import subprocess
    import sys

    assert {
        "bench",
        "verify",
        "compare",
        "gate",
        "search_recipes",
        "sensitivity",
        "build_variants",
        "load_record",
    } <= set(harness.__all__)
    code = (
        "import sys, harness\nprint('harness.api' in sys.modules)\nharness.verify\nprint('harness.api' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["False", "True"]
    import importlib

    importlib.import_module("harness.search.job")
    importlib.import_module("harness.variants.job")

    for name in harness.__all__:
        assert getattr(harness, name) is not None and not isinstance(getattr(harness, name), type(harness)), name
    with pytest.raises(AttributeError, match="no attribute 'veriffy'"):
        harness.veriffy  # noqa: B018


def test_every_job_command_is_one_api_call_between_parsing_and_printing():
    """The commands that run a job call harness.api and no job module's run_* themselves."""
    folder = Path(harness.__file__).parent / "commands"
    for name in ("bench", "variants", "verify", "compare", "gate", "search", "sensitivity", "report"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        run = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "run")
        calls = [
            node.func.attr
            for node in ast.walk(run)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "api"
        ]
        assert len(calls) == 1, f"{name}.run calls the API {calls}"
        imported = {alias.name for node in ast.walk(run) if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert not {item for item in imported if item.startswith("run_")}, f"{name}.run calls a job itself"
