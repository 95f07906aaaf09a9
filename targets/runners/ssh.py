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

Steps share one connection (OpenSSH's ControlMaster): the first step's ssh authenticates and stays in
the background as the master, later steps and live workers open sessions on it, so a step costs no
new key exchange (about half of a step's time to a board on this host's loopback; more to a slow board).
The master is this process's own (its socket is named after the pid, the address and the config
file, so another run or another config never rides on it) and is told to exit when the process
does; `ControlPersist` ends it anyway after a while idle if the process was killed.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from targets.errors import FailureKind
from targets.runners.agent import AGENT_MODULE, AgentRunner, RemoteError
from targets.ssh_address import SshAddress

SSH_EXIT_CONNECTION = 255  # ssh's own failure: the remote command never ran or the link dropped
CONNECT_TIMEOUT_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3  # a board silent for 15 s is gone
CONTROL_PERSIST_S = 120  # a master left behind by a killed run ends after this long idle

__all__ = ["RemoteError", "SshAddress", "SshRunner", "explain_ssh_failure"]


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


class SshRunner(AgentRunner):
    """Measures on a remote machine through its own speedproof, reached over SSH."""

    def __init__(self, address: SshAddress, ssh_config: Path | None = None) -> None:
        self.address = address
        self.label = str(address)
        self.ssh_config = ssh_config

    def agent_command(self, *agent_arguments: str) -> list[str]:
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
        command += self._control_options()
        command += self._address_options()
        remote = shlex.join([self.address.python, "-m", AGENT_MODULE, *agent_arguments])
        return [*command, self.address.host, "--", remote]

    def _address_options(self) -> list[str]:
        options = []
        if self.ssh_config is not None:
            options += ["-F", str(self.ssh_config)]
        if self.address.port:
            options += ["-p", str(self.address.port)]
        if self.address.user:
            options += ["-l", self.address.user]
        return options

    def _control_options(self) -> list[str]:
        """Share one connection among this process's steps to this address under this config."""
        # /tmp first: a socket path has ~100 bytes at most, and some TMPDIRs (macOS's) use half of that
        base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
        folder = base / f"speedproof-ssh-{os.getuid()}"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            status = folder.stat()
        except OSError:
            return []
        if status.st_uid != os.getuid() or status.st_mode & 0o077:
            return []  # a folder others can write to or made by someone else: no shared connection
        identity = f"{self.address}|{self.address.host}|{self.ssh_config and self.ssh_config.resolve()}"
        path = folder / f"{os.getpid()}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
        if path not in _MASTERS:
            _MASTERS[path] = [*self._address_options(), self.address.host]
        return [
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={path}",
            "-o",
            f"ControlPersist={CONTROL_PERSIST_S}",
        ]

    def transport_failure(self, returncode: int, stderr: str) -> RemoteError | None:
        if returncode == SSH_EXIT_CONNECTION:
            return RemoteError(explain_ssh_failure(self.address, stderr), FailureKind.LOST)
        return None

    def missing_program(self, error: OSError) -> str:
        return f"cannot run ssh: {error} (install OpenSSH's client)"

    def python_name(self) -> str:
        return self.address.python

    def board_path(self, local_path: str) -> str:
        """Where the artifact is on the board: copied there unless its content hash is already cached."""
        return self.copy_by_content_hash(local_path)


# control socket -> the ssh arguments that reach its master (this process's masters only)
_MASTERS: dict[Path, list[str]] = {}


@atexit.register
def stop_masters() -> None:
    """Tell this process's shared connections to exit (sessions still open on one end with it)."""
    for path, arguments in list(_MASTERS.items()):
        if path.exists():
            try:
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={path}", "-O", "exit", *arguments],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError):
                pass  # ControlPersist ends it after a while idle
        del _MASTERS[path]
