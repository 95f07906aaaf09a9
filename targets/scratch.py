"""Temporary folders of one speedproof run. Everything a run puts in the temp folder (its own
work folders, the workers' request and stderr files, what libraries it calls write there) lies
under one run folder, `speedproof-run-<pid>-<start>-*` in the system's temp folder, which is
removed when the run ends, normally, on Ctrl-C or on SIGTERM. A run that was killed outright
(SIGKILL, power loss) cannot clean up: the next run removes the run folders whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RUN_FOLDER_PREFIX = "speedproof-run-"
_RUN_FOLDER_NAME = re.compile(rf"^{RUN_FOLDER_PREFIX}(\d+)-(\d+)-")


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (centiseconds since the epoch), or None when there is none: a pid
    that was reused by a later process has another start time."""
    import psutil

    try:
        return int(psutil.Process(pid).create_time() * 100)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def system_temp_folder() -> Path:
    """The system's temp folder, as it was before any run folder took its place."""
    return Path(os.environ.get("SPEEDPROOF_SYSTEM_TMPDIR") or tempfile.gettempdir())


def stale_run_folders(folder: Path | None = None) -> list[Path]:
    """Run folders in `folder` whose process has ended (or was replaced by another one)."""
    stale = []
    try:
        entries = list((folder or system_temp_folder()).iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _RUN_FOLDER_NAME.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        pid, ticks = int(match.group(1)), int(match.group(2))
        if _start_ticks(pid) != ticks:
            stale.append(entry)
    return stale


def remove_stale_run_folders(folder: Path | None = None) -> int:
    """Remove the run folders of runs that were killed; return how many were removed."""
    stale = stale_run_folders(folder)
    for entry in stale:
        shutil.rmtree(entry, ignore_errors=True)
    return len(stale)


@contextmanager
def run_scratch() -> Iterator[Path]:
    """Make a run folder the temp folder of this process and of the processes it starts (TMPDIR)
    while the block runs; remove it, and the stale run folders of killed runs, afterwards."""
    system_folder = system_temp_folder()
    remove_stale_run_folders(system_folder)
    ticks = _start_ticks(os.getpid())
    root = Path(tempfile.mkdtemp(prefix=f"{RUN_FOLDER_PREFIX}{os.getpid()}-{ticks}-", dir=system_folder))
    saved_tempdir = tempfile.tempdir
    saved_environment = {name: os.environ.get(name) for name in ("TMPDIR", "SPEEDPROOF_SYSTEM_TMPDIR")}
    tempfile.tempdir = str(root)
    os.environ["TMPDIR"] = str(root)
    os.environ["SPEEDPROOF_SYSTEM_TMPDIR"] = str(system_folder)
    try:
        yield root
    finally:
        tempfile.tempdir = saved_tempdir
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)
