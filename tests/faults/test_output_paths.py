"""Outputs never replace what a run reads: `report --output` and `gate --junit`/`--summary` refuse a
record, config or model named directly, through a symbolic link or as a hard link, a file speedproof
did not write, a device or a dangling `--out`, before anything is measured (exit 2, no traceback);
what they do write is renamed over speedproof's own earlier report, so a failed write leaves it
whole. (tests/faults/test_every_path_option.py tries every path option of every command.)"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from harness.cli import EXIT_USAGE, main
from harness.records.store import write_record
from harness.reports import report_file_text
from targets.errors import SpeedproofError
from targets.files_out import OWN_MARK, write_output
from tests.faults.conftest import FAST_BENCH, no_traceback
from tests.helpers import BASELINE_CELL, RENDERABLE_CELL, minimal_record


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _linked(kind: str, victim: Path, folder: Path, name: str) -> Path:
    """A path that looks like a report but is `victim`: a symbolic link to it or a hard link of it."""
    link = folder / name
    if kind == "symlink":
        link.symlink_to(victim)
    else:
        os.link(victim, link)
    return link


@pytest.fixture
def record_path(tmp_path: Path) -> Path:
    return write_record(minimal_record(RENDERABLE_CELL), tmp_path / "records")


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
@pytest.mark.parametrize("victim_name", ["model.onnx", "speedproof.toml", "other-record.json"])
def test_report_output_through_a_link_never_replaces_the_file_behind_it(
    tmp_path, capsys, record_path, tiny_conv_onnx, kind, victim_name
):
    victim = tmp_path / victim_name
    contents = {".onnx": tiny_conv_onnx.read_bytes(), ".toml": b"[[check]]\n"}
    victim.write_bytes(contents.get(victim.suffix, json.dumps(minimal_record(BASELINE_CELL)).encode()))
    before = _digest(victim)
    link = _linked(kind, victim, tmp_path, "report.md")
    assert _code(["report", str(record_path), "--format", "md", "--output", str(link)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--output" in err and str(link) in err and no_traceback(err)
    assert ("hard link" in err) if kind == "hardlink" else (f"is a symbolic link (to {victim})" in err)
    assert _digest(victim) == before


def test_only_speedproofs_own_report_is_replaced_and_never_through_a_link(tmp_path, record_path):
    own = tmp_path / "summary.md"
    assert main(["report", str(record_path), "--format", "md", "--output", str(own)]) == 0
    assert OWN_MARK in own.read_text() and own.read_text().startswith("## speedproof bench")
    assert main(["report", str(record_path), "--format", "md", "--output", str(own)]) == 0  # its own: replaced
    assert sorted(path.name for path in tmp_path.iterdir()) == ["records", "summary.md"]  # no temporary left
    link = tmp_path / "latest.md"
    link.symlink_to(own)
    assert _code(["report", str(record_path), "--format", "md", "--output", str(link)]) == EXIT_USAGE
    notes = tmp_path / "notes.md"
    notes.write_text("my own notes\n")
    assert _code(["report", str(record_path), "--format", "md", "--output", str(notes)]) == EXIT_USAGE
    assert notes.read_text() == "my own notes\n"


def test_a_write_that_fails_leaves_the_earlier_report_whole(tmp_path, monkeypatch):
    earlier = tmp_path / "report.md"
    earlier.write_text(report_file_text("old report", "md"))

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)  # the last step of the write, as a full disk fails it
    with pytest.raises(SpeedproofError, match="No space left on device"):
        write_output(earlier, "new report\n", "--output")
    assert earlier.read_text() == report_file_text("old report", "md")
    assert [path.name for path in tmp_path.iterdir()] == ["report.md"]


@pytest.mark.parametrize("output_option", ["--junit", "--summary"])
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_gate_outputs_through_links_are_refused_before_measuring(sandbox, tiny_conv_onnx, output_option, kind):
    model = sandbox.root / "model.onnx"
    model.write_bytes(tiny_conv_onnx.read_bytes())
    config = sandbox.root / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = "{model}"\nrecipes = ["identity"]\n')
    digests = {path: _digest(path) for path in (model, config)}
    for victim in (model, config):
        link = _linked(kind, victim, sandbox.root, f"{victim.stem}-{kind}.xml")
        completed = sandbox.run("gate", "--config", str(config), output_option, str(link), timeout=120)
        assert completed.returncode == 2, completed.stdout + completed.stderr
        assert output_option in completed.stderr and str(link) in completed.stderr and no_traceback(completed.stderr)
        assert not sandbox.records()
    assert {path: _digest(path) for path in digests} == digests


def test_gate_junit_to_a_device_is_refused_before_measuring(sandbox, tiny_conv_onnx):
    config = sandbox.root / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = "{tiny_conv_onnx}"\nrecipes = ["identity"]\n')
    completed = sandbox.run("gate", "--config", str(config), "--junit", "/dev/full", timeout=120)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "--junit" in completed.stderr and "/dev/full: is a device" in completed.stderr
    assert no_traceback(completed.stderr) and not sandbox.records()


def test_a_dangling_symlink_as_out_is_refused_before_measuring(sandbox, tiny_conv_onnx):
    out = sandbox.root / "results-link"
    out.symlink_to(sandbox.root / "gone" / "results")
    completed = sandbox.run("bench", str(tiny_conv_onnx), *FAST_BENCH, "--out", str(out), timeout=120)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert f"--out {out}" in completed.stderr and "which does not exist" in completed.stderr
    assert no_traceback(completed.stderr)
    assert not (sandbox.cache / "unsaved-records").exists()  # refused, not measured and then rescued


def test_report_output_naming_a_record_through_a_symlink_keeps_it(tmp_path, capsys, record_path):
    link = tmp_path / "report.html"
    link.symlink_to(record_path)
    before = _digest(record_path)
    assert _code(["report", str(record_path), "--format", "html", "--output", str(link)]) == EXIT_USAGE
    assert "is a symbolic link" in capsys.readouterr().err
    assert _digest(record_path) == before and json.loads(record_path.read_text())["schema_version"] == 2


def test_a_step_summary_pointing_at_a_config_is_refused_before_measuring(tmp_path, capsys, tiny_conv_onnx, monkeypatch):
    config = tmp_path / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = "{tiny_conv_onnx}"\nrecipes = ["identity"]\n')
    other = tmp_path / "policy.toml"
    other.write_text("[policy]\nmin_speedup = 1.2\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(other))
    assert _code(["gate", "--config", str(config), "--out", str(tmp_path / "out")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "$GITHUB_STEP_SUMMARY" in err and "TOML" in err and no_traceback(err)
    assert other.read_text() == "[policy]\nmin_speedup = 1.2\n" and not (tmp_path / "out").exists()


def test_a_report_never_replaces_a_models_external_weights(tmp_path, capsys, record_path):
    weights = tmp_path / "model.onnx_data"
    weights.write_bytes(b"\x00" * 64)
    assert _code(["report", str(record_path), "--output", str(weights)]) == EXIT_USAGE
    assert "was not written by speedproof" in capsys.readouterr().err and weights.read_bytes() == b"\x00" * 64
