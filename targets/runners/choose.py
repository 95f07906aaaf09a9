"""Which runner a run uses: this host, a machine over SSH (`ssh://...`), an emulated aarch64 Python
on this host (`qemu-aarch64:FOLDER`), or a device in a Dask cluster (`cluster:tcp://host:port`, what
`--cluster` and `--device` say), from `--remote`, else the target profile's `remote`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from targets.errors import UsageError
from targets.runners.base import Runner
from targets.runners.cluster_worker import CLUSTER_SCHEME
from targets.runners.emulated import SCHEME, EmulatedAarch64Runner, emulated_folder
from targets.runners.ssh import SshAddress, SshRunner

REMOTE_FORMS = "ssh://[user@]host[:port][?python=PATH], qemu-aarch64:[FOLDER] or cluster:tcp://host:port[?device=TAG]"


def runner_for(
    remote: str | None,
    ssh_config: Path | None = None,
    target: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Runner:
    """The runner for `--remote`, else for the `remote` key of the `target` profile, else this host's;
    `progress` hears of its long steps (copies of large artifacts to another machine)."""
    if remote is None and target is not None:
        from targets.profiles import load_target

        remote = load_target(target).remote
    if remote is None:
        from targets.runners.local import LocalRunner

        return LocalRunner()
    return remote_runner(remote, ssh_config, target, progress)


def remote_runner(
    remote: str,
    ssh_config: Path | None = None,
    target: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Runner:
    """The runner for a remote address; a cluster's needs the target its worker must offer."""
    runner = _remote_runner(remote, ssh_config, target)
    if progress is not None:
        runner.on_progress = progress
    return runner


def _remote_runner(remote: str, ssh_config: Path | None, target: str | None) -> Runner:
    if remote.startswith(CLUSTER_SCHEME):
        from targets.runners.cluster import ClusterAddress, ClusterRunner

        if target is None:
            raise UsageError(
                "--cluster needs --target NAME: a worker is chosen by the target it serves (speedproof worker --target)"
            )
        from targets.profiles import load_target

        return ClusterRunner(ClusterAddress.parse(remote), load_target(target).name)
    if remote.startswith(SCHEME):
        runner = EmulatedAarch64Runner(emulated_folder(remote))
        problem = runner.setup_problem()
        if problem:
            raise UsageError(problem)
        return runner
    if remote.startswith("ssh://"):
        return SshRunner(SshAddress.parse(remote), ssh_config)
    raise UsageError(f"--remote {remote!r}: expected {REMOTE_FORMS}")


def check_remote(remote: str) -> None:
    """Validate a remote address without reaching it (config files are checked before anything runs)."""
    if remote.startswith(SCHEME):
        return
    if remote.startswith("ssh://"):
        SshAddress.parse(remote)
        return
    if remote.startswith(CLUSTER_SCHEME):
        from targets.runners.cluster import ClusterAddress

        ClusterAddress.parse(remote)
        return
    raise UsageError(f"remote {remote!r}: expected {REMOTE_FORMS}")
