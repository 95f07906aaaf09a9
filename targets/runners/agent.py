"""A runner for a machine speedproof reaches through its board agent (`targets.runners.board_agent`):
each step is one command (over ssh for a remote machine, through qemu for an emulated one) that
speaks JSON on stdin/stdout. Subclasses say how the command is started (`agent_command`), where an
artifact is on that machine (`board_path`), and how the transport's own failures read
(`transport_failure`); everything else (fingerprint, compatibility, cells, live A/B workers,
quality outputs) is the same for every such machine.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from targets.cache_files import file_sha256
from targets.errors import FailureKind, SpeedproofError
from targets.onnx_external_data import external_data_of_file
from targets.runners.base import BurstWorker, CellResult, Runner, WorkerRequest
from targets.runners.board_agent import speedproof_version
from targets.runners.live import LiveWorker

if TYPE_CHECKING:
    import numpy as np

    from targets.host.fingerprint import HostFingerprint
    from targets.profiles import BackendSpec, TargetProfile

AGENT_MODULE = "targets.runners.board_agent"
STEP_TIMEOUT_S = 120.0  # hello, has: seconds; a copy gets more per MiB, quality outputs five times this
COPY_S_PER_MIB = 2.0
REPORTED_COPY_MIB = 16  # copies from this size on are announced to the run's progress


class RemoteError(SpeedproofError):
    """A step on the other machine failed; `kind` says whether its link did (LOST)."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.ERROR) -> None:
        super().__init__(message)
        self.kind = kind


def local_version() -> str:
    return speedproof_version()


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no message"


class AgentRunner(Runner):
    """Measures on another machine through its board agent."""

    label = "agent"  # how the machine is named in messages and records (ssh://..., qemu-aarch64:...)
    check_version = True  # the same speedproof on both ends (off where both ends share one source tree)

    @abstractmethod
    def agent_command(self, *agent_arguments: str) -> list[str]:
        """The command line that runs the board agent with these arguments."""

    @abstractmethod
    def board_path(self, local_path: str) -> str:
        """Where the artifact at `local_path` is on the machine (copied there if need be)."""

    def copy_by_content_hash(self, local_path: str) -> str:
        """The artifact's path in the machine's cache, copied there unless a file with its sha256 is
        already cached (`has` checks the hash of what is there; `put` checks what arrived). An ONNX
        model with external data goes with its data files, linked beside it there (`bundle`)."""
        path = Path(local_path)
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        copied: dict[tuple[str, int, int], str] = self.__dict__.setdefault("_copied_paths", {})
        if key in copied:
            return copied[key]
        try:
            data_files = external_data_of_file(path)
        except SpeedproofError as error:
            raise RemoteError(f"{self.label}: cannot copy {path}: {error}") from None
        digest, remote = self._copy_file(path)
        if data_files:
            manifest = {
                "model": {"name": path.name, "sha256": digest},
                "files": [
                    {"location": location, "sha256": self._copy_file(data, PurePosixPath(location).name)[0]}
                    for location, data in data_files.items()
                ],
            }
            remote = str(self.json_step(["bundle"], manifest)["path"])
        copied[key] = remote
        return remote

    def _copy_file(self, path: Path, name: str | None = None) -> tuple[str, str]:
        """One file into the machine's cache by content hash, filed as `name` (its own by default): its
        sha256 and its path there."""
        digest, name = file_sha256(path), name or path.name
        remote = self.json_step(["has", digest, name], {}).get("path")
        if not remote:
            mib = path.stat().st_size / 2**20
            if mib >= REPORTED_COPY_MIB:
                self.progress(f"copying {path.name} ({mib:.0f} MiB) to {self.label}")
            started = time.monotonic()
            stored = self.agent(["put", digest, name], path, STEP_TIMEOUT_S + COPY_S_PER_MIB * mib)
            remote = json.loads(stored.decode().strip().splitlines()[-1])["path"]
            if mib >= REPORTED_COPY_MIB:
                took = time.monotonic() - started
                self.progress(f"copied {path.name} in {took:.1f} s ({mib / max(took, 1e-3):.1f} MiB/s)")
        return digest, str(remote)

    def transport_failure(self, returncode: int, stderr: str) -> RemoteError | None:
        """The transport's own failure (ssh's 255), or None when the agent itself answered."""
        return None

    def missing_program(self, error: OSError) -> str:
        return f"cannot start {self.agent_command()[0]}: {error}"

    # steps -----------------------------------------------------------------------------------
    def run_step(self, arguments: Sequence[str], stdin: bytes | Path, timeout_s: float) -> tuple[int, bytes, bytes]:
        """Run the agent with these arguments on the machine, `stdin` given as bytes or as a file read
        as it goes (a large artifact is never held in memory); its exit status, stdout and stderr.
        A step that does not end within `timeout_s` is a RemoteError (HUNG)."""
        command = self.agent_command(*arguments)
        try:
            if isinstance(stdin, Path):
                with stdin.open("rb") as handle:
                    completed = subprocess.run(
                        command, stdin=handle, capture_output=True, timeout=timeout_s, check=False
                    )
            else:
                completed = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RemoteError(
                f"{self.label}: no answer within {timeout_s:.0f} s ({arguments[0]})", FailureKind.HUNG
            ) from None
        except OSError as error:
            raise RemoteError(self.missing_program(error)) from None
        return completed.returncode, completed.stdout, completed.stderr

    def agent(self, arguments: Sequence[str], stdin: bytes | Path, timeout_s: float) -> bytes:
        """Run one agent step; its stdout, or a RemoteError that says what went wrong."""
        returncode, stdout, stderr_bytes = self.run_step(arguments, stdin, timeout_s)
        stderr = stderr_bytes.decode(errors="replace")
        transport = self.transport_failure(returncode, stderr)
        if transport is not None:
            raise transport
        if returncode != 0:
            raise RemoteError(self._agent_failure(returncode, stdout, stderr))
        return stdout

    def _agent_failure(self, returncode: int, stdout: bytes, stderr: str) -> str:
        for line in reversed(stdout.decode(errors="replace").splitlines()):
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict) and message.get("status") == "failed":
                return f"{self.label}: {message.get('error')}"
        python = self.python_name()
        if "No module named" in stderr and "targets" in stderr:
            return (
                f"{self.label}: the board lacks speedproof ({python} cannot import it): install the same version "
                f"there (pip install speedproof=={local_version()}), or name its Python with ?python=/path/to/python"
            )
        if returncode == 127 or "not found" in stderr or "No such file" in stderr:
            return f"{self.label}: the board has no {python!r} ({last_line(stderr)}); name its Python with ?python=PATH"
        return f"{self.label}: the board's speedproof failed with exit code {returncode} ({last_line(stderr)})"

    def python_name(self) -> str:
        return "python3"

    def json_step(self, arguments: Sequence[str], payload: Any, timeout_s: float = STEP_TIMEOUT_S) -> dict[str, Any]:
        stdout = self.agent(arguments, json.dumps(payload).encode(), timeout_s)
        for line in stdout.decode(errors="replace").splitlines():
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict):
                return message
        raise RemoteError(f"{self.label}: the board's speedproof answered nothing readable to {arguments[0]}")

    def explain_exit(self, returncode: int, stderr_tail: str) -> tuple[str, FailureKind]:
        """How a live worker that ended early reads (LiveWorker's explain_exit)."""
        transport = self.transport_failure(returncode, stderr_tail)
        if transport is not None:
            return str(transport), transport.kind
        return f"exited with code {returncode} on {self.label}; its last output:\n{stderr_tail}", FailureKind.CRASHED

    # the machine -----------------------------------------------------------------------------
    @cached_property
    def hello(self) -> dict[str, Any]:
        hello = self.json_step(["hello"], {"backends": []})
        board, here = hello.get("speedproof"), local_version()
        if self.check_version and board != here:
            raise RemoteError(
                f"{self.label}: the board runs speedproof {board}, this host {here}; results are only comparable "
                f"from the same version: pip install speedproof=={here} on the board"
            )
        return hello

    def fingerprint(self) -> HostFingerprint:
        from targets.host.fingerprint import HostFingerprint

        return replace(HostFingerprint.from_dict(self.hello["fingerprint"]), remote=self.label)

    def available_cpus(self) -> list[int]:
        return [int(cpu) for cpu in self.hello["available_cpus"]]

    def can_run(self, profile: TargetProfile) -> list[str]:
        from targets.runners.compatibility import reasons_host_cannot_run

        return reasons_host_cannot_run(profile, self.fingerprint(), self._backend_reasons)

    def _backend_reasons(self, backends: Sequence[BackendSpec]) -> list[str | None]:
        payload = {"backends": [{"name": backend.name, "options": dict(backend.options)} for backend in backends]}
        reasons = self.json_step(["hello"], payload)["backends"]
        return [None if reason is None else f"on {self.label}: {reason}" for reason in reasons]

    # Runner ----------------------------------------------------------------------------------
    def run_cell(self, request: WorkerRequest, timeout_s: float) -> CellResult:
        try:
            remote_request = replace(request, artifact_path=self.board_path(request.artifact_path))
            answer = self.json_step(["cell"], remote_request.as_dict(), timeout_s)
        except RemoteError as error:
            return CellResult.failed(str(error), error.kind)
        return CellResult.from_dict(answer)

    def start_live_worker(self, request: WorkerRequest, label: str) -> BurstWorker:
        remote_request = replace(request, artifact_path=self.board_path(request.artifact_path))
        return LiveWorker(
            remote_request,
            label,
            command=self.agent_command("live"),
            request_on_stdin=True,
            explain_exit=self.explain_exit,
        )

    def outputs(
        self, artifact_path: str, backend: BackendSpec, threads: int, feeds: Sequence[dict[str, np.ndarray]]
    ) -> list[list[np.ndarray]]:
        import numpy as np

        header = {
            "artifact_path": self.board_path(artifact_path),
            "backend": backend.name,
            "options": dict(backend.options),
            "threads": threads,
        }
        arrays: dict[str, Any] = {
            f"feed_{index}_{name}": value for index, feed in enumerate(feeds) for name, value in feed.items()
        }
        archive = io.BytesIO()
        np.savez(archive, **arrays)
        stdout = self.agent(["outputs"], json.dumps(header).encode() + b"\n" + archive.getvalue(), STEP_TIMEOUT_S * 5)
        with np.load(io.BytesIO(stdout), allow_pickle=False) as returned:
            found = [key.removeprefix("out_").split("_") for key in returned.files]
            per_feed: list[list[np.ndarray]] = [[] for _ in feeds]
            for feed_index, output_index in sorted((int(a), int(b)) for a, b in found):
                per_feed[feed_index].append(returned[f"out_{feed_index}_{output_index}"])
        return per_feed
