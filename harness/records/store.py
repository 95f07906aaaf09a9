"""Result records on disk: one JSON file per run, written atomically, never overwritten, never lost
(a folder that cannot take it gets a rescue copy elsewhere), and read back checked, with older
schema versions upgraded."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.records.run_record import SCHEMA_VERSION, Record
from targets.errors import InputError, SpeedproofError, UsageError
from targets.files_in import RECORD_CAP_BYTES, read_input_json

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
    cells = record.get("cells", [])
    for cell in cells if isinstance(cells, list) else []:  # a damaged record is reported by check_record
        if not isinstance(cell, dict):
            continue
        cell.setdefault("quality", None)
        if isinstance(cell.get("artifact"), dict):
            for key in ARTIFACT_FACTS_ADDED_IN_2:
                cell["artifact"].setdefault(key, None)
    record.setdefault("variants", [])
    return record


# UPGRADERS[n] turns a version-n record into a version-(n+1) record
UPGRADERS: dict[int, Callable[[Record], Record]] = {1: _upgrade_1_to_2}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=-]+")


# file names stay far below NAME_MAX (255 bytes) with the stamp, run id and a clash suffix added
MAX_LABEL_CHARS = 96
# records measured but not writable where asked are kept here (and the message says so)
RESCUE_FOLDER_NAME = "unsaved-records"


class RecordNotWritten(SpeedproofError):
    """A measured record could not be written where asked. `record` holds it; `saved_to` is the
    rescue copy, or None when even that failed (then the record must be printed)."""

    def __init__(self, message: str, record: Record, saved_to: Path | None) -> None:
        super().__init__(message)
        self.record = record
        self.saved_to = saved_to


def safe_file_name(text: str, max_chars: int | None = None) -> str:
    """`text` with every run of characters that do not belong in a file name replaced by `_`; one
    longer than `max_chars` is cut and keeps a hash of the whole, so different texts stay apart."""
    safe = _UNSAFE_NAME_CHARS.sub("_", text)
    if max_chars is not None and len(safe) > max_chars:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        safe = f"{safe[: max_chars - len(digest) - 1]}-{digest}"
    return safe


def record_filename(record: Record, label: str) -> str:
    """e.g. 20261122T235800Z-bench-resnet18-1a2b3c4d.json"""
    stamp = record["created_at"].replace("-", "").replace(":", "").split(".")[0].rstrip("Z") + "Z"
    return f"{stamp}-{safe_file_name(label, MAX_LABEL_CHARS)}-{record['run_id'][:8]}.json"


def check_writable_folder(folder: Path, option: str = "--out") -> None:
    """Make sure records can be written into `folder` before anything is measured: it, or the
    nearest folder above it that exists (it is created only when the record is written), must take
    a new file."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir could never make the folder it names
            raise UsageError(
                f"{option} {folder}: {existing} is a symbolic link to {os.readlink(existing)}, which does not "
                "exist; create that folder or pass another"
            )
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise UsageError(f"{option} {folder}: is not a folder{where}; pass a folder for the records")
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UsageError(
            f"{option} {folder}: cannot write there ({error.strerror or error}); pass a writable folder"
        ) from None


def kept_run_folder(out_dir: Path, label: str, run_id: str) -> Path:
    """A new folder under `out_dir` for what a run keeps beside its record (the artifacts it
    measured, so that what was verified is what ships): `<label>-<run id>`, never reused."""
    folder = out_dir / f"{safe_file_name(label, MAX_LABEL_CHARS)}-{run_id[:8]}"
    if folder.exists():
        raise UsageError(f"{folder} already exists; it is never overwritten")
    return folder


def rescue_folder() -> Path:
    """Where a record goes when its own folder fails mid-run (the per-user speedproof cache)."""
    base = os.environ.get("SPEEDPROOF_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "speedproof"
    )
    return Path(base) / RESCUE_FOLDER_NAME


def write_record(record: Record, out_dir: Path, label: str = "run") -> Path:
    """Write `record` into `out_dir`; when that fails (a full disk, a folder gone read-only) write it
    into the rescue folder and raise `RecordNotWritten` saying where it went, so nothing measured
    is lost."""
    try:
        return _write_new_file(record, out_dir, label)
    except OSError as error:
        problem = f"could not write the record into {out_dir}: {error.strerror or error}"
        try:
            saved_to = _write_new_file(record, rescue_folder(), label)
        except OSError:
            raise RecordNotWritten(f"{problem}; nor into {rescue_folder()}", record, None) from None
        raise RecordNotWritten(f"{problem}; it was saved to {saved_to} instead", record, saved_to) from None


def _write_new_file(record: Record, out_dir: Path, label: str) -> Path:
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
        raise InputError("not a speedproof result record: no integer schema_version")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"record has schema_version {version}, newer than this speedproof ({SCHEMA_VERSION}); upgrade speedproof"
        )
    while version < SCHEMA_VERSION:
        if version not in steps:
            raise InputError(f"no upgrade known from schema_version {version}")
        record = steps[version](record)
        version += 1
        record["schema_version"] = version
    return record


def load_record(path: Path) -> Record:
    data = read_input_json(path, "result record", RECORD_CAP_BYTES)
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a speedproof result record (top level is not an object)")
    try:
        return check_record(upgrade_record(data))
    except SpeedproofError as error:
        raise InputError(f"{path}: {error}") from None


# what every record has, and every cell: the keys reports, gates and regressions rely on
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "created_at": (str,),
    "command": (str,),
    "host": (dict,),
    "cells": (list,),
}
CELL_FIELDS: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "variant": (str,),
    "backend": (str,),
    "batch_size": (int, str),
    "status": (str,),
}
OPTIONAL_SECTIONS: dict[str, tuple[type, ...]] = {
    "variants": (list,),
    "policy": (dict,),
    "policies": (dict,),
    "protocol": (dict,),
    "target": (dict, type(None)),
    "gate": (dict,),
    "compare": (dict,),
    "search": (dict,),
    "sensitivity": (dict,),
    "model_source": (dict,),
}
CELL_STATUSES = ("ok", "failed", "skipped")
_NONE = type(None)
_NUMBER = (int, float)
# what a cell may have, and of which type: a mistyped one (`warnings: "abc"`) is damage, named by its key
CELL_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "provider": (str, _NONE),
    "error": (str, _NONE),
    "failure_kind": (str, _NONE),
    "warnings": (list,),
    "reference": (bool,),
    "required": (bool,),
    "skipped": (str, _NONE),
    "check": (int,),
    "target": (str, _NONE),
    "remote": (str, _NONE),
    "host": (dict, _NONE),
    "cv": (*_NUMBER, _NONE),
    "iterations": (int,),
    "duration_s": (*_NUMBER, _NONE),
    "throughput_per_s": (*_NUMBER, _NONE),
    "accuracy": (*_NUMBER, _NONE),
    "fidelity": (*_NUMBER, _NONE),
    "clock": (str, _NONE),
    "latencies_ns": (list,),
    "batch_curve": (list, _NONE),
    **{
        key: (dict, _NONE)
        for key in (
            "verdict",
            "speedup",
            "artifact",
            "quality",
            "latency_ms",
            "ab",
            "memory",
            "cold_start_ms",
            "runtime",
            "larger_batch_speedup",
            "throughput_speedup",
            "runtime_switch",
        )
    },
}
# lists whose items are sentences shown one per line
TEXT_LISTS = ("warnings",)
VERDICT_FIELDS: dict[str, tuple[type, ...]] = {"decision": (str,)}
VERDICT_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {"reasons": (list,), "hints": (list,), "notes": (list,)}
SPEEDUP_FIELDS: dict[str, tuple[type, ...]] = {key: (*_NUMBER, _NONE) for key in ("ratio", "ci_low", "ci_high")}


def _type_names(kinds: tuple[type, ...]) -> str:
    names = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}
    names.update(dict="an object", list="a list", NoneType="null")
    return " or ".join(dict.fromkeys(names.get(kind.__name__, kind.__name__) for kind in kinds))


def _has_type(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON's true is no number here
        return bool in kinds
    return isinstance(value, kinds)


def _check_fields(data: dict[str, Any], expected: dict[str, tuple[type, ...]], where: str, required: bool) -> None:
    for key, kinds in expected.items():
        if key not in data:
            if required:
                raise InputError(f"damaged record: {where} has no {key!r}")
            continue
        value = data[key]
        if not _has_type(value, kinds):
            raise InputError(f"damaged record: {where}{key} is {_shown(value)}; expected {_type_names(kinds)}")


def _check_text_list(values: list[Any], where: str) -> None:
    for position, item in enumerate(values):
        if not isinstance(item, str):
            raise InputError(f"damaged record: {where}[{position}] is {_shown(item)}; expected a string")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_cell(cell: dict[str, Any], where: str) -> None:
    _check_fields(cell, CELL_FIELDS, where, required=True)
    if cell["status"] not in CELL_STATUSES:
        raise InputError(
            f"damaged record: {where}status is {cell['status']!r}; expected one of " + ", ".join(CELL_STATUSES)
        )
    _check_fields(cell, CELL_OPTIONAL_FIELDS, where, required=False)
    for key in TEXT_LISTS:
        _check_text_list(cell.get(key) or [], f"{where}{key}")
    verdict = cell.get("verdict")
    if verdict is not None:
        _check_fields(verdict, VERDICT_FIELDS, f"{where}verdict.", required=True)
        _check_fields(verdict, VERDICT_OPTIONAL_FIELDS, f"{where}verdict.", required=False)
        for key in ("hints", "notes"):
            _check_text_list(verdict.get(key) or [], f"{where}verdict.{key}")
        for position, reason in enumerate(verdict.get("reasons") or []):
            reason_where = f"{where}verdict.reasons[{position}]"
            if not isinstance(reason, dict):
                raise InputError(f"damaged record: {reason_where} is {_shown(reason)}; expected an object")
            _check_fields(reason, {"code": (str,), "message": (str,)}, reason_where + ".", required=True)
    for key in ("speedup", "throughput_speedup"):
        if cell.get(key) is not None:
            _check_fields(cell[key], SPEEDUP_FIELDS, f"{where}{key}.", required=False)


def check_record(record: Record) -> Record:
    """Raise a SpeedproofError naming the first thing that makes `record` unusable; return it."""
    _check_fields(record, RECORD_FIELDS, "", required=True)
    _check_fields(record, OPTIONAL_SECTIONS, "", required=False)
    for index, cell in enumerate(record["cells"]):
        if not isinstance(cell, dict):
            raise InputError(f"damaged record: cells[{index}] is {_shown(cell)}; expected an object")
        _check_cell(cell, f"cells[{index}].")
    for index, variant in enumerate(record.get("variants", [])):
        if not isinstance(variant, dict) or not isinstance(variant.get("recipe"), str):
            raise InputError(f"damaged record: variants[{index}] has no recipe string")
    return record
