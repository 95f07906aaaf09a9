"""Reading TOML files (profiles, policies, gate configs) with errors that name the file, through
the one way in (targets.files_in): plain files only, capped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from targets.errors import ConfigurationError
from targets.files_in import CONFIG_CAP_BYTES, read_input_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def read_toml_file(path: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; missing or invalid files are errors naming the file."""
    text = read_input_text(path, what, CONFIG_CAP_BYTES, ConfigurationError)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigurationError(f"{path}: not valid TOML: nested too deeply") from None
