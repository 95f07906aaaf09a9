"""The runner for a remote machine over SSH (`--remote ssh://user@host[:port]`): artifacts are copied
to the board by content hash, measured there by the board's own speedproof
(`targets.runners.board_agent`), and the results come back here with the board's fingerprint.

Transport is the system OpenSSH client (`ssh`), not a Python SSH library: it already reads the
user's `~/.ssh/config`, agent and known_hosts, and every option below is one users know. Every call
runs with `BatchMode=yes` (keys only, never a password prompt), `StrictHostKeyChecking=yes` (an
unknown or changed host key is refused, never accepted), a connect timeout, keep-alives that notice
a board that went away, and a timeout of its own. `--ssh-config FILE` (`ssh -F`) names another
config file (a lab's, or a test's). An ssh exit status of 255 is the connection's failure, worded
as such: unreachable, refused host key, refused user key, lost mid-run.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from targets.errors import FailureKind, SpeedproofError
from targets.runners.base import BurstWorker, CellResult, Runner, WorkerRequest
from targets.runners.board_agent import file_sha256, speedproof_version
from targets.runners.live import LiveWorker

if TYPE_CHECKING:
    import numpy as np

    from targets.host import HostFingerprint
    from targets.profiles import BackendSpec, TargetProfile

SSH_EXIT_CONNECTION = 255  # ssh's own failure: the remote command never ran or the link dropped
CONNECT_TIMEOUT_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3  # a board silent for 15 s is gone
STEP_TIMEOUT_S = 120.0  # hello, has: seconds; a copy gets more per MiB
COPY_S_PER_MIB = 2.0
AGENT_MODULE = "targets.runners.board_agent"


class RemoteError(SpeedproofError):
    """A step on the remote machine failed; `kind` says whether the connection did (LOST)."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.ERROR) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SshAddress:
    """`ssh://[user@]host[:port][?python=/path/to/python]`; python: the board's interpreter that has
    speedproof installed (default `python3`)."""

    host: str
    user: str | None = None
    port: int | None = None
    python: str = "python3"

    @classmethod
    def parse(cls, text: str) -> SshAddress:
        parts = urlsplit(text)
        if parts.scheme != "ssh" or not parts.hostname:
            raise SpeedproofError(
                f"--remote {text!r}: expected ssh://[user@]host[:port][?python=/path/to/python], e.g. "
                "ssh://pi@rpi5.local or ssh://ubuntu@10.0.0.7:2222?python=/opt/speedproof/bin/python"
            )
        if parts.password is not None:
            raise SpeedproofError(
                f"--remote {text!r}: a password in the address is refused; speedproof logs in with keys only "
                "(ssh-agent or IdentityFile in ~/.ssh/config)"
            )
        try:
            port = parts.port
        except ValueError:
            raise SpeedproofError(f"--remote {text!r}: the port is not a number from 1 to 65535") from None
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - {"python"})
        if unknown or parts.path not in ("", "/"):
            raise SpeedproofError(
                f"--remote {text!r}: unknown part {(unknown or [parts.path])[0]!r}; the only query key is python"
            )
        python = query.get("python", ["python3"])[-1]
        return cls(host=parts.hostname, user=parts.username, port=port, python=python)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"


def explain_ssh_failure(address: SshAddress, stderr: str) -> str:
    """What ssh's own error (exit status 255) means, in words a user can act on."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else "no message"
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (
            f"{address}: the board's host key is unknown or has changed, and host-key checking is on: check "
            f"the key, then add it to known_hosts (ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts) ({last})"
        )
    if "Permission denied" in text:
        return f"{address}: the board refused the key ({last}); speedproof logs in with keys only"
    if "Connection refused" in text or "timed out" in text or "No route to host" in text or "resolve" in text:
        return f"{address}: the board is unreachable ({last})"
    if "closed by remote host" in text or "Broken pipe" in text or "Connection reset" in text or "Timeout" in text:
        return f"{address}: the connection to the board was lost ({last})"
    return f"{address}: ssh failed ({last})"


class SshRunner(Runner):
    """Measures on a remote machine through its own speedproof, reached over SSH."""

    def __init__(self, address: SshAddress, ssh_config: Path | None = None) -> None:
        self.address = address
        self.ssh_config = ssh_config
        self._remote_paths: dict[tuple[str, int, int], str] = {}  # (local path, size, mtime) -> board path

    # ssh -------------------------------------------------------------------------------------
    def ssh_command(self, *agent_arguments: str) -> list[str]:
        """The ssh command line that runs the board agent with these arguments."""
        command = [
            "ssh",
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "PasswordAuthentication=no",
            "-o",
            "KbdInteractiveAuthentication=no",
            "-o",
            f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o",
            f"ServerAliveInterval={KEEPALIVE_INTERVAL_S}",
            "-o",
            f"ServerAliveCountMax={KEEPALIVE_COUNT}",
        ]
        if self.ssh_config is not None:
            command += ["-F", str(self.ssh_config)]
        if self.address.port:
            command += ["-p", str(self.address.port)]
        if self.address.user:
            command += ["-l", self.address.user]
        remote = shlex.join([self.address.python, "-m", AGENT_MODULE, *agent_arguments])
        return [*command, self.address.host, "--", remote]

    def _agent(self, arguments: Sequence[str], stdin: bytes, timeout_s: float) -> bytes:
        """Run one agent step; its stdout, or a RemoteError that says what went wrong."""
        try:
            completed = subprocess.run(
                self.ssh_command(*arguments), input=stdin, capture_output=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(
                f"{self.address}: no answer within {timeout_s:.0f} s ({arguments[0]})", FailureKind.HUNG
            ) from None
        except OSError as error:
            raise RemoteError(f"cannot run ssh: {error} (install OpenSSH's client)") from None
        stderr = completed.stderr.decode(errors="replace")
        if completed.returncode == SSH_EXIT_CONNECTION:
            raise RemoteError(explain_ssh_failure(self.address, stderr), FailureKind.LOST)
        if completed.returncode != 0:
            raise RemoteError(self._agent_failure(completed.returncode, completed.stdout, stderr))
        return completed.stdout

    def _agent_failure(self, returncode: int, stdout: bytes, stderr: str) -> str:
        for line in reversed(stdout.decode(errors="replace").splitlines()):
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict) and message.get("status") == "failed":
                return f"{self.address}: {message.get('error')}"
        if "No module named" in stderr and "targets" in stderr:
            return (
                f"{self.address}: the board lacks speedproof ({self.address.python} cannot import it): install the "
                f"same version there (pip install speedproof=={local_version()}), or name its Python with "
                "?python=/path/to/python"
            )
        if returncode == 127 or "not found" in stderr:
            return (
                f"{self.address}: the board has no {self.address.python!r} ({_last_line(stderr)}); name its Python "
                "with ?python=/path/to/python"
            )
        return f"{self.address}: the board's speedproof failed with exit code {returncode} ({_last_line(stderr)})"

    def _json_step(self, arguments: Sequence[str], payload: Any, timeout_s: float = STEP_TIMEOUT_S) -> dict[str, Any]:
        stdout = self._agent(arguments, json.dumps(payload).encode(), timeout_s)
        for line in stdout.decode(errors="replace").splitlines():
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict):
                return message
        raise RemoteError(f"{self.address}: the board's speedproof answered nothing readable to {arguments[0]}")

    def explain_exit(self, returncode: int, stderr_tail: str) -> tuple[str, FailureKind]:
        if returncode == SSH_EXIT_CONNECTION:
            return explain_ssh_failure(self.address, stderr_tail), FailureKind.LOST
        return f"exited with code {returncode} on {self.address}; its last output:\n{stderr_tail}", FailureKind.CRASHED

    # the board -------------------------------------------------------------------------------
    @cached_property
    def _hello(self) -> dict[str, Any]:
        hello = self._json_step(["hello"], {"backends": []})
        board, here = hello.get("speedproof"), local_version()
        if board != here:
            raise RemoteError(
                f"{self.address}: the board runs speedproof {board}, this host {here}; results are only comparable "
                f"from the same version: pip install speedproof=={here} on the board"
            )
        return hello

    def fingerprint(self) -> HostFingerprint:
        from targets.host import HostFingerprint

        return replace(HostFingerprint.from_dict(self._hello["fingerprint"]), remote=str(self.address))

    def available_cpus(self) -> list[int]:
        return [int(cpu) for cpu in self._hello["available_cpus"]]

    def can_run(self, profile: TargetProfile) -> list[str]:
        from targets.compatibility import reasons_host_cannot_run

        return reasons_host_cannot_run(profile, self.fingerprint(), self._backend_reasons)

    def _backend_reasons(self, backends: Sequence[BackendSpec]) -> list[str | None]:
        payload = {"backends": [{"name": backend.name, "options": dict(backend.options)} for backend in backends]}
        reasons = self._json_step(["hello"], payload)["backends"]
        return [None if reason is None else f"on {self.address}: {reason}" for reason in reasons]

    def board_path(self, local_path: str) -> str:
        """Where the artifact is on the board: copied there unless its content hash is already cached."""
        path = Path(local_path)
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key in self._remote_paths:
            return self._remote_paths[key]
        digest = file_sha256(path)
        found = self._json_step(["has", digest, path.name], {})
        remote = found.get("path")
        if not remote:
            timeout = STEP_TIMEOUT_S + COPY_S_PER_MIB * stat.st_size / 2**20
            stored = self._agent(["put", digest, path.name], path.read_bytes(), timeout)
            remote = json.loads(stored.decode().strip().splitlines()[-1])["path"]
        self._remote_paths[key] = str(remote)
        return str(remote)

    # Runner ----------------------------------------------------------------------------------
    def run_cell(self, request: WorkerRequest, timeout_s: float) -> CellResult:
        try:
            remote_request = replace(request, artifact_path=self.board_path(request.artifact_path))
            answer = self._json_step(["cell"], remote_request.as_dict(), timeout_s)
        except RemoteError as error:
            return CellResult.failed(str(error), error.kind)
        return CellResult.from_dict(answer)

    def start_live_worker(self, request: WorkerRequest, label: str) -> BurstWorker:
        remote_request = replace(request, artifact_path=self.board_path(request.artifact_path))
        return LiveWorker(
            remote_request,
            label,
            command=self.ssh_command("live"),
            request_on_stdin=True,
            explain_exit=self.explain_exit,
        )

    def first_outputs(
        self, artifact_path: str, backend: BackendSpec, threads: int, feeds: Sequence[dict[str, np.ndarray]]
    ) -> np.ndarray:
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
        stdout = self._agent(["outputs"], json.dumps(header).encode() + b"\n" + archive.getvalue(), STEP_TIMEOUT_S * 5)
        return np.load(io.BytesIO(stdout), allow_pickle=False)


def local_version() -> str:
    return speedproof_version()


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no message"


def runner_for(remote: str | None, ssh_config: Path | None = None, target: str | None = None) -> Runner:
    """The runner for `--remote`, else for the `remote` key of the `target` profile, else this host's."""
    if remote is None and target is not None:
        from targets.profiles import load_target

        remote = load_target(target).remote
    if remote is None:
        from targets.runners.local import LocalRunner

        return LocalRunner()
    return SshRunner(SshAddress.parse(remote), ssh_config)
