"""Bad input, careless or hostile: every case ends with exit 2 and a message that names the option
or file and what would be valid, before anything is measured, and never with a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from harness.cli import main
from harness.records.store import write_record
from tests.faults.conftest import usage_error
from tests.helpers import BASELINE_CELL, minimal_record

NOT_UTF8 = b"[policy]\nmin_speedup = 1.2 # caf\xe9 \xff\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--recipes", ""], "recipe list '' has an empty item"),
        (["--recipes", ","], "recipe list ',' has an empty item"),
        (["--recipes", "identity,,structured:0.5"], "has an empty item"),
        (["--recipes", "baseline"], "nothing to verify"),
        (["--recipes", "identity", "--min-speedup", "nan"], "--min-speedup: expected a finite number, got 'nan'"),
        (["--recipes", "identity", "--min-speedup=-inf"], "expected a finite number, got '-inf'"),
        (["--recipes", "identity", "--max-pair-duration-s", "inf"], "expected a finite number, got 'inf'"),
        (["--recipes", "identity", "--burst-duration-s", "nan"], "expected a finite number"),
        (["--recipes", "identity", "--confidence", "1.5"], "confidence = 1.5; must lie in [0.5, 1)"),
        (["--recipes", "identity", "--min-pairs", "1"], "min_pairs = 1; must be >= 2"),
        (["--recipes", "identity", "--min-span-s", "nan"], "--min-span-s: expected a finite number, got 'nan'"),
        (["--recipes", "identity", "--min-span-s=-1"], "min_span_s = -1.0; must be >= 0 (0 = off)"),
    ],
)
def test_verify_options(tiny_conv_onnx, tmp_path, capsys, options, message):
    err = usage_error(["verify", str(tiny_conv_onnx), *options, "--out", str(tmp_path)], capsys)
    assert message in err
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-duration-s", "nan"], "expected a finite number, got 'nan'"),
        (["--max-duration-s", "inf"], "expected a finite number, got 'inf'"),
        (["--min-duration-s", "1e309"], "expected a finite number"),
        (["--load-allowance-s", "-1"], "--load-allowance-s must be >= 0"),
        (["--batch", "1,1"], "batch size 1 given twice in '1,1'"),
        (["--batch", "1,,8"], "'1,,8' has an empty item"),
        (["--batch", "0"], "batch sizes must be positive integers"),
        (["--recipes", "structured:1.5"], "structured"),
        (["--recipes", "nonsense"], "unknown recipe"),
        (["--recipes", "drop-layers:nan"], "drop-layers must be a whole number, at least 1, got 'nan'"),
        (["--recipes", "drop-layers:1e309"], "drop-layers must be a whole number, at least 1, got '1e309'"),
        (["--recipes", "drop-layers:-2"], "drop-layers must be a whole number"),
        (["--recipes", "structured:0.5:steps=100000"], "steps must be at least 1 and at most 50, got '100000'"),
        (["--recipes", "structured:0.5:steps=2.5"], "steps must be an integer, got '2.5'"),
        (["--recipes", "structured:0.5:finetune=1:distill=true:temperature=nan"], "temperature must be at least 0.1"),
        (["--recipes", "structured:0.5:finetune=1:distill=true:temperature=inf"], "at most 100"),
        (["--recipes", "structured:0.5:finetune=1:distill=true:alpha=-0.1"], "alpha must be at least 0"),
        (["--recipes", "structured:0.5:finetune=1:distill=maybe"], "distill must be true or false"),
        (["--recipes", "int4-weight:block_size=16"], "block_size must be one of 32, 64, 128"),
        (["--recipes", "int4-weight:accuracy_level=9"], "accuracy_level must be one of 0, 1, 2, 3, 4"),
        (["--threads", "0"], "expected a positive integer"),
        (["--input-shape", "input=1xAx3"], "input-shape"),
    ],
)
def test_bench_options(tiny_conv_onnx, tmp_path, capsys, options, message):
    err = usage_error(["bench", str(tiny_conv_onnx), *options, "--out", str(tmp_path)], capsys)
    assert message in err
    assert not list(tmp_path.glob("*.json"))


def test_a_first_dim_that_is_not_the_batch_is_mentioned(tiny_conv_onnx, tmp_path, capsys):
    args = ["bench", str(tiny_conv_onnx), "--batch", "1", "--input-shape", "100000x3x16x16", "--out", str(tmp_path)]
    main([*args, "--min-iterations", "5", "--min-duration-s", "0.02"])
    assert "note: --input-shape 100000x3x16x16: the first dim is the batch" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["policy", "config", "profile"])
def test_files_that_are_not_utf8(tiny_conv_onnx, tmp_path, capsys, kind):
    path = tmp_path / f"{kind}.toml"
    path.write_bytes(NOT_UTF8)
    args = {
        "policy": ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--policy", str(path)],
        "config": ["gate", "--config", str(path)],
        "profile": ["bench", str(tiny_conv_onnx), "--target", str(path)],
    }[kind]
    err = usage_error([*args, "--out", str(tmp_path / "out")], capsys)
    assert f"{path}: not UTF-8 text" in err


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("min_speedup = nan", "min_speedup = nan; must be a finite number"),
        ("max_pair_duration_s = inf", "max_pair_duration_s = inf; must be a finite number"),
        ("burst_duration_s = -inf", "must be a finite number"),
        ("min_span_s = inf", "min_span_s = inf; must be a finite number"),
        ("min_span_s = -3", "min_span_s = -3.0; must be >= 0"),
        ("min_span_s = 'long'", "policy.min_span_s = 'long' has the wrong type"),
        ("min_speedup = 'fast'", "policy.min_speedup = 'fast' has the wrong type"),
        ("min_speedep = 1.2", 'did you mean "min_speedup"'),
    ],
)
def test_policy_files(tiny_conv_onnx, tmp_path, capsys, policy, message):
    path = tmp_path / "policy.toml"
    path.write_text(f"[policy]\n{policy}\n")
    err = usage_error(["verify", str(tiny_conv_onnx), "--recipes", "identity", "--policy", str(path)], capsys)
    assert message in err and str(path) in err


def _valid_record() -> dict:
    return minimal_record(dict(BASELINE_CELL))


DAMAGED_RECORDS = {
    "only a version": ({"schema_version": 2}, "damaged record:  has no 'run_id'"),
    "cells not a list": ({**_valid_record(), "cells": {"a": 1}}, "cells is {'a': 1}; expected a list"),
    "cell not an object": ({**_valid_record(), "cells": [3]}, "cells[0] is 3; expected an object"),
    "cell missing keys": ({**_valid_record(), "cells": [{"model": "m"}]}, "cells[0]. has no 'variant'"),
    "unknown status": (
        {**_valid_record(), "cells": [{**_valid_record()["cells"][0], "status": "great"}]},
        "cells[0].status is 'great'",
    ),
    "verdict not an object": (
        {**_valid_record(), "cells": [{**_valid_record()["cells"][0], "verdict": "ACCEPT"}]},
        "cells[0].verdict is 'ACCEPT'; expected an object",
    ),
    "variants without recipes": ({**_valid_record(), "variants": [{}]}, "variants[0] has no recipe string"),
    "newer schema": ({**_valid_record(), "schema_version": 99}, "newer than this speedproof"),
    "no schema": ({"cells": []}, "no integer schema_version"),
    "a list": ([1, 2], "top level is not an object"),
}


@pytest.mark.parametrize("case", list(DAMAGED_RECORDS))
@pytest.mark.parametrize("report_format", ["table", "html"])
def test_damaged_records(tmp_path, capsys, case, report_format):
    data, message = DAMAGED_RECORDS[case]
    path = tmp_path / "record.json"
    path.write_text(json.dumps(data))
    err = usage_error(["report", str(path), "--format", report_format], capsys)
    assert str(path) in err and message.replace("  ", " ") in err.replace("  ", " ")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "not valid JSON"), (b"[" * 100000, "not valid JSON"), (b"\xff\xfe", "not UTF-8")],
)
def test_unreadable_records(tmp_path, capsys, content, message):
    path = tmp_path / "record.json"
    path.write_bytes(content)
    assert message in usage_error(["report", str(path)], capsys)


def test_a_record_missing_deeper_parts_is_damaged_not_a_traceback(tmp_path, capsys):
    record = _valid_record()
    record["command"] = "verify"
    record["cells"].append({**record["cells"][0], "variant": "identity", "verdict": {"reasons": "?"}})
    path = write_record(record, tmp_path)
    assert f"{path}: damaged record" in usage_error(["report", str(path)], capsys)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "model"),
        (b"\x08\x07garbage that is not a protobuf" * 3, "model"),
        (None, "is a folder"),
    ],
)
def test_bad_onnx_files(tmp_path, capsys, content, message):
    path = tmp_path / "model.onnx"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    err = usage_error(["bench", str(path), "--out", str(tmp_path / "out")], capsys)
    assert str(path) in err


def test_external_data_outside_the_model_folder_is_refused(tiny_conv_onnx, tmp_path, capsys):
    model = onnx.load(str(tiny_conv_onnx))
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    initializer = model.graph.initializer[0]
    initializer.data_location = onnx.TensorProto.EXTERNAL
    del initializer.external_data[:]
    initializer.external_data.add(key="location", value="../secret.bin")
    initializer.ClearField("raw_data")
    path = folder / "escaping.onnx"
    path.write_bytes(model.SerializeToString())
    err = usage_error(["bench", str(path), "--out", str(tmp_path / "out")], capsys)
    assert "secret.bin" in err or "outside" in err


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pt2"])
def test_pickled_torch_files_are_never_loaded(tmp_path, capsys, suffix):
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(b"\x80\x04crashing pickle")
    error = usage_error(["bench", str(path), "--out", str(tmp_path / "out")], capsys)
    if suffix == ".pt2":  # a torch.export program source: checked as a program, never unpickled
        assert f"{path}: not a torch.export program torch can load" in error
    else:
        assert "pickled torch files are not a model source" in error


def test_gate_config_unknown_keys_and_types(tmp_path, capsys):
    path = tmp_path / "gate.toml"
    path.write_text('[[check]]\nmodel = "resnet18"\nrecipes = "structured:0.5"\n')
    assert "check[0].recipes must be a list of strings" in usage_error(["gate", "--config", str(path)], capsys)
    path.write_text('[[check]]\nmodel = "resnet18"\nrecipe = ["structured:0.5"]\n')
    assert 'did you mean "recipes"' in usage_error(["gate", "--config", str(path)], capsys)
    path.write_text('[[check]]\nmodel = "resnet18"\nrecipes = ["baseline"]\n')
    assert "nothing to verify" in usage_error(["gate", "--config", str(Path(path))], capsys)
