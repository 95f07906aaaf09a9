"""Where a run came from: run id, UTC time and the git commit of the current folder."""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path

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
