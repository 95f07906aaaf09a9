"""Faults that would lose or overwrite results: an output folder that cannot be written is found
before anything is measured; one that fails mid-run (a full disk) gets the record printed and saved
in the rescue folder; long names are shortened; outputs never replace records; concurrent writers
and writers killed mid-write leave only whole records."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.records.store import MAX_LABEL_CHARS, RecordNotWritten, load_record, write_record
from tests.faults.conftest import FAST_BENCH, no_traceback
from tests.helpers import minimal_record


def test_an_out_path_that_is_a_file_is_refused_before_measuring(sandbox, tiny_conv_onnx):
    blocker = sandbox.root / "results.txt"
    blocker.write_text("not a folder")
    completed = sandbox.run("bench", str(tiny_conv_onnx), *FAST_BENCH, "--out", str(blocker))
    assert completed.returncode == 2 and "is a file, not a folder" in completed.stderr
    assert blocker.read_text() == "not a folder" and no_traceback(completed.stderr)


@pytest.mark.parametrize("out", ["/proc/speedproof-results", "/proc/self/speedproof"])
def test_an_out_path_in_a_virtual_file_system_is_refused_before_measuring(sandbox, tiny_conv_onnx, out):
    completed = sandbox.run("verify", str(tiny_conv_onnx), "--recipes", "identity", "--out", out)
    assert completed.returncode == 2 and f"--out {out}: cannot write there" in completed.stderr
    assert "A/B" not in completed.stderr and no_traceback(completed.stderr)


def test_a_read_only_out_folder_is_refused_before_measuring(sandbox, tiny_conv_onnx, tmpfs):
    read_only = tmpfs(read_only=True)
    started = time.monotonic()
    completed = sandbox.run("verify", str(tiny_conv_onnx), "--recipes", "identity", "--out", str(read_only / "r"))
    assert completed.returncode == 2 and "Read-only file system" in completed.stderr
    assert time.monotonic() - started < 60  # nothing was measured (an A/B pair takes minutes at defaults)


def test_a_disk_that_fills_mid_run_keeps_the_record(sandbox, tiny_conv_onnx, tmpfs):
    full = tmpfs(size_kib=4)  # room for the write check, not for the record
    completed = sandbox.run("bench", str(tiny_conv_onnx), *FAST_BENCH, "--out", str(full))
    assert completed.returncode == 1, completed.stderr
    assert "could not write the record into" in completed.stderr and "saved to" in completed.stderr
    assert "tiny_conv" in completed.stdout  # the table is printed all the same
    [rescued] = sorted((sandbox.cache / "unsaved-records").glob("*.json"))
    assert load_record(rescued)["cells"][0]["status"] == "ok"
    assert not list(full.glob("*.json"))


def test_when_even_the_rescue_folder_fails_the_record_is_printed(sandbox, tiny_conv_onnx, tmpfs):
    full = tmpfs(size_kib=4)
    completed = sandbox.run(
        "bench", str(tiny_conv_onnx), *FAST_BENCH, "--out", str(full), SPEEDPROOF_CACHE_DIR="/proc/no-cache"
    )
    assert completed.returncode == 1
    assert json.loads(completed.stdout)["cells"][0]["status"] == "ok"
    assert "nor into /proc/no-cache/unsaved-records" in completed.stderr


def test_a_long_model_name_gets_a_short_record_name(sandbox, tiny_conv_onnx):
    long_named = sandbox.root / ("m" * 240 + ".onnx")
    long_named.write_bytes(tiny_conv_onnx.read_bytes())
    completed = sandbox.run("bench", str(long_named), *FAST_BENCH, "--out", str(sandbox.out))
    assert completed.returncode == 0, completed.stderr
    [record] = sandbox.records()
    assert len(record.name) < 160 and load_record(record)["cells"][0]["model"] == "m" * 240


def test_labels_are_cut_but_stay_distinct():
    from harness.records.store import safe_file_name

    first, second = safe_file_name("a" * 300 + "1", MAX_LABEL_CHARS), safe_file_name("a" * 300 + "2", MAX_LABEL_CHARS)
    assert len(first) == MAX_LABEL_CHARS and first != second


def _record() -> dict:
    return minimal_record()


def test_report_never_writes_over_its_record(tmp_path, capsys):
    path = write_record(_record(), tmp_path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SystemExit, match="2"):  # refused as the option is read
        main(["report", str(path), "--format", "md", "--output", str(path)])
    assert "was not written by speedproof" in capsys.readouterr().err
    other = write_record(_record(), tmp_path)
    with pytest.raises(SystemExit, match="2"):
        main(["report", str(path), "--format", "md", "--output", str(other)])
    assert "was not written by speedproof" in capsys.readouterr().err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    report = tmp_path / "report.md"
    assert main(["report", str(path), "--format", "md", "--output", str(report)]) == 0
    assert main(["report", str(path), "--format", "md", "--output", str(report)]) == 0  # a report may be redone


def _write_many(folder: str, count: int) -> None:
    for _ in range(count):
        write_record(_record(), Path(folder), label="concurrent")


def test_concurrent_writers_never_overwrite_each_other(tmp_path):
    processes = [multiprocessing.Process(target=_write_many, args=(str(tmp_path), 20)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    records = sorted(tmp_path.glob("*.json"))
    assert len(records) == 80 and all(load_record(path)["command"] == "bench" for path in records)


def _write_forever(folder: str) -> None:
    big = _record()
    big["cells"] = [{"model": "m", "variant": "v", "backend": "b", "batch_size": 1, "status": "ok"}] * 5000
    while True:
        write_record(big, Path(folder), label="killed")


@pytest.mark.parametrize("after_s", [0.05, 0.2, 0.5])
def test_a_writer_killed_mid_write_leaves_only_whole_records(tmp_path, after_s):
    process = multiprocessing.Process(target=_write_forever, args=(str(tmp_path),))
    process.start()
    time.sleep(after_s)
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    for path in tmp_path.glob("*.json"):
        assert len(load_record(path)["cells"]) == 5000  # whole, or not there at all


def test_write_record_raises_with_the_rescued_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEEDPROOF_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(RecordNotWritten) as raised:
        write_record(_record(), Path("/proc/not-a-folder"))
    assert raised.value.saved_to is not None and load_record(raised.value.saved_to)["run_id"] == "0123456789abcdef"
