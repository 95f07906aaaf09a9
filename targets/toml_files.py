"""Reading TOML files (profiles, policies, gate configs) with errors that name the file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from targets.errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def read_toml_file(path: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; missing or invalid files are errors naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigurationError(f"{what} {path} is a folder; pass the TOML file") from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); TOML {what} files must be UTF-8"
        ) from None
    except OSError as error:
        raise ConfigurationError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigurationError(f"{path}: not valid TOML: nested too deeply") from None
