"""A real OpenSSH server on 127.0.0.1 for the remote-run tests: Debian's `sshd` started on a free
port with a generated host key, a generated user key in its authorized keys, and a client config
(`ssh -F`) that names them. The "board" is this host, reached through sshd like any other machine;
its artifact cache is a folder of the test's (sent with SetEnv, accepted with AcceptEnv).

`.ci/run` installs openssh-server; where `sshd` is missing the tests that need it skip, saying so.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
SSH_KEYGEN = shutil.which("ssh-keygen")
MISSING = None if SSHD and SSH_KEYGEN and shutil.which("ssh") else "needs OpenSSH's sshd, ssh and ssh-keygen"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class SshBoard:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def config(self) -> Path:
        """The client config that reaches the board as host alias `board`."""
        return self.folder / "ssh_config"

    @property
    def cache(self) -> Path:
        return self.folder / "board-cache"

    def url(self, python: str = sys.executable) -> str:
        return f"ssh://board?python={python}"

    def client_config(self, name: str, known_hosts: Path | None = None, identity: Path | None = None) -> Path:
        """Another client config: a different known_hosts or user key (for the refusal tests)."""
        path = self.folder / name
        path.write_text(
            _client_config(self, known_hosts or self.folder / "known_hosts", identity or self.folder / "user_key")
        )
        return path

    def drop_connections(self) -> None:
        """Kill every session's sshd process (the daemon keeps listening): live links die mid-run."""
        subprocess.run(["pkill", "-KILL", "-P", str(self.process.pid)], check=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        subprocess.run(["pkill", "-KILL", "-P", str(self.process.pid)], check=False)


def _client_config(board: SshBoard, known_hosts: Path, identity: Path) -> str:
    return (
        "Host board\n"
        "  HostName 127.0.0.1\n"
        f"  Port {board.port}\n"
        f"  User {getpass.getuser()}\n"
        f"  IdentityFile {identity}\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n"
        f"  SetEnv SPEEDPROOF_BOARD_CACHE={board.cache}\n"
    )


def start_board(folder: Path) -> SshBoard:
    """Start sshd on a free loopback port with fresh keys; return once it accepts connections."""
    assert SSHD is not None and SSH_KEYGEN is not None
    folder.mkdir(parents=True, exist_ok=True)
    for key in ("host_key", "user_key", "other_user_key"):
        _keygen(folder / key)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = _free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {folder / 'host_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "StrictModes no\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        "AcceptEnv SPEEDPROOF_*\n"
        "LogLevel ERROR\n"
    )
    host_key = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation folder
    log = (folder / "sshd.log").open("wb")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(folder / "sshd_config")], stderr=log, stdout=log)
    board = SshBoard(folder, port, process)
    board.config.write_text(_client_config(board, folder / "known_hosts", folder / "user_key"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {(folder / 'sshd.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return board
        except OSError:
            time.sleep(0.05)
    board.stop()
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within 20 s")
