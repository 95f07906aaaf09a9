"""The Python API's arguments checked against the functions' own annotations before anything runs:
a call with `sparsities="0.5"`, `budget_s="10"` or `input_shapes=[1.5, 3]` is a UsageError naming
the keyword, what it got and what it takes, never a TypeError from deep inside. `@checked_arguments`
does it for every function of `harness.api`, so a keyword added there is checked on its first day.
One-shot iterables (generators) are read once here and handed on as tuples."""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from os import PathLike
from typing import Any, TypeVar, Union, get_args, get_origin

from targets.errors import UsageError

Function = TypeVar("Function", bound=Callable[..., Any])

# the most items a list argument may have (batch sizes, sparsities, recipes): a bigger one is a mistake
MAX_ITEMS = 10_000


def checked_arguments(function: Function) -> Function:
    """Wrap an API function so that each argument is checked against its annotation first."""
    signature = inspect.signature(function)
    hints: dict[str, Any] | None = None

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal hints
        if hints is None:
            hints = typing.get_type_hints(function)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise UsageError(f"{function.__name__}(): {error}") from None
        for name, value in list(bound.arguments.items()):
            parameter = signature.parameters[name]
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) or name not in hints:
                continue
            bound.arguments[name] = _conformed(value, hints[name], f"{function.__name__}()", name)
        return function(*bound.args, **bound.kwargs)

    return typing.cast(Function, wrapper)


class _Mismatch(Exception):
    pass


def _conformed(value: Any, hint: Any, call: str, name: str) -> Any:
    try:
        return _conform(value, hint)
    except _Mismatch:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise UsageError(f"{call}: {name}={shown} ({type(value).__name__}); expected {describe(hint)}") from None


def _conform(value: Any, hint: Any) -> Any:
    """`value` if it is of `hint` (an iterable read into a tuple), else raise _Mismatch."""
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        for option in get_args(hint):
            try:
                return _conform(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if hint is type(None):
        if value is None:
            return value
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
            return value
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if hint is PathLike or origin is PathLike:
        if isinstance(value, PathLike):
            return value
        raise _Mismatch
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise _Mismatch
        key_hint, value_hint = get_args(hint) or (Any, Any)
        return {_conform(key, key_hint): _conform(item, value_hint) for key, item in value.items()}
    if origin in (Iterable, tuple, list):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise _Mismatch
        (item_hint,) = get_args(hint)[:1] or (Any,)
        items = []
        for item in value:
            items.append(_conform(item, item_hint))
            if len(items) > MAX_ITEMS:
                raise _Mismatch
        return tuple(items)
    if origin is Callable or hint is Callable or origin is typing.Callable:
        if callable(value):
            return value
        raise _Mismatch
    return value  # a type this checker does not know: the function checks it


def describe(hint: Any) -> str:
    """A type annotation in words."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(option) for option in get_args(hint))
    if hint is type(None):
        return "None"
    if hint in (bool, int, float, str):
        return {bool: "True or False", int: "an integer", float: "a number", str: "a string"}[hint]
    if hint is PathLike or origin is PathLike:
        return "a path"
    if origin in (Mapping, dict):
        key_hint, value_hint = get_args(hint) or (Any, Any)
        return f"a mapping (keys: {describe(key_hint)}; values: {describe(value_hint)})"
    if origin in (Iterable, tuple, list):
        (item_hint,) = get_args(hint)[:1] or (Any,)
        return f"a list (each item {describe(item_hint)})"
    if origin is Callable or origin is typing.Callable:
        return "a function"
    return "anything" if hint is Any else getattr(hint, "__name__", str(hint))
