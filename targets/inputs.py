"""Inputs for a measurement: shapes resolved from the model's input metadata and --input-shape,
and data generated from a fixed seed (floats, token ids in the embedding's range, bools), unless
the user's data (--data) gives the values."""

from __future__ import annotations

import base64
import io
import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from targets.environment import positive_number_from_environment
from targets.errors import SpeedproofError, UsageError

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
    fill: float | None = None  # --input-value: every element is this constant (a sample rate, a flag)
    # --data: the real inputs to feed (of `shape` and `dtype`), instead of generated ones
    values: np.ndarray | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "low": self.low,
            "high": self.high,
            "fill": self.fill,
        }
        if self.values is not None:
            buffer = io.BytesIO()
            np.save(buffer, self.values, allow_pickle=False)
            data["values_npy"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            name=data["name"],
            dtype=data["dtype"],
            shape=tuple(data["shape"]),
            low=data.get("low", 0),
            high=data.get("high", DEFAULT_INT_HIGH),
            fill=data.get("fill"),
            values=(
                np.load(io.BytesIO(base64.b64decode(data["values_npy"])), allow_pickle=False)
                if data.get("values_npy")
                else None
            ),
        )


@dataclass(frozen=True)
class ModelInput:
    """An input as the model declares it: ints for fixed dims, strings/None for symbolic ones."""

    name: str
    dtype: str
    dims: tuple[int | str | None, ...]
    int_high: int = DEFAULT_INT_HIGH
    batch_axis: int | None = 0  # which dim carries the batch (None: none does; see with_batch_axes)
    constant: float | None = None  # --input-value: fed as this constant instead of generated data

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "dims": list(self.dims),
            "int_high": self.int_high,
            "batch_axis": self.batch_axis,
            "constant": self.constant,
        }


def parse_input_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """Parse `[NAME=]1x3x224x224` into (name or None, dims)."""
    match = SHAPE_PATTERN.match(text.strip())
    if match is None:
        raise UsageError(
            f"--input-shape {text!r} is not valid; expected [NAME=]DIMxDIM..., e.g. 1x3x224x224 or input_ids=1x128"
        )
    dims = tuple(int(dim) for dim in match.group("dims").split("x"))
    if any(dim <= 0 for dim in dims):
        raise UsageError(f"--input-shape {text!r}: every dim must be a positive integer")
    return match.group("name"), dims


def shape_overrides(texts: list[str]) -> dict[str | None, tuple[int, ...]]:
    overrides: dict[str | None, tuple[int, ...]] = {}
    for text in texts:
        name, dims = parse_input_shape(text)
        if name in overrides:
            raise UsageError(f"--input-shape given twice for {name or 'the unnamed input'}")
        overrides[name] = dims
    if None in overrides and len(overrides) > 1:
        raise UsageError("--input-shape: name every input (NAME=DIMS) when giving more than one")
    return overrides


def _format_dims(dims: tuple[int | str | None, ...]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in dims) + "]"


@dataclass(frozen=True)
class InputSettings:
    """What the user said about the model's inputs besides their shapes: which dim carries each
    input's batch (`--batch-axis NAME=K|none`), which inputs are constants (`--input-value NAME=X`),
    and the user's own data: real inputs for quality and timing (`--data`), for calibration
    (`--calibration-data`), and the task metric judged on the outputs (`--metric-fn`). The data
    sources are checked and loaded by `harness.models.user_data`."""

    batch_axes: tuple[str, ...] = ()
    input_values: tuple[str, ...] = ()
    data: str | None = None  # FILE.npz or package.module:function
    calibration_data: str | None = None
    metric_fn: str | None = None  # package.module:function

    def check(self) -> None:
        """Parse both lists (before anything slow runs); raise on a malformed item."""
        parse_batch_axes(list(self.batch_axes))
        parse_input_values(list(self.input_values))

    def apply(self, model_inputs: list[ModelInput]) -> list[ModelInput]:
        annotated = with_batch_axes(model_inputs, parse_batch_axes(list(self.batch_axes)))
        return with_input_values(annotated, parse_input_values(list(self.input_values)))


def with_batch_axes(model_inputs: list[ModelInput], given: dict[str, int | None] | None = None) -> list[ModelInput]:
    """Each input with the dim that carries its batch: `given` (--batch-axis NAME=K or =none) first;
    else the position of the batch symbol — the symbolic first dim of the first input that has one,
    which others may carry elsewhere (an RNN state `[layers, batch, hidden]`) —; else, for an input
    without that symbol, its own symbolic first dim; else none (a scalar, a fixed-size constant).
    A model with no symbolic dim at all keeps the batch on dim 0 (a fixed batch)."""
    given = dict(given or {})
    names = [item.name for item in model_inputs]
    for name in given:
        if name not in names:
            raise UsageError(f"--batch-axis names input {name!r}, but the model's inputs are: {', '.join(names)}")
    symbol = next(
        (item.dims[0] for item in model_inputs if item.dims and not isinstance(item.dims[0], int) and item.dims[0]),
        None,
    )
    any_symbolic = any(not isinstance(dim, int) for item in model_inputs for dim in item.dims)
    annotated = []
    for item in model_inputs:
        if item.name in given:
            axis = given[item.name]
            if axis is not None and not 0 <= axis < len(item.dims):
                raise UsageError(
                    f"--batch-axis {item.name}={axis}: input {item.name!r} has {len(item.dims)} dims "
                    f"{_format_dims(item.dims)}; give 0-{max(len(item.dims) - 1, 0)} or none"
                )
        elif symbol is not None and symbol in item.dims:
            axis = item.dims.index(symbol)
        elif item.dims and not isinstance(item.dims[0], int):
            axis = 0
        elif item.dims and not any_symbolic:
            axis = 0  # a model exported with a fixed batch: other batch sizes fail with that message
        else:
            axis = None
        annotated.append(replace(item, batch_axis=axis))
    return annotated


def with_input_values(model_inputs: list[ModelInput], values: dict[str, float]) -> list[ModelInput]:
    """Inputs fed as constants (--input-value NAME=NUMBER): a sample rate, a flag, a threshold."""
    names = [item.name for item in model_inputs]
    for name in values:
        if name not in names:
            raise UsageError(f"--input-value names input {name!r}, but the model's inputs are: {', '.join(names)}")
    annotated = []
    for item in model_inputs:
        value = values.get(item.name)
        if value is not None and np.issubdtype(np.dtype(item.dtype), np.integer) and value != int(value):
            raise UsageError(f"--input-value {item.name}={value}: input {item.name!r} is {item.dtype}")
        annotated.append(item if value is None else replace(item, constant=value))
    return annotated


def parse_batch_axes(texts: list[str]) -> dict[str, int | None]:
    """`NAME=K` or `NAME=none` items of --batch-axis."""
    axes: dict[str, int | None] = {}
    for text in texts:
        name, separator, value = text.partition("=")
        if not separator or not name or (value != "none" and not value.isdigit()):
            raise UsageError(f"--batch-axis {text!r}: expected NAME=K (a dim index) or NAME=none, e.g. state=1")
        if name in axes:
            raise UsageError(f"--batch-axis given twice for {name!r}")
        axes[name] = None if value == "none" else int(value)
    return axes


def parse_input_values(texts: list[str]) -> dict[str, float]:
    """`NAME=NUMBER` items of --input-value."""
    values: dict[str, float] = {}
    for text in texts:
        name, separator, value = text.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not separator or not name or not math.isfinite(number):
            raise UsageError(f"--input-value {text!r}: expected NAME=NUMBER (finite), e.g. sr=16000")
        if name in values:
            raise UsageError(f"--input-value given twice for {name!r}")
        values[name] = number
    return values


def _example_override(model_input: ModelInput) -> str:
    example = [
        "1" if index == model_input.batch_axis else str(dim) if isinstance(dim, int) else "N"
        for index, dim in enumerate(model_input.dims)
    ]
    return f"{model_input.name}={'x'.join(example)}"


def _batch_axis_advice(model_input: ModelInput) -> str:
    """For an input whose batch axis was taken to be one its symbolic dims is not: how to say which."""
    symbolic = [index for index, dim in enumerate(model_input.dims) if not isinstance(dim, int)]
    if model_input.batch_axis is None:
        return f"; it has no batch axis here (--batch-axis {model_input.name}=K says which dim is the batch, if one is)"
    if len(symbolic) > 1:
        return (
            f"; the batch is taken to be dim {model_input.batch_axis} (--batch-axis {model_input.name}=K says "
            "another, e.g. 1 for sequence-first or RNN-state inputs)"
        )
    return ""


def _unresolved_dims(model_input: ModelInput) -> list[int]:
    axis = model_input.batch_axis if model_input.batch_axis is not None else -1
    return [index for index, dim in enumerate(model_input.dims) if index != axis and not isinstance(dim, int)]


def _check_all_unresolved(model_inputs: list[ModelInput], overrides: dict[str | None, tuple[int, ...]]) -> None:
    """Several inputs with dims that cannot be resolved (a sequence length shared by input_ids and
    attention_mask): one error naming them all, not one per try."""
    unresolved = [item for item in model_inputs if item.name not in overrides and _unresolved_dims(item)]
    if len(unresolved) < 2:
        return  # one: the loop's own error says it, with the batch-axis advice
    symbols = sorted({str(item.dims[index]) for item in unresolved for index in _unresolved_dims(item)} - {"None"})
    shared = f" (where they share {', '.join(map(repr, symbols))}, give the same size)" if symbols else ""
    raise UsageError(
        f"inputs {', '.join(f'{item.name!r} {_format_dims(item.dims)}' for item in unresolved)} have dims that cannot "
        "be resolved from the model; pass "
        + " ".join(f"--input-shape {_example_override(item)}" for item in unresolved)
        + f" (N = the size you want){shared}"
    )


def fed_only(feed: dict[str, np.ndarray], taken: set[str]) -> dict[str, np.ndarray]:
    """`feed` without the inputs an artifact does not take (a candidate that dropped a constant input;
    which inputs it may drop was checked when it was loaded)."""
    return feed if set(feed) <= taken else {name: value for name, value in feed.items() if name in taken}


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
            raise UsageError(
                f"the model has {len(model_inputs)} inputs ({', '.join(names)}); name each in --input-shape NAME=DIMS"
            )
        overrides[names[0]] = overrides.pop(None)
    for name in overrides:
        if name not in names:
            raise UsageError(f"--input-shape names input {name!r}, but the model's inputs are: {', '.join(names)}")

    _check_all_unresolved(model_inputs, overrides)
    specs = []
    for model_input in model_inputs:
        dims = list(model_input.dims)
        axis = (
            model_input.batch_axis
            if model_input.batch_axis is not None and model_input.batch_axis < len(dims)
            else None
        )
        if model_input.name in overrides:
            given = overrides[model_input.name]
            if len(given) != len(dims):
                raise UsageError(
                    f"--input-shape for {model_input.name!r} has {len(given)} dims, the model's input has "
                    f"{len(dims)}: {_format_dims(model_input.dims)}"
                )
            for index, (declared, wanted) in enumerate(zip(dims, given, strict=True)):
                if index != axis and isinstance(declared, int) and declared != wanted:
                    raise UsageError(
                        f"--input-shape for {model_input.name!r}: dim {index} is fixed at {declared} in the "
                        f"model, not {wanted}"
                    )
            resolved: list[int] = list(given)
            if axis is not None:
                resolved[axis] = batch_size
                if isinstance(dims[axis], int) and dims[axis] != batch_size:
                    resolved = _fixed_batch(model_input, batch_size)
        else:
            unresolved = [index for index, dim in enumerate(dims) if index != axis and not isinstance(dim, int)]
            if unresolved:
                raise UsageError(
                    f"input {model_input.name!r} has shape {_format_dims(model_input.dims)}: dim "
                    f"{', '.join(str(i) for i in unresolved)} cannot be resolved from the model; pass "
                    f"--input-shape {_example_override(model_input)} (N = the size you want)"
                    + _batch_axis_advice(model_input)
                )
            resolved = [int(dim) if isinstance(dim, int) else 0 for dim in dims]
            if axis is not None:
                if isinstance(dims[axis], int):
                    resolved = _fixed_batch(model_input, batch_size)
                else:
                    resolved[axis] = batch_size
        specs.append(
            InputSpec(
                name=model_input.name,
                dtype=model_input.dtype,
                shape=tuple(resolved),
                high=model_input.int_high,
                fill=model_input.constant,
            )
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
    raise UsageError(
        f"the inputs would take {_size_text(total)} ({shapes}), more than the {_size_text(limit)} allowed "
        f"(a quarter of this host's memory, or ${MAX_INPUT_ENVIRONMENT}); check --input-shape and the batch size"
    )


def _size_text(size_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def _fixed_batch(model_input: ModelInput, batch_size: int) -> list[int]:
    axis = model_input.batch_axis or 0
    fixed = model_input.dims[axis]
    if fixed != batch_size:
        where = "" if axis == 0 else f" (dim {axis})"
        raise UsageError(
            f"input {model_input.name!r} has a fixed batch dimension{where} of {fixed}; batch size {batch_size} "
            "cannot run on it (export the model with a dynamic batch axis, or, if that dim is not the batch, "
            f"say which is with --batch-axis {model_input.name}=K, or =none)"
        )
    return [int(dim) for dim in model_input.dims]  # type: ignore[arg-type]


def generate_feed(specs: list[InputSpec], seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Data for every input, the same for the same specs and seed."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if spec.values is not None:
            if tuple(spec.values.shape) != spec.shape or spec.values.dtype != dtype:
                raise SpeedproofError(
                    f"input {spec.name!r}: the data given is {spec.values.dtype} {list(spec.values.shape)}, the "
                    f"plan needs {spec.dtype} {list(spec.shape)}"
                )
            feed[spec.name] = spec.values
        elif spec.fill is not None:
            feed[spec.name] = np.full(spec.shape, spec.fill, dtype=dtype)
        elif dtype == np.bool_:
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
