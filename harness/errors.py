"""The one exception type of speedproof, and helpers that make its messages useful."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpeedproofError(Exception):
    """An error a user can act on: the message says what was asked and what exists."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' when a close match exists, else ''."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{matches[0]}"?)' if matches else ""


def unknown_choice(kind: str, word: str, choices: Iterable[str]) -> SpeedproofError:
    """Error for a name that is not one of `choices`, listing the valid ones."""
    ordered = sorted(choices)
    return SpeedproofError(f"unknown {kind} {word!r}{did_you_mean(word, ordered)}; valid: {', '.join(ordered)}")


class BackendFellBack(SpeedproofError):
    """The backend ran on something other than what was asked (e.g. ORT on CPU instead of CUDA)."""
