import json

import pytest

from harness.errors import SpeedproofError
from harness.results_store import (
    SCHEMA_VERSION,
    load_record,
    load_results_folder,
    upgrade_record,
    write_record,
)


def _record(run_id="a" * 32):
    return {"schema_version": SCHEMA_VERSION, "run_id": run_id, "created_at": "2026-11-22T10:00:00.000Z", "cells": []}


def test_write_then_load_round_trips(tmp_path):
    path = write_record(_record(), tmp_path, label="bench-tiny")
    assert path.name == "20261122T100000Z-bench-tiny-aaaaaaaa.json"
    assert load_record(path) == _record()
    assert not list(tmp_path.glob(".record-*")), "temporary file left behind"


def test_never_overwrites_an_existing_record(tmp_path):
    first = write_record(_record(), tmp_path, label="x")
    first_bytes = first.read_bytes()
    changed = _record()
    changed["cells"] = [{"model": "other"}]
    second = write_record(changed, tmp_path, label="x")
    assert second != first
    assert first.read_bytes() == first_bytes
    assert load_record(second)["cells"] == [{"model": "other"}]


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


def test_a_corrupt_file_is_reported_not_fatal(tmp_path):
    good = write_record(_record(), tmp_path)
    (tmp_path / "truncated.json").write_text('{"schema_version": 1, "cells": [')
    (tmp_path / "list.json").write_text("[1, 2]")
    records, unreadable = load_results_folder(tmp_path)
    assert [record["run_id"] for record in records] == [_record()["run_id"]]
    reasons = {item.path.name: item.reason for item in unreadable}
    assert set(reasons) == {"truncated.json", "list.json"}
    assert "truncated.json" in reasons["truncated.json"]
    assert json.loads(good.read_text())["run_id"] == "a" * 32


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
