"""Inputs for a measurement: shapes resolved from the model's input metadata and --input-shape,
and data generated from a fixed seed (floats, token ids in the embedding's range, bools)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from targets.environment import positive_number_from_environment
from targets.errors import SpeedproofError

DEFAULT_SEED = 0
# integer inputs that feed no embedding table get ids in [0, 2): valid as masks and as ids
DEFAULT_INT_HIGH = 2
# the generated feed may take at most this share of the host's memory, unless the variable says otherwise
MAX_INPUT_ENVIRONMENT = "SPEEDPROOF_MAX_INPUT_MB"
DEFAULT_MAX_INPUT_SHARE = 0.25
SHAPE_PATTERN = re.compile(r"^(?:(?P<name>[^=]+)=)?(?P<dims>\d+(?:x\d+)*)$")


@dataclass(frozen=True)
class InputSpec:
    """One input to generate: concrete shape and dtype, and for integers the value range."""

    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int, ...]
    low: int = 0
    high: int = DEFAULT_INT_HIGH  # exclusive

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            name=data["name"],
            dtype=data["dtype"],
            shape=tuple(data["shape"]),
            low=data.get("low", 0),
            high=data.get("high", DEFAULT_INT_HIGH),
        )


@dataclass(frozen=True)
class ModelInput:
    """An input as the model declares it: ints for fixed dims, strings/None for symbolic ones."""

    name: str
    dtype: str
    dims: tuple[int | str | None, ...]
    int_high: int = DEFAULT_INT_HIGH

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "dims": list(self.dims), "int_high": self.int_high}


def parse_input_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """Parse `[NAME=]1x3x224x224` into (name or None, dims)."""
    match = SHAPE_PATTERN.match(text.strip())
    if match is None:
        raise SpeedproofError(
            f"--input-shape {text!r} is not valid; expected [NAME=]DIMxDIM..., e.g. 1x3x224x224 or input_ids=1x128"
        )
    dims = tuple(int(dim) for dim in match.group("dims").split("x"))
    if any(dim <= 0 for dim in dims):
        raise SpeedproofError(f"--input-shape {text!r}: every dim must be a positive integer")
    return match.group("name"), dims


def shape_overrides(texts: list[str]) -> dict[str | None, tuple[int, ...]]:
    overrides: dict[str | None, tuple[int, ...]] = {}
    for text in texts:
        name, dims = parse_input_shape(text)
        if name in overrides:
            raise SpeedproofError(f"--input-shape given twice for {name or 'the unnamed input'}")
        overrides[name] = dims
    if None in overrides and len(overrides) > 1:
        raise SpeedproofError("--input-shape: name every input (NAME=DIMS) when giving more than one")
    return overrides


def _format_dims(dims: tuple[int | str | None, ...]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in dims) + "]"


def _example_override(model_input: ModelInput) -> str:
    example = [
        "1" if index == 0 else str(dim) if isinstance(dim, int) else "N" for index, dim in enumerate(model_input.dims)
    ]
    return f"{model_input.name}={'x'.join(example)}"


def resolve_input_specs(
    model_inputs: list[ModelInput],
    batch_size: int,
    overrides: dict[str | None, tuple[int, ...]] | None = None,
) -> list[InputSpec]:
    """Concrete input shapes for one batch size.

    The first dim is the batch: a symbolic first dim takes `batch_size`, and so does the first dim
    of an --input-shape. Any other symbolic dim needs an --input-shape, and the error says which.
    """
    overrides = dict(overrides or {})
    names = [model_input.name for model_input in model_inputs]
    if None in overrides:
        if len(model_inputs) != 1:
            raise SpeedproofError(
                f"the model has {len(model_inputs)} inputs ({', '.join(names)}); name each in --input-shape NAME=DIMS"
            )
        overrides[names[0]] = overrides.pop(None)
    for name in overrides:
        if name not in names:
            raise SpeedproofError(f"--input-shape names input {name!r}, but the model's inputs are: {', '.join(names)}")

    specs = []
    for model_input in model_inputs:
        dims = list(model_input.dims)
        if model_input.name in overrides:
            given = overrides[model_input.name]
            if len(given) != len(dims):
                raise SpeedproofError(
                    f"--input-shape for {model_input.name!r} has {len(given)} dims, the model's input has "
                    f"{len(dims)}: {_format_dims(model_input.dims)}"
                )
            for index, (declared, wanted) in enumerate(zip(dims, given, strict=True)):
                if index > 0 and isinstance(declared, int) and declared != wanted:
                    raise SpeedproofError(
                        f"--input-shape for {model_input.name!r}: dim {index} is fixed at {declared} in the "
                        f"model, not {wanted}"
                    )
            resolved: list[int] = [batch_size, *given[1:]] if dims else []
            if dims and isinstance(dims[0], int) and dims[0] != batch_size:
                resolved = _fixed_batch(model_input, batch_size)
        else:
            unresolved = [index for index, dim in enumerate(dims) if index > 0 and not isinstance(dim, int)]
            if unresolved:
                raise SpeedproofError(
                    f"input {model_input.name!r} has shape {_format_dims(model_input.dims)}: dim "
                    f"{', '.join(str(i) for i in unresolved)} cannot be resolved from the model; pass "
                    f"--input-shape {_example_override(model_input)} (N = the size you want)"
                )
            resolved = [int(dim) if isinstance(dim, int) else 0 for dim in dims]
            if dims:
                if isinstance(dims[0], int):
                    resolved = _fixed_batch(model_input, batch_size)
                else:
                    resolved[0] = batch_size
        specs.append(
            InputSpec(name=model_input.name, dtype=model_input.dtype, shape=tuple(resolved), high=model_input.int_high)
        )
    check_feed_size(specs)
    return specs


def feed_bytes(specs: list[InputSpec]) -> int:
    """Bytes the generated data of `specs` takes (before anything is allocated)."""
    total = 0
    for spec in specs:
        try:
            itemsize = np.dtype(spec.dtype).itemsize
        except TypeError:
            itemsize = 8
        total += math.prod(spec.shape) * itemsize
    return total


def max_feed_bytes() -> int:
    """The largest feed speedproof generates: $SPEEDPROOF_MAX_INPUT_MB, else a quarter of this
    host's memory (the model's own memory, the runtime's and the outputs need the rest)."""
    if MAX_INPUT_ENVIRONMENT in os.environ:
        return int(positive_number_from_environment(MAX_INPUT_ENVIRONMENT, 0.0) * 2**20)
    import psutil

    return int(psutil.virtual_memory().total * DEFAULT_MAX_INPUT_SHARE)


def check_feed_size(specs: list[InputSpec]) -> None:
    """Refuse, before allocating it, a feed larger than `max_feed_bytes`: the error names each
    input's shape and size, so a typo in --input-shape says what it would have cost."""
    total, limit = feed_bytes(specs), max_feed_bytes()
    if total <= limit:
        return
    shapes = ", ".join(
        f"{spec.name!r} {'x'.join(map(str, spec.shape)) or 'scalar'} {spec.dtype} = {_size_text(feed_bytes([spec]))}"
        for spec in specs
    )
    raise SpeedproofError(
        f"the inputs would take {_size_text(total)} ({shapes}), more than the {_size_text(limit)} allowed "
        f"(a quarter of this host's memory, or ${MAX_INPUT_ENVIRONMENT}); check --input-shape and the batch size"
    )


def _size_text(size_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def _fixed_batch(model_input: ModelInput, batch_size: int) -> list[int]:
    fixed = model_input.dims[0]
    if fixed != batch_size:
        raise SpeedproofError(
            f"input {model_input.name!r} has a fixed batch dimension of {fixed}; batch size {batch_size} "
            "cannot run on it (export the model with a dynamic batch axis)"
        )
    return [int(dim) for dim in model_input.dims]  # type: ignore[arg-type]


def generate_feed(specs: list[InputSpec], seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Data for every input, the same for the same specs and seed."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            feed[spec.name] = rng.integers(0, 2, size=spec.shape).astype(np.bool_)
        elif dtype == np.uint8:
            feed[spec.name] = rng.integers(0, 256, size=spec.shape, dtype=np.uint8)
        elif np.issubdtype(dtype, np.integer):
            feed[spec.name] = rng.integers(spec.low, spec.high, size=spec.shape).astype(dtype)
        elif np.issubdtype(dtype, np.floating):
            feed[spec.name] = rng.standard_normal(size=spec.shape).astype(dtype)
        else:
            raise SpeedproofError(f"input {spec.name!r}: cannot generate data of type {spec.dtype}")
    return feed
