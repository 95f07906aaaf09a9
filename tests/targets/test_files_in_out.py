"""The one way in and the one way out (targets.files_in, targets.files_out): what each refuses and
why, by what a file is, never by its name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from targets.errors import InputError, UsageError
from targets.files_in import checked_input, read_input_bytes, read_input_json
from targets.files_out import OWN_MARK, append_output, check_output, is_own_output, write_output


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("name", "said"),
    [("pipe.json", "is a FIFO"), ("/dev/zero", "is a device"), ("folder", "is a folder"), ("absent.json", "not found")],
)
def test_the_way_in_refuses_what_is_not_a_plain_file_without_opening_it(tmp_path, fifo, name, said):
    (tmp_path / "folder").mkdir()
    path = Path(name) if name.startswith("/") else tmp_path / name
    with pytest.raises(InputError, match=said):
        read_input_bytes(path, "record", 1024)  # a FIFO would block an open() for reading forever
    with pytest.raises(InputError, match=said):
        checked_input(path, "record")


def test_the_way_in_caps_what_it_reads_and_names_the_file(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"1," * 2048 + b"1]")
    with pytest.raises(InputError, match=r"big.json: is 0.0 MiB, more than the .* MiB a record may be"):
        read_input_json(big, "record", 1024)
    assert len(read_input_json(big, "record", 1 << 20)) == 2049
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="bad.json: not UTF-8"):
        read_input_json(bad, "record", 1024)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="deep.json: not valid JSON"):
        read_input_json(deep, "record", 1 << 20)


def test_a_new_output_is_written_with_the_mode_asked_and_nothing_left_beside_it(tmp_path):
    key = write_output(tmp_path / "key.pem", b"secret", "--tls", mode=0o600, replace=False)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_bytes() == b"secret"
    report = write_output(tmp_path / "report.md", f"# r\n<!-- {OWN_MARK} -->\n", "--output")
    assert stat.S_IMODE(report.stat().st_mode) & 0o077 != 0o077  # the umask applies to the public mode
    assert sorted(path.name for path in tmp_path.iterdir()) == ["key.pem", "report.md"]


def test_keys_and_certificates_never_replace_a_file(tmp_path):
    existing = tmp_path / "fleet-key.pem"
    existing.write_text("the lab's key")
    existing.chmod(0o644)
    with pytest.raises(UsageError, match="never replaces a file of this kind"):
        write_output(existing, b"new key", "--tls", mode=0o600, replace=False)
    assert existing.read_text() == "the lab's key"


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "foreign", "model-data", "device", "fifo", "folder"])
def test_the_way_out_refuses_what_speedproof_did_not_write(tmp_path, kind):
    victim = tmp_path / "model.onnx_data"
    victim.write_bytes(b"\x00\x01weights")
    target = tmp_path / "out.md"
    if kind == "symlink":
        target.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, target)
    elif kind == "foreign":
        target.write_text("my notes\n")
    elif kind == "model-data":
        target = victim  # by what it is, not its suffix: an .onnx_data file is not a report
    elif kind == "device":
        target = Path("/dev/full")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(UsageError):
        write_output(target, "report\n", "--output")
    assert victim.read_bytes() == b"\x00\x01weights"


def test_speedproofs_own_output_is_replaced_and_an_input_never(tmp_path):
    own = tmp_path / "plot.png"
    own.write_bytes(b"\x89PNG...tEXtSoftware\x00speedproof (" + OWN_MARK.encode() + b")")
    assert is_own_output(own)
    write_output(own, b"new plot " + OWN_MARK.encode(), "--plot")
    assert own.read_bytes().startswith(b"new plot")
    with pytest.raises(UsageError, match="is an input of this command"):
        check_output(own, "--plot", inputs=(own,))


def test_a_summary_is_appended_only_to_a_summary(tmp_path):
    summary = tmp_path / "step_summary"
    summary.write_text("")
    append_output(summary, "## gate\n", "$GITHUB_STEP_SUMMARY")
    append_output(summary, "## again\n", "$GITHUB_STEP_SUMMARY")
    assert summary.read_text() == "## gate\n## again\n"
    config = tmp_path / "speedproof.toml"
    config.write_text('[[check]]\nmodel = "m.onnx"\n')
    record = tmp_path / "record.json"
    record.write_text('{"schema_version": 2}')
    for victim, said in ((config, "TOML"), (record, "JSON")):
        with pytest.raises(UsageError, match=said):
            append_output(victim, "## gate\n", "$GITHUB_STEP_SUMMARY")
    assert config.read_text() == '[[check]]\nmodel = "m.onnx"\n'
