"""speedproof's settings read from environment variables (limits a user may raise), with errors
that name the variable and what would be valid."""

from __future__ import annotations

import os

from targets.errors import ConfigurationError


def positive_number_from_environment(name: str, default: float) -> float:
    """The positive, finite number `$name` holds, or `default` when it is not set."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigurationError(f"environment variable {name}={text!r}; expected a positive number")
    return value
