"""Result records on disk: one JSON file per run, written atomically, never overwritten, and read
back with older schema versions upgraded."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.records.run_record import SCHEMA_VERSION, Record
from targets.errors import SpeedproofError

# facts that version 2 added to every artifact
ARTIFACT_FACTS_ADDED_IN_2 = (
    "zipped_bytes",
    "params",
    "nonzero_params",
    "macs",
    "macs_unresolved_nodes",
    "op_histogram",
    "alignment",
)


def _upgrade_1_to_2(record: Record) -> Record:
    """Version 2 added variants (recipes): cells gained `quality` and richer `artifact` facts, and
    records a `variants` list. A version-1 bench measured only its baseline."""
    for cell in record.get("cells", []):
        cell.setdefault("quality", None)
        if isinstance(cell.get("artifact"), dict):
            for key in ARTIFACT_FACTS_ADDED_IN_2:
                cell["artifact"].setdefault(key, None)
    record.setdefault("variants", [])
    return record


# UPGRADERS[n] turns a version-n record into a version-(n+1) record
UPGRADERS: dict[int, Callable[[Record], Record]] = {1: _upgrade_1_to_2}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_file_name(text: str) -> str:
    """`text` with every run of characters that do not belong in a file name replaced by `_`."""
    return _UNSAFE_NAME_CHARS.sub("_", text)


def record_filename(record: Record, label: str) -> str:
    """e.g. 20261122T235800Z-bench-resnet18-1a2b3c4d.json"""
    stamp = record["created_at"].replace("-", "").replace(":", "").split(".")[0].rstrip("Z") + "Z"
    return f"{stamp}-{safe_file_name(label)}-{record['run_id'][:8]}.json"


def write_record(record: Record, out_dir: Path, label: str = "run") -> Path:
    """Write `record` into `out_dir` atomically (temporary file, fsync, link) under a new name.

    An existing file is never replaced: a clash of names picks the next free suffix.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(record, indent=1, sort_keys=False).encode() + b"\n"
    handle, temporary_name = tempfile.mkstemp(prefix=".record-", suffix=".tmp", dir=out_dir)
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        base = record_filename(record, label)
        for attempt in range(1000):
            target = out_dir / (base if attempt == 0 else base.replace(".json", f"-{attempt}.json"))
            try:
                os.link(temporary, target)  # fails instead of replacing an existing file
            except FileExistsError:
                continue
            _fsync_folder(out_dir)
            return target
        raise SpeedproofError(f"could not find a free file name for {base} in {out_dir}")
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot fsync a folder; the file itself is already synced
    finally:
        os.close(descriptor)


def upgrade_record(record: Record, upgraders: dict[int, Callable[[Record], Record]] | None = None) -> Record:
    """Bring a record of any known older schema version up to SCHEMA_VERSION."""
    steps = UPGRADERS if upgraders is None else upgraders
    version = record.get("schema_version")
    if not isinstance(version, int):
        raise SpeedproofError("not a speedproof result record: no integer schema_version")
    if version > SCHEMA_VERSION:
        raise SpeedproofError(
            f"record has schema_version {version}, newer than this speedproof ({SCHEMA_VERSION}); upgrade speedproof"
        )
    while version < SCHEMA_VERSION:
        if version not in steps:
            raise SpeedproofError(f"no upgrade known from schema_version {version}")
        record = steps[version](record)
        version += 1
        record["schema_version"] = version
    return record


def load_record(path: Path) -> Record:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpeedproofError(f"result record not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpeedproofError(f"{path}: not a readable JSON record: {error}") from None
    if not isinstance(data, dict):
        raise SpeedproofError(f"{path}: not a speedproof result record (top level is not an object)")
    try:
        return upgrade_record(data)
    except SpeedproofError as error:
        raise SpeedproofError(f"{path}: {error}") from None
