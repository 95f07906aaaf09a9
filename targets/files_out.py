"""One way out: every file speedproof writes where a user points it (records, reports, plots,
summaries, JUnit XML, certificates and keys, settings, caches) goes through here.

A path is written only as a plain file: never through a symbolic link, never onto a hard link,
a device, a FIFO, a socket or a folder, never onto an input of the run, and never onto an existing
file speedproof did not write itself — known by what the file holds (the mark `written by
speedproof` its reports, plots and caches carry), not by its name. Writes go to a temporary file
beside the target, with the mode asked for, then are renamed over it, so a failed write leaves the
earlier file whole. Keys, certificates and records never replace anything (`replace=False`).
Everything is checked once before a command measures anything (`check_output`) and again just
before the write, since a run takes long."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from targets.errors import UsageError
from targets.files_in import file_kind

OWN_MARK = "written by speedproof"
# where the mark is looked for: a file's first and last bytes
MARK_WINDOW_BYTES = 64 * 1024


def check_output(
    path: Path, option: str, inputs: Sequence[Path | None] = (), replace: bool = True, append: bool = False
) -> None:
    """Raise UsageError unless `path` may be written (see the module's rules): a new file in a
    writable folder, or (with `replace`) a plain file speedproof wrote, that is no input of the run."""
    problem = output_problem(path, inputs, replace=replace, append=append)
    if problem:
        raise UsageError(f"{option} {path}: {problem}")


def output_problem(path: Path, inputs: Sequence[Path | None] = (), replace: bool = True, append: bool = False) -> str:
    """Why `path` may not be written, or ''."""
    try:
        facts = os.lstat(path)
    except FileNotFoundError:
        return _folder_problem(path)
    except (OSError, ValueError) as error:
        return f"cannot be checked ({getattr(error, 'strerror', None) or error}); pass a plain file path"
    if stat.S_ISLNK(facts.st_mode):
        return (
            f"is a symbolic link (to {os.readlink(path)}); outputs are written only as plain files, never through a "
            "link. Pass the path of a new file"
        )
    if not stat.S_ISREG(facts.st_mode):
        return f"is {file_kind(facts.st_mode)}; pass the path of a new file"
    for item in inputs:
        if item is not None and _same_file(item, path):
            return "is an input of this command; it is never written over"
    if facts.st_nlink > 1:
        return (
            f"has {facts.st_nlink - 1} other hard link(s), so it is also another file; speedproof never writes a "
            "file it cannot tell is its own. Pass the path of a new file"
        )
    if not replace:
        return "exists; speedproof never replaces a file of this kind (keys, certificates, records). Pass a new path"
    if append:
        refusal = _append_refusal(path)
        if refusal:
            return refusal
    elif not is_own_output(path):
        return (
            f"exists and was not written by speedproof (it has no '{OWN_MARK}' mark): outputs replace only "
            "speedproof's own reports, plots and summaries, never a model, record, config or a file of yours. "
            "Pass a new path, or remove the file first"
        )
    if not os.access(path, os.W_OK):
        return "cannot write there; pass a writable path"
    return ""


def write_output(
    path: Path,
    data: str | bytes,
    option: str,
    inputs: Sequence[Path | None] = (),
    mode: int = 0o644,
    replace: bool = True,
) -> Path:
    """Write `data` to `path` atomically under the module's rules: a temporary file beside it with
    `mode` (less the umask, unless the mode is private), then renamed over the target — or, without
    `replace`, linked to a name that must not exist. Returns `path`; raises UsageError naming `option`."""
    check_output(path, option, inputs, replace=replace)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        handle, temporary_name = tempfile.mkstemp(prefix=f".{path.name[:100]}-", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot write there ({error.strerror or error})") from None
    temporary = Path(temporary_name)
    try:
        os.fchmod(handle, mode if mode & 0o077 == 0 else mode & ~_umask())
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            check_output(path, option, inputs, replace=True)  # the file it replaces must still be one of ours
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails instead of replacing a file that appeared meanwhile
    except FileExistsError:
        raise UsageError(f"{option} {path}: appeared while it was being written; it was left as it is") from None
    except OSError as error:
        raise UsageError(f"{option} {path}: could not be written ({error.strerror or error})") from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


def append_output(path: Path, text: str, option: str, inputs: Sequence[Path | None] = ()) -> Path:
    """Append `text` to `path` (a CI system's summary file): a new file, or a plain text file of one
    link that is no input and no config, record or binary file; never through a link."""
    check_output(path, option, inputs, append=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags, 0o644)
    except OSError as error:
        raise UsageError(f"{option} {path}: could not be appended to ({error.strerror or error})") from None
    with os.fdopen(descriptor, "ab") as handle:
        facts = os.fstat(handle.fileno())
        if not stat.S_ISREG(facts.st_mode) or facts.st_nlink > 1:
            raise UsageError(f"{option} {path}: is no longer a plain file of one link; nothing was appended")
        try:
            handle.write(text.encode("utf-8"))
        except OSError as error:
            raise UsageError(f"{option} {path}: could not be appended to ({error.strerror or error})") from None
    return path


def is_own_output(path: Path) -> bool:
    """Whether the plain file `path` carries speedproof's mark near its start or its end."""
    head, tail = _ends(path)
    mark = OWN_MARK.encode()
    return (mark in head or mark in tail) and not _is_record(head)


def _append_refusal(path: Path) -> str:
    head, _ = _ends(path)
    if not head or OWN_MARK.encode() in head:
        return ""
    if b"\0" in head:
        return "is a binary file (a model, an archive, an image); a summary is appended only to a text file"
    text = head.decode("utf-8", errors="replace")
    if _is_record(head) or _is_json_document(text):
        return "is a JSON file (a record or settings); a summary is appended only to a summary file"
    if _is_toml_document(text):
        return "is a TOML file (a config, policy or profile); a summary is appended only to a summary file"
    return ""


def _is_json_document(text: str) -> bool:
    import json

    try:
        return isinstance(json.loads(text), (dict, list))
    except (ValueError, RecursionError):
        return text.lstrip().startswith("{")  # a long one, cut at the window


def _is_toml_document(text: str) -> bool:
    from targets.toml_files import tomllib

    try:
        return bool(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, RecursionError):
        return False


def _is_record(head: bytes) -> bool:
    return head.lstrip().startswith(b"{") and b'"schema_version"' in head


def _ends(path: Path) -> tuple[bytes, bytes]:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return b"", b""
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return b"", b""
        head = handle.read(MARK_WINDOW_BYTES)
        size = os.fstat(handle.fileno()).st_size
        if size <= MARK_WINDOW_BYTES:
            return head, head
        handle.seek(size - 4096)
        return head, handle.read(4096)


def _folder_problem(path: Path) -> str:
    folder = path.parent
    try:
        facts = os.stat(folder)
    except (OSError, ValueError):
        return f"folder {folder} does not exist; create it or pass a path in an existing folder"
    if not stat.S_ISDIR(facts.st_mode):
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write into {folder}; pass a writable path"
    return ""


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except (OSError, ValueError):
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
