"""Where reports are written: derived files only (reports, summaries, JUnit XML), never an input of
the run, a record, a config or a model — not through a symbolic link, not through a hard link —,
checked before anything is measured and written atomically (a temporary file renamed over a plain
file), so a failed write leaves the earlier file whole."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from targets.errors import UsageError

# files speedproof reads (records, configs, profiles, policies, models): never written over
INPUT_FILE_SUFFIXES = (".json", ".toml", ".onnx", ".pt", ".pt2", ".pth", ".py", ".npz", ".data")


def check_derived_output(path: Path, option: str, inputs: tuple[Path | None, ...] = ()) -> None:
    """Refuse, before anything is measured, an output path that would replace an input (a record,
    a config, a model: named directly, through a symbolic link or as a hard link) or that cannot be
    written; an earlier report, summary or JUnit file may be replaced."""
    target = _resolved_target(path, option)
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a folder; pass a file path")
    for item in inputs:
        if item is not None and item.exists() and target.exists() and os.path.samefile(item, target):
            raise UsageError(f"{option} {path}: is an input of this command; it is never written over")
    if target.exists():
        _check_replaceable(path, target, option)
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write into {folder}; pass a writable path")


def write_derived_output(path: Path, text: str, option: str) -> Path:
    """Write `text` to the file `path` names (a symbolic link's target), atomically: into a
    temporary file beside it, then renamed over it. Checked again just before, since a run can
    take long: the file it replaces must still be a plain derived file. Returns the file written."""
    target = _resolved_target(path, option)
    if target.exists():
        _check_replaceable(path, target, option)
    try:
        handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot write there ({error.strerror or error})") from None
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644 & ~_umask())
        os.replace(temporary, target)
    except OSError as error:
        raise UsageError(f"{option} {path}: could not be written ({error.strerror or error})") from None
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _resolved_target(path: Path, option: str) -> Path:
    """The file a path names, following symbolic links; a link whose target is missing names that
    target (so a dangling link to a new file works), a link loop is an error."""
    try:
        return path.resolve(strict=False)
    except (RuntimeError, OSError) as error:  # a loop of links
        raise UsageError(f"{option} {path}: cannot be resolved ({error}); pass a plain file path") from None


def _check_replaceable(path: Path, target: Path, option: str) -> None:
    via = "" if target == path.absolute() else f" (a link to {target})"
    try:
        facts = target.stat()
    except OSError as error:
        raise UsageError(f"{option} {path}{via}: cannot be read ({error.strerror or error})") from None
    if not stat.S_ISREG(facts.st_mode):
        raise UsageError(f"{option} {path}{via}: is not a plain file (a device, pipe or socket); pass a file path")
    if target.suffix.lower() in INPUT_FILE_SUFFIXES or _looks_like_record(target):
        raise UsageError(
            f"{option} {path}{via}: exists and is a record, config or model; outputs only replace derived files "
            "(reports, summaries, JUnit XML). Pass a new path"
        )
    if facts.st_nlink > 1:
        raise UsageError(
            f"{option} {path}{via}: has {facts.st_nlink - 1} other hard link(s), so it is also another file; "
            "a report never replaces a file it cannot tell is its own. Pass a new path"
        )
    if not os.access(target, os.W_OK):
        raise UsageError(f"{option} {path}{via}: cannot write there; pass a writable path")


def _looks_like_record(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"schema_version"' in head


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
