"""The parent's side of a live worker (`targets.runners.worker --live`): start it, ask it for timed
bursts, stop it, and turn a crash, a hang or a failure it reports into a `LiveWorkerFailed` that
says what happened."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from targets.errors import FailureKind, SpeedproofError
from targets.interrupts import raise_if_interrupted
from targets.runners.base import WorkerRequest
from targets.runners.processes import python_module_command, signal_name, stderr_tail
from targets.runners.protocol import burst_cap_s

DEFAULT_LIVE_WORKER_COMMAND = python_module_command("targets.runners.worker", "--live")
# a burst that has not answered after this many times its length (plus a margin) is a hang
BURST_TIMEOUT_FACTOR = 4.0
BURST_TIMEOUT_MARGIN_S = 30.0


def burst_timeout_s(burst_s: float, min_iterations: int) -> float:
    """How long a burst may take before its worker counts as hung."""
    return burst_cap_s(burst_s, min_iterations) * BURST_TIMEOUT_FACTOR + BURST_TIMEOUT_MARGIN_S


class LiveWorkerFailed(SpeedproofError):
    """The worker failed, crashed or hung; `kind` says which (FELL_BACK when the backend fell back)."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.ERROR) -> None:
        super().__init__(message)
        self.kind = kind


class LiveWorker:
    """One live worker process. Use as a context manager: leaving kills it if it is still running."""

    def __init__(
        self,
        request: WorkerRequest,
        label: str,
        command: Sequence[str] = DEFAULT_LIVE_WORKER_COMMAND,
        request_on_stdin: bool = False,
        explain_exit: Callable[[int, str], tuple[str, FailureKind]] | None = None,
        companions: Sequence[WorkerRequest] = (),
    ) -> None:
        """`request_on_stdin`: send the request as the first stdin line instead of a file path argument
        (a worker on another machine, behind ssh). `explain_exit(returncode, stderr tail)` words a
        worker that ended early (ssh's 255 is a lost connection, not a crash). `companions`: more
        artifacts loaded in the same process (sides 1, 2, ...; `burst(side=...)` picks one)."""
        if companions and request_on_stdin:
            raise ValueError("a worker that reads its request from stdin takes no companions")
        self.request = request
        self.companions = tuple(companions)
        self.label = label
        self.command = tuple(command)
        self.request_on_stdin = request_on_stdin
        self.explain_exit = explain_exit
        self.ready: dict[str, Any] = {}
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def launch(self) -> None:
        """Start the worker process without waiting for it (once): several can load side by side."""
        if self._process is not None:
            return
        self._folder = tempfile.TemporaryDirectory(prefix="speedproof-live-")
        folder = Path(self._folder.name)
        request_path = folder / "request.json"
        request_path.write_text(json.dumps(self.request.as_dict()))
        companion_paths = []
        for index, companion in enumerate(self.companions, start=1):
            companion_paths.append(folder / f"companion-{index}.json")
            companion_paths[-1].write_text(json.dumps(companion.as_dict()))
        self._stderr_path = folder / "stderr.txt"
        with self._stderr_path.open("wb") as stderr_file:
            self._process = subprocess.Popen(
                list(self.command)
                if self.request_on_stdin
                else [*self.command, str(request_path), *map(str, companion_paths)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
            )
        if self.request_on_stdin:
            self._send(self.request.as_dict())

    def start(self, timeout_s: float) -> dict[str, Any]:
        """Start the worker (unless `launch` did) and wait until it has loaded and warmed up; return
        its ready message."""
        self.launch()
        self.ready = self._read_message(timeout_s, "loading and warming up")
        return self.ready

    def burst(self, burst_s: float, min_iterations: int = 1, side: int = 0) -> dict[str, Any]:
        """Time iterations of side `side` (0: the request, 1...: its companions) for `burst_s` seconds
        and at least `min_iterations` (capped at `burst_cap_s`); return {"latencies_ns", "duration_s",
        "other_cpu_share"}."""
        command: dict[str, Any] = {"burst_s": burst_s, "min_iterations": min_iterations}
        if side:
            command["side"] = side
        self._send(command)
        return self._read_message(burst_timeout_s(burst_s, min_iterations), "a timed burst")

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Ask the worker to finish; return its final message (peak memory)."""
        self._send({"stop": True})
        message = self._read_message(timeout_s, "stopping")
        assert self._process is not None
        self._process.wait(timeout=timeout_s)
        return message

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._process is not None:
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    # a link that died leaves an unsent command in stdin's buffer: closing tries to flush it
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> LiveWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        raise_if_interrupted()  # a Ctrl-C swallowed by a finalizer stops the run here
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write((json.dumps(message) + "\n").encode())
            self._process.stdin.flush()
        except BrokenPipeError:
            raise self._died("while receiving a command") from None

    def _read_message(self, timeout_s: float, doing: str) -> dict[str, Any]:
        """The next JSON line from the worker; lines that are not JSON (a library's chatter) are skipped."""
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._read_line(deadline, timeout_s, doing)
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict):
                break
        if message.get("status") == "failed":
            kind = FailureKind(message.get("kind") or FailureKind.ERROR)
            raise LiveWorkerFailed(f"{self.label}: {message.get('error')}", kind=kind)
        return message

    def _read_line(self, deadline: float, timeout_s: float, doing: str) -> bytes:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                raise_if_interrupted()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._process.kill()
                    self._process.wait()
                    raise LiveWorkerFailed(
                        f"{self.label} worker hung: no answer after {timeout_s:.0f} s of {doing}", FailureKind.HUNG
                    )
                if not selector.select(timeout=remaining):
                    continue
                chunk = os.read(stdout.fileno(), 1 << 16)
                if not chunk:
                    self._process.wait()
                    raise self._died(f"while {doing}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _died(self, doing: str) -> LiveWorkerFailed:
        assert self._process is not None
        returncode = self._process.wait()
        tail = stderr_tail(self._stderr_path)
        if self.explain_exit is not None and returncode > 0:
            message, kind = self.explain_exit(returncode, tail)
            return LiveWorkerFailed(f"{self.label} worker {doing}: {message}", kind)
        how = f"crashed with {signal_name(returncode)}" if returncode < 0 else f"exited with code {returncode}"
        return LiveWorkerFailed(
            f"{self.label} worker {how} {doing}" + (f"; its last output:\n{tail}" if tail else ""), FailureKind.CRASHED
        )
