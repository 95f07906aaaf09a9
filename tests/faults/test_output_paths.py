"""Outputs never replace what a run reads: `report --output` and `gate --junit`/`--summary` refuse a
record, config or model named directly, through a symbolic link or as a hard link, and a device or
a dangling `--out`, before anything is measured (exit 2, no traceback); what they do write is
renamed over a plain file, so a failed write leaves the earlier report whole."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from harness.cli import EXIT_USAGE, main
from harness.records.store import write_record
from harness.reports.output_files import write_derived_output
from targets.errors import SpeedproofError
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
    assert f"--output {link}" in err and no_traceback(err)
    refused = ("hard link", "exists and is a record, config or model")
    assert any(why in err for why in refused) if kind == "hardlink" else (f"a link to {victim}" in err)
    assert _digest(victim) == before


def test_a_symlink_to_a_plain_report_is_written_through_atomically(tmp_path, record_path):
    earlier = tmp_path / "reports" / "summary.md"
    earlier.parent.mkdir()
    earlier.write_text("old report\n")
    link = tmp_path / "latest.md"
    link.symlink_to(earlier)
    assert main(["report", str(record_path), "--format", "md", "--output", str(link)]) == 0
    assert link.is_symlink() and earlier.read_text().startswith("## speedproof bench")
    assert sorted(path.name for path in earlier.parent.iterdir()) == ["summary.md"]  # no temporary left


def test_a_write_that_fails_leaves_the_earlier_report_whole(tmp_path, monkeypatch):
    earlier = tmp_path / "report.md"
    earlier.write_text("old report\n")

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)  # the last step of the write, as a full disk fails it
    with pytest.raises(SpeedproofError, match="No space left on device"):
        write_derived_output(earlier, "new report\n", "--output")
    assert earlier.read_text() == "old report\n"
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
        assert f"{output_option} {link}" in completed.stderr and no_traceback(completed.stderr)
        assert not sandbox.records()
    assert {path: _digest(path) for path in digests} == digests


def test_gate_junit_to_a_device_is_refused_before_measuring(sandbox, tiny_conv_onnx):
    config = sandbox.root / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = "{tiny_conv_onnx}"\nrecipes = ["identity"]\n')
    completed = sandbox.run("gate", "--config", str(config), "--junit", "/dev/full", timeout=120)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "--junit /dev/full" in completed.stderr and "is not a plain file" in completed.stderr
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
    assert "is an input of this command" in capsys.readouterr().err
    assert _digest(record_path) == before and json.loads(record_path.read_text())["schema_version"] == 2
