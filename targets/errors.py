"""The exception types of speedproof (one base, three kinds), helpers that make its messages useful, and the failure
kinds every layer shares. It sits in `targets`, the bottom layer, so that the code that runs on a
device (backends, workers) and the code that plans runs (harness) speak the same words."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import Enum


class SpeedproofError(Exception):
    """An error a user can act on: the message says what was asked and what exists. The CLI prints it
    and exits 2; the Python API raises it. Three kinds say whose move it is:"""


class UsageError(SpeedproofError):
    """The call itself: an unknown name (recipe, target, backend, zoo model), a bad value or a combination
    of options that cannot be, an --input-shape or --input-value the model does not have."""


class ConfigurationError(SpeedproofError):
    """A file of settings: a target profile, a policy, a gate config, fleet TLS files, a limit set in an
    environment variable. The message names the file (or variable) and the field."""


class InputError(SpeedproofError):
    """What was given to be measured or read: a model source, a candidate, data, a metric function, a
    stored record. The message names it and says what would be valid."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' when a close match exists, else ''."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{matches[0]}"?)' if matches else ""


def unknown_choice(kind: str, word: str, choices: Iterable[str]) -> UsageError:
    """Error for a name that is not one of `choices`, listing the valid ones."""
    ordered = sorted(choices)
    return UsageError(f"unknown {kind} {word!r}{did_you_mean(word, ordered)}; valid: {', '.join(ordered)}")


class BackendFellBack(SpeedproofError):
    """The backend ran on something other than what was asked (e.g. ORT on CPU instead of CUDA)."""


class TextEnum(str, Enum):
    """An enum whose members are their JSON strings: `str()`, f-strings and json.dumps give the value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class FailureKind(TextEnum):
    """Why a measurement produced no numbers. FELL_BACK is a verdict reason of its own."""

    ERROR = "error"  # the worker raised: bad artifact, wrong inputs, runtime error
    FELL_BACK = "fell_back"  # the backend ran on something other than what was asked
    CRASHED = "crashed"  # the worker died from a signal or exited without a result
    HUNG = "hung"  # the worker did not answer in time and was killed
    LOST = "lost"  # the connection to a remote machine failed or dropped (ssh exit status 255)
    MEMORY_EXCEEDED = "memory_exceeded"  # the worker's resident memory passed the profile's memory cap
