"""One way in: every file speedproof reads (records, configs, policies, profiles, baselines,
certificates, settings, study databases, models, data) is first checked here to be a plain file —
a FIFO, a device, a socket or a folder is refused with a message naming it, before anything opens
it for reading, so a pipe cannot hang a run and /dev/zero cannot fill its memory — and files read
whole are read through a cap on their bytes by kind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from targets.errors import InputError, SpeedproofError

MIB = 2**20
# what a file of each kind may weigh when speedproof reads it whole
RECORD_CAP_BYTES = 256 * MIB  # a search's record holds every trial's cells
CONFIG_CAP_BYTES = 4 * MIB  # TOML configs, policies, profiles; settings JSON
CERTIFICATE_CAP_BYTES = 1 * MIB
RESULT_CAP_BYTES = 16 * MIB  # what a contained process of user code writes back


def file_kind(mode: int) -> str:
    """What a file that is not a plain file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def checked_input(path: Path, what: str, error: type[SpeedproofError] = InputError, hint: str = "") -> os.stat_result:
    """The facts of the plain file `path` (a symbolic link's target); anything else raises `error`
    naming `what` and the path: missing, a folder, a FIFO, a device, a socket, unreadable."""
    try:
        facts = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}" + (f"; {hint}" if hint else "")) from None
    except (NotADirectoryError, OSError, ValueError) as problem:
        reason = getattr(problem, "strerror", None) or problem
        raise error(f"{what} {path}: cannot be read ({reason})") from None
    if not stat.S_ISREG(facts.st_mode):
        advice = f"pass the {what} file itself" if stat.S_ISDIR(facts.st_mode) else "speedproof reads only plain files"
        raise error(f"{what} {path}: is {file_kind(facts.st_mode)}, not a file; {advice}")
    return facts


def is_plain_file(path: Path) -> bool:
    """Whether `path` is a plain file (a symbolic link to one included), never opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_input_bytes(path: Path, what: str, cap_bytes: int, error: type[SpeedproofError] = InputError) -> bytes:
    """The bytes of the plain file `path`, at most `cap_bytes` of them: a larger file is refused
    before it is read. Opened without blocking and checked again once open (a file swapped for a
    FIFO between the check and the open is still refused)."""
    checked_input(path, what, error)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as problem:
        raise error(f"{what} {path}: cannot be read ({problem.strerror or problem})") from None
    with os.fdopen(descriptor, "rb") as handle:
        facts = os.fstat(handle.fileno())
        if not stat.S_ISREG(facts.st_mode):
            raise error(f"{what} {path}: is {file_kind(facts.st_mode)}, not a file; speedproof reads only plain files")
        if facts.st_size > cap_bytes:
            raise error(_too_large(path, what, facts.st_size, cap_bytes))
        try:
            data = handle.read(cap_bytes + 1)
        except OSError as problem:
            raise error(f"{what} {path}: cannot be read ({problem.strerror or problem})") from None
    if len(data) > cap_bytes:  # it grew while being read
        raise error(_too_large(path, what, len(data), cap_bytes))
    return data


def read_input_text(path: Path, what: str, cap_bytes: int, error: type[SpeedproofError] = InputError) -> str:
    """The UTF-8 text of the plain file `path` (see `read_input_bytes`)."""
    data = read_input_bytes(path, what, cap_bytes, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(
            f"{what} {path}: not UTF-8 text (byte {problem.start}: {problem.reason}); it must be UTF-8 text"
        ) from None


def read_input_json(path: Path, what: str, cap_bytes: int, error: type[SpeedproofError] = InputError) -> Any:
    """The JSON document in the plain file `path` (see `read_input_bytes`)."""
    text = read_input_text(path, what, cap_bytes, error)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as problem:  # bad JSON, huge integers, nesting
        raise error(f"{what} {path}: not valid JSON ({str(problem) or type(problem).__name__})") from None


def _too_large(path: Path, what: str, size: int, cap_bytes: int) -> str:
    return (
        f"{what} {path}: is {size / MIB:.1f} MiB, more than the {cap_bytes / MIB:g} MiB a {what} may be; "
        "this is not the file you meant"
    )
