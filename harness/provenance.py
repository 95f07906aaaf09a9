"""Where a run came from: run id, UTC time, tool version, the git commit of the current folder,
and the header every result record starts with."""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from targets.host import HostFingerprint
    from targets.profiles import ResolvedProfile

GIT_TIMEOUT_S = 5


def new_run_id() -> str:
    return uuid.uuid4().hex


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _git(args: list[str], folder: Path) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def git_commit(folder: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout holding `folder` (default: the current folder); (None, None)
    outside a checkout."""
    where = folder or Path.cwd()
    commit = _git(["rev-parse", "HEAD"], where)
    if not commit:
        return None, None
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return commit, bool(status)


def record_header(command: str, host: HostFingerprint, resolved: ResolvedProfile | None, run_id: str) -> dict[str, Any]:
    """The fields every result record starts with: schema, provenance, host and target (None for a
    record that spans several targets: its cells name theirs)."""
    from harness import __version__
    from harness.results_store import SCHEMA_VERSION

    commit, dirty = git_commit()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": utc_now_iso(),
        "tool_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "command": command,
        "host": host.as_dict(),
        "target": resolved.as_dict() if resolved is not None else None,
    }
