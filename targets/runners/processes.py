"""Starting worker processes so that they import only installed code, running one to its end with
nothing it started left behind, and what a worker process left behind when it died: the tail of
its stderr and the signal's name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from targets.interrupts import raise_if_interrupted

STDERR_TAIL_LINES = 8
# how long the reaper of user code gets to stop what it started
REAPER_GRACE_S = 5.0
# what of a process's output is read to show its tail
STDERR_TAIL_BYTES = 16 * 1024
STDERR_LINE_CHARS = 400


def stderr_tail(path: Path) -> str:
    """The last lines a process wrote, read from the file's end only (a process that printed
    hundreds of megabytes costs no more than one that printed a line)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - STDERR_TAIL_BYTES))
            text = handle.read(STDERR_TAIL_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line[:STDERR_LINE_CHARS] for line in text.strip().splitlines()]
    return "\n".join(lines[-STDERR_TAIL_LINES:])


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def python_module_command(module: str, *arguments: str) -> tuple[str, ...]:
    """`python -m module ...` without the current folder on `sys.path`.

    `python -m` puts the current folder first on `sys.path`, so a `numpy.py` lying beside a model
    would run inside the worker. `-P` (Python 3.11+) leaves it out; on 3.10 the bootstrap removes it.
    """
    if sys.version_info >= (3, 11):
        return (sys.executable, "-P", "-m", module, *arguments)
    bootstrap = f"import runpy, sys; sys.path.pop(0); runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return (sys.executable, "-c", bootstrap, *arguments)


def run_to_end(
    command: Sequence[str],
    output_path: Path,
    timeout_s: float,
    preexec_fn: Callable[[], None] | None = None,
    reaped: bool = False,
    cwd: Path | None = None,
) -> int | None:
    """Run `command` with stdout and stderr into `output_path`; return its exit status, or None when
    it ran out of time and was killed. However the wait ends (Ctrl-C, SIGTERM), neither it nor any
    process it started outlives it: it runs in a session of its own, whose whole group is killed;
    with `reaped` (user code) it runs under `targets.runners.reaper`, which also stops what left that
    session with `setsid`."""
    if reaped:
        command = python_module_command("targets.runners.reaper", *command)
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            preexec_fn=preexec_fn,
            start_new_session=True,
            cwd=cwd,
        )
        try:
            raise_if_interrupted()
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if reaped and process.poll() is None:
                process.terminate()  # the reaper stops everything below it, then itself
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=REAPER_GRACE_S)
            kill_process_group(process.pid)
            if process.poll() is None:
                process.kill()
                process.wait()


@contextmanager
def no_child_left() -> Iterator[None]:
    """However the block ends, no process this one started is left running after it: whatever
    stopped the run (a Ctrl-C that landed inside `subprocess.Popen`, after the fork and before the
    caller had the process to stop) cannot leave a worker behind."""
    import psutil

    before = {child.pid for child in psutil.Process().children()}
    try:
        yield
    finally:
        left = [child for child in psutil.Process().children() if child.pid not in before]
        for child in left:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(left, timeout=5)


def kill_process_group(group_id: int) -> None:
    """SIGKILL every process left in a process group (a child's children that it did not stop)."""
    try:
        os.killpg(group_id, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left in it
