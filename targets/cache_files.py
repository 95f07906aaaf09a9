"""This machine's speedproof files: where a cache folder lives and the content hash artifacts are
filed and checked by (shared by the board agent, the runners and the TensorRT engine cache)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20


def speedproof_cache(name: str, override_variable: str) -> Path:
    """A cache folder of this machine's: $override_variable, else ~/.cache/speedproof/NAME (XDG_CACHE_HOME)."""
    configured = os.environ.get(override_variable)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "speedproof" / name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
