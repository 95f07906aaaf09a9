import pytest

from harness.records.store import (
    SCHEMA_VERSION,
    load_record,
    upgrade_record,
    write_record,
)
from targets.errors import SpeedproofError


def _record(run_id="a" * 32):
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": "2026-11-22T10:00:00.000Z",
        "command": "bench",
        "host": {},
        "cells": [],
    }


def test_write_then_load_round_trips(tmp_path):
    path = write_record(_record(), tmp_path, label="bench-tiny")
    assert path.name == "20261122T100000Z-bench-tiny-aaaaaaaa.json"
    assert load_record(path) == _record()
    assert not list(tmp_path.glob(".record-*")), "temporary file left behind"


def test_never_overwrites_an_existing_record(tmp_path):
    first = write_record(_record(), tmp_path, label="x")
    first_bytes = first.read_bytes()
    changed = _record()
    changed["cells"] = [
        {"model": "other", "variant": "baseline", "backend": "onnxruntime", "batch_size": 1, "status": "ok"}
    ]
    second = write_record(changed, tmp_path, label="x")
    assert second != first
    assert first.read_bytes() == first_bytes
    assert load_record(second)["cells"] == changed["cells"]


def test_upgrade_applies_each_step_in_order():
    steps = {
        SCHEMA_VERSION - 2: lambda record: {**record, "cells": record.pop("measurements")},
        SCHEMA_VERSION - 1: lambda record: {**record, "tool_version": record.get("tool_version", "unknown")},
    }
    old = {"schema_version": SCHEMA_VERSION - 2, "measurements": [1, 2]}
    upgraded = upgrade_record(old, upgraders=steps)
    assert upgraded["schema_version"] == SCHEMA_VERSION
    assert upgraded["cells"] == [1, 2]
    assert upgraded["tool_version"] == "unknown"


def test_newer_or_missing_schema_is_a_clear_error(tmp_path):
    with pytest.raises(SpeedproofError, match="newer than this speedproof"):
        upgrade_record({"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(SpeedproofError, match="no upgrade known"):
        upgrade_record({"schema_version": 0}, upgraders={})
    with pytest.raises(SpeedproofError, match="schema_version"):
        upgrade_record({"run_id": "x"})


def test_version_1_bench_records_gain_the_variant_fields():
    old = {
        "schema_version": 1,
        "cells": [{"variant": "baseline", "artifact": {"path": "m.onnx", "sha256": "0" * 64, "bytes": 10}}],
    }
    upgraded = upgrade_record(old)
    assert upgraded["schema_version"] == SCHEMA_VERSION == 2
    cell = upgraded["cells"][0]
    assert cell["quality"] is None and cell["artifact"]["bytes"] == 10 and cell["artifact"]["macs"] is None
    assert upgraded["variants"] == []
