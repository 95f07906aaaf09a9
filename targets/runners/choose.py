"""Which runner a run uses: this host, a machine over SSH (`ssh://...`), or an emulated aarch64
Python on this host (`qemu-aarch64:FOLDER`), from `--remote`, else the target profile's `remote`."""

from __future__ import annotations

from pathlib import Path

from targets.errors import SpeedproofError
from targets.runners.base import Runner
from targets.runners.emulated import SCHEME, EmulatedAarch64Runner, emulated_folder
from targets.runners.ssh import SshAddress, SshRunner

REMOTE_FORMS = "ssh://[user@]host[:port][?python=PATH] or qemu-aarch64:[FOLDER]"


def runner_for(remote: str | None, ssh_config: Path | None = None, target: str | None = None) -> Runner:
    """The runner for `--remote`, else for the `remote` key of the `target` profile, else this host's."""
    if remote is None and target is not None:
        from targets.profiles import load_target

        remote = load_target(target).remote
    if remote is None:
        from targets.runners.local import LocalRunner

        return LocalRunner()
    return remote_runner(remote, ssh_config)


def remote_runner(remote: str, ssh_config: Path | None = None) -> Runner:
    if remote.startswith(SCHEME):
        runner = EmulatedAarch64Runner(emulated_folder(remote))
        problem = runner.setup_problem()
        if problem:
            raise SpeedproofError(problem)
        return runner
    if remote.startswith("ssh://"):
        return SshRunner(SshAddress.parse(remote), ssh_config)
    raise SpeedproofError(f"--remote {remote!r}: expected {REMOTE_FORMS}")


def check_remote(remote: str) -> None:
    """Validate a remote address without reaching it (config files are checked before anything runs)."""
    if remote.startswith(SCHEME):
        return
    if remote.startswith("ssh://"):
        SshAddress.parse(remote)
        return
    raise SpeedproofError(f"remote {remote!r}: expected {REMOTE_FORMS}")
