"""Candidate files that cannot be measured: missing, truncated, not ONNX at all, pickled torch
files, a label that names another variant. Each is exit 2 naming the candidate, before anything is
measured, and never a traceback."""

from __future__ import annotations

import pytest

from tests.faults.conftest import FAST_VERIFY, usage_error


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder: folder / "missing.onnx", "model file not found"),
        (lambda folder: _written(folder / "truncated.onnx", b"\x08\x07"), "the file is truncated or not an ONNX model"),
        (
            lambda folder: _written(folder / "weights.pt", b"\x80\x04K\x01."),
            "pickled torch files are not a model source",
        ),
        (lambda folder: folder, "--candidate"),
    ],
)
def test_unusable_candidate_files(tiny_conv_onnx, tmp_path, capsys, make, message):
    candidate = make(tmp_path)
    out = tmp_path / "out"
    err = usage_error(
        ["verify", str(tiny_conv_onnx), "--candidate", str(candidate), *FAST_VERIFY, "--out", str(out)], capsys
    )
    assert message in err and str(candidate) in err
    assert not list(out.glob("*.json"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--recipes", "identity", "--candidate", "{model}=identity"], "the label 'identity' already names a recipe"),
        (["--candidate", "{model}=a", "--candidate", "{model}=a"], "already names another candidate"),
        (["--candidate", "{model}=baseline"], "already names the baseline"),
        (["--candidate", "{model}=\x1b[2J"], "must be 1-80 printable characters"),
        ([], "name at least one recipe besides the baseline or a --candidate file"),
    ],
)
def test_candidate_labels_and_nothing_to_verify(tiny_conv_onnx, tmp_path, capsys, options, message):
    filled = [option.format(model=tiny_conv_onnx) for option in options]
    err = usage_error(["verify", str(tiny_conv_onnx), *filled, *FAST_VERIFY, "--out", str(tmp_path)], capsys)
    assert message in err


def _written(path, content: bytes):
    path.write_bytes(content)
    return path


def test_a_long_path_that_is_not_a_model_is_refused_for_what_it_is_not_for_its_length(tiny_conv_onnx, tmp_path, capsys):
    """Without a label a candidate is named after its file: a path past the label's 80 characters
    (a deep CI folder) must still get the error about the file."""
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4)
    deep.mkdir()
    candidate = _written(deep / "weights.pt", b"\x80\x04K\x01.")
    assert len(str(candidate)) > 80
    err = usage_error(["verify", str(tiny_conv_onnx), "--candidate", str(candidate), *FAST_VERIFY], capsys)
    assert "pickled torch files are not a model source" in err and "must be 1-80" not in err
