"""Runs one cell in a fresh local worker process and survives it crashing or hanging.

The worker (`python -m harness.worker`) gets its request and writes its result as JSON files in a
private temporary folder; its stderr goes to a file there, so a crash can be explained.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STDERR_TAIL_LINES = 8
DEFAULT_WORKER_COMMAND = (sys.executable, "-m", "harness.worker")


def stderr_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-STDERR_TAIL_LINES:])


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


class LocalWorkerRunner:
    """Measures cells in worker processes on this host."""

    def __init__(self, worker_command: Sequence[str] = DEFAULT_WORKER_COMMAND) -> None:
        self.worker_command = tuple(worker_command)

    def run_cell(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Return the worker's result, or a failed result saying how the worker died."""
        with tempfile.TemporaryDirectory(prefix="speedproof-cell-") as folder:
            request_path = Path(folder) / "request.json"
            result_path = Path(folder) / "result.json"
            stderr_path = Path(folder) / "stderr.txt"
            request_path.write_text(json.dumps(request))
            with stderr_path.open("wb") as stderr_file:
                process = subprocess.Popen(
                    [*self.worker_command, str(request_path), str(result_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr_file,
                    stderr=stderr_file,
                )
                try:
                    returncode = process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    return _failed(f"worker hung: killed after {timeout_s:.0f} s without finishing")
            if returncode < 0:
                tail = stderr_tail(stderr_path)
                return _failed(
                    f"worker crashed with {signal_name(returncode)}" + (f"; its last output:\n{tail}" if tail else "")
                )
            if not result_path.exists():
                tail = stderr_tail(stderr_path)
                return _failed(
                    f"worker exited with code {returncode} and wrote no result"
                    + (f"; its last output:\n{tail}" if tail else "")
                )
            try:
                result: dict[str, Any] = json.loads(result_path.read_text())
            except json.JSONDecodeError as error:
                return _failed(f"worker wrote an unreadable result: {error}")
            return result


def _failed(message: str) -> dict[str, Any]:
    return {"status": "failed", "error": message}
