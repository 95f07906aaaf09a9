"""Bad input to search and sensitivity, careless or hostile: exit 2 with a message naming the option
or file and what would be valid, before anything is measured; a search folder given to --resume is
only read until its settings are trusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.faults.conftest import usage_error
from tests.helpers import TINY_CNN


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--budget-s", "nan"], "--budget-s: expected a finite number, got 'nan'"),
        (["--budget-s", "inf"], "expected a finite number, got 'inf'"),
        (["--budget-s", "-5"], "--budget-s -5: must be > 0 seconds"),
        (["--trials", "0"], "--trials"),
        (["--trials", "many"], "--trials"),
        (["--seed", "1.5"], "--seed"),
        (["--task", "lifesaving"], "invalid choice: 'lifesaving'"),
        (["--max-accuracy-drop", "2"], "--max-accuracy-drop 2: must lie in [0, 1]"),
        (["--max-accuracy-drop", "nan"], "expected a finite number, got 'nan'"),
        (["--task", "medical", "--max-accuracy-drop", "0.02"], "both set the quality limit; give one"),
        (["--space", "structured"], "this source is an ONNX file"),
        (["--space", "int9"], "unknown family 'int9'"),
        (["--space", ",,"], "name at least one family"),
    ],
)
def test_search_options(tiny_conv_onnx: Path, tmp_path: Path, capsys, options: list[str], message: str) -> None:
    err = usage_error(["search", str(tiny_conv_onnx), *options, "--out", str(tmp_path)], capsys)
    assert message in err
    assert not list(tmp_path.glob("*.json"))


def _search_folder(tmp_path: Path, settings: bytes | None) -> Path:
    folder = tmp_path / "search-x-12345678"
    folder.mkdir()
    (folder / "study.db").write_bytes(b"")
    if settings is not None:
        (folder / "search.json").write_bytes(settings)
    return folder


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (None, "not the folder of a search: it holds no search.json and study.db"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b"[1, 2]", "not the settings of a speedproof search"),
        (json.dumps({"model": "m"}).encode(), "not the settings of a speedproof search (KeyError"),
        (json.dumps({"model": 7}).encode(), "model is 7"),
    ],
)
def test_a_damaged_search_folder_is_not_resumed(tmp_path: Path, capsys, settings: bytes | None, message: str) -> None:
    folder = _search_folder(tmp_path, settings)
    err = usage_error(["search", "--resume", str(folder)], capsys)
    assert message in err and "Traceback" not in err
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        ["study.db", *(["search.json"] if settings is not None else [])]
    )


def test_settings_of_the_wrong_types_are_refused_and_a_linked_file_is_left_as_it_was(tmp_path: Path, capsys) -> None:
    from harness.search.job import SearchRequest

    good = SearchRequest(model=TINY_CNN).settings()
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({**good, "seed": "zero", "inputs": "none"}))
    before = outside.read_bytes()
    folder = _search_folder(tmp_path, None)
    os.symlink(outside, folder / "search.json")
    err = usage_error(["search", "--resume", str(folder)], capsys)
    assert "seed is 'zero'" in err
    assert outside.read_bytes() == before


def test_resume_of_a_file_says_it_is_not_a_folder(tmp_path: Path, capsys) -> None:
    record = tmp_path / "record.json"
    record.write_text("{}")
    assert "not a folder" in usage_error(["search", "--resume", str(record)], capsys)


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("structured:2", "structured"),
        ("structured:nan", "structured"),
        ("structured:0.5:layer_ratios=bogus", "layer_ratios must be one of uniform, sensitivity"),
        ("structured:0.5+int8-static", "no recovery, steps or chains"),
        ("lowrank:0.5", "sensitivity prunes one layer group at a time with a structured recipe"),
    ],
)
def test_sensitivity_recipes(tmp_path: Path, capsys, recipe: str, message: str) -> None:
    err = usage_error(["sensitivity", TINY_CNN, "--recipe", recipe, "--out", str(tmp_path)], capsys)
    assert message in err
    assert not list(tmp_path.iterdir())


def test_sensitivity_of_an_onnx_file_says_it_needs_a_torch_source(tiny_conv_onnx: Path, tmp_path: Path, capsys) -> None:
    err = usage_error(["sensitivity", str(tiny_conv_onnx), "--out", str(tmp_path)], capsys)
    assert "ONNX file" in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--budget-s", "nan"], "--budget-s: expected a finite number, got 'nan'"),
        (["--budget-s", "0"], "--budget-s 0: must be > 0 seconds"),
        (["--space", ",,"], "the families of a decoder search are"),
        (["--space", "int4," + "x" * 10_000], "the families of a decoder search are"),
        (["--max-perplexity-increase", "nan"], "expected a finite number, got 'nan'"),
        (["--max-perplexity-increase", "-1"], "max_perplexity_increase = -1"),
        (["--max-perplexity-increase", "1e308"], "max_perplexity_increase"),
        (["--seed", "-1"], "--seed"),
        (["--data", "/nonexistent/text.txt"], "/nonexistent/text.txt"),
    ],
)
def test_decoder_search_options(tmp_path: Path, capsys, options: list[str], message: str) -> None:
    """A generative decoder (the zoo's tiny one) with hostile search options: exit 2 before anything is built."""
    pytest.importorskip("onnxruntime_genai", reason="the llm extra (onnxruntime-genai) is not installed")
    err = usage_error(["search", "llama-tiny-shape", *options, "--out", str(tmp_path / "out")], capsys)
    assert message in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_decoder_search_seed_past_the_samplers_range_through_the_api(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime_genai", reason="the llm extra (onnxruntime-genai) is not installed")
    from harness import UsageError, search_recipes

    with pytest.raises(UsageError, match="a seed is a whole number from 0 to"):
        search_recipes("llama-tiny-shape", seed=2**40, out=tmp_path)
    assert not any(tmp_path.iterdir())
