"""The user's own data (`--data`, `--calibration-data`): real inputs for quality, for calibration and
for the timed feed, and optionally labels for accuracy or a task metric (`--metric-fn`).

Two forms:

- `FILE.npz` (numpy.savez): one array per model input, named after it, first axis the samples —
  `x` of shape [samples, 3, 32, 32] for an input [batch, 3, 32, 32]; samples first even for an input
  whose batch is on another axis (`state` [samples, 2, 128] for [2, batch, 128]). An input with no
  batch axis (a scalar sample rate) gets one array, fed the same every call (0-d for a scalar). An
  optional `labels` array, first axis the samples. Read with allow_pickle=False; every header is
  read before any array, so an object array or an oversized one is refused unread.
- `package.module:function` returning an iterable of feed dicts, one model call each (Polygraphy's
  data-loader convention): `{input name: array}` with the batch on each input's batch axis, plus
  `labels` if there are any. Called in a contained process (time limit, memory cap) and read up to
  MAX_FUNCTION_SAMPLES samples.

Everything is checked against the model's inputs before anything is measured: a missing or unknown
array, a dtype of another kind, a shape that does not fit, NaN or inf, or too few samples is an
error naming the array and the input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.models.npz_files import LABELS_KEY, read_npz
from targets.errors import InputError
from targets.files_in import checked_input
from targets.inputs import InputSpec, ModelInput, resolve_input_specs

# a quality figure over fewer samples says nothing
MIN_SAMPLES = 8
NPZ_SUFFIX = ".npz"

Feed = dict[str, np.ndarray]


def is_data_function(text: str) -> bool:
    return ":" in text and not text.endswith(NPZ_SUFFIX) and not Path(text).exists()


def check_data_source(text: str, option: str) -> None:
    """Raise unless `text` is an existing .npz file or a findable `package.module:function`
    (nothing is read or imported)."""
    from harness.models.sources import check_function_spec

    if is_data_function(text):
        check_function_spec(text, f"{option} {text!r}")
    elif not text.endswith(NPZ_SUFFIX):
        raise InputError(
            f"{option} {text!r}: expected FILE.npz (numpy.savez, one array per input) or package.module:function "
            "(yielding feed dicts)"
        )
    else:
        checked_input(Path(text), f"{option} data")


def _fixed_batch(model_inputs: Sequence[ModelInput]) -> int | None:
    """The model's batch size when its batch dim is fixed (an export with batch 1, say)."""
    for item in model_inputs:
        if item.batch_axis is not None and item.batch_axis < len(item.dims):
            dim = item.dims[item.batch_axis]
            if isinstance(dim, int):
                return dim
    return None


def _dims_text(dims: Sequence[int | str | None]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in dims) + "]"


@dataclass(frozen=True)
class UserData:
    """Data checked against one model's inputs: per-sample arrays (samples first) for inputs with a
    batch axis, one value for inputs without one, and the labels if given."""

    source: str
    per_sample: dict[str, np.ndarray]
    fixed: dict[str, np.ndarray]
    labels: np.ndarray | None
    samples: int
    sha256: str | None = None  # of the .npz file

    def entry(self) -> dict[str, Any]:
        """What the record says of the data."""
        return {
            "source": self.source,
            "sha256": self.sha256,
            "samples": self.samples,
            "arrays": {
                name: {"dtype": str(array.dtype), "shape": list(array.shape)}
                for name, array in {**self.per_sample, **self.fixed}.items()
            },
            "labels": None
            if self.labels is None
            else {"dtype": str(self.labels.dtype), "shape": list(self.labels.shape)},
        }

    def sample_overrides(self, model_inputs: Sequence[ModelInput]) -> dict[str | None, tuple[int, ...]]:
        """Each input's whole shape at batch 1, as the data gives it: what resolves the symbolic dims
        that are not the batch (a sequence length, an image size)."""
        shapes: dict[str | None, tuple[int, ...]] = {}
        for item in model_inputs:
            if item.name in self.per_sample:
                sample = list(self.per_sample[item.name].shape[1:])
                sample.insert(item.batch_axis or 0, 1)
                shapes[item.name] = tuple(sample)
            elif item.name in self.fixed and self.fixed[item.name].ndim:
                shapes[item.name] = tuple(self.fixed[item.name].shape)
        return shapes

    def batches(
        self,
        model_inputs: Sequence[ModelInput],
        batch: int,
        overrides: dict[str | None, tuple[int, ...]],
        limit: int | None = None,
    ) -> list[Feed]:
        """Feeds of `batch` consecutive samples (the model's own batch size when it is fixed; a tail
        too short for it is dropped), up to `limit` samples, in data order."""
        batch = _fixed_batch(model_inputs) or batch
        total = min(self.samples, limit) if limit else self.samples
        last = total - (total % batch if _fixed_batch(model_inputs) else 0)
        return [
            self._feed(model_inputs, np.arange(start, min(start + batch, last)), overrides)
            for start in range(0, last, batch)
        ]

    def timed_specs(self, specs: list[InputSpec], model_inputs: Sequence[ModelInput]) -> list[InputSpec]:
        """`specs` with the data's values: the first samples, as many as the batch (repeated when
        the data has fewer), so the timed inputs are real ones (control flow, NMS, early exits)."""
        by_name = {item.name: item for item in model_inputs}
        timed = []
        for spec in specs:
            item = by_name[spec.name]
            if spec.name in self.per_sample:
                axis = item.batch_axis or 0
                batch = spec.shape[axis]
                values = np.moveaxis(self.per_sample[spec.name][np.arange(batch) % self.samples], 0, axis)
            elif spec.name in self.fixed:
                values = self.fixed[spec.name]
            else:
                timed.append(spec)
                continue
            values = np.array(values, dtype=np.dtype(spec.dtype), order="C")  # (0-d stays 0-d)
            if tuple(values.shape) != spec.shape:
                raise InputError(
                    f"{self.source}: array {spec.name!r} gives {_dims_text(values.shape)} at batch "
                    f"{spec.shape[item.batch_axis or 0] if item.batch_axis is not None else '-'}, the timed input "
                    f"is {_dims_text(spec.shape)}; --input-shape and the data disagree"
                )
            timed.append(replace(spec, values=values))
        return timed

    def _feed(
        self, model_inputs: Sequence[ModelInput], indices: np.ndarray, overrides: dict[str | None, tuple[int, ...]]
    ) -> Feed:
        feed: Feed = {}
        constants = [item for item in model_inputs if item.name not in self.per_sample and item.name not in self.fixed]
        specs = (
            {spec.name: spec for spec in resolve_input_specs(list(model_inputs), len(indices), overrides)}
            if constants
            else {}
        )
        for item in model_inputs:
            if item.name in self.per_sample:
                feed[item.name] = np.ascontiguousarray(
                    np.moveaxis(self.per_sample[item.name][indices], 0, item.batch_axis or 0)
                )
            elif item.name in self.fixed:
                feed[item.name] = self.fixed[item.name]
        for item in constants:  # --input-value inputs the data leaves out
            spec = specs[item.name]
            feed[item.name] = np.full(spec.shape, item.constant, dtype=np.dtype(spec.dtype))
        return feed


def load_user_data(text: str, model_inputs: Sequence[ModelInput], option: str, work_dir: Path) -> UserData:
    """Read `text` (an .npz file or a data function) and check it against `model_inputs`."""
    if is_data_function(text):
        from harness.models.user_functions import collect_function_data

        arrays = collect_function_data(text, model_inputs, option, work_dir)
        return check_data_arrays(f"{option} {text}", text, arrays, model_inputs, None)
    from targets.cache_files import file_sha256

    path = Path(text)
    arrays = read_npz(path, f"{option} {text}")
    return check_data_arrays(f"{option} {text}", text, arrays, model_inputs, file_sha256(path))


def check_data_arrays(
    where: str,
    source: str,
    arrays: dict[str, np.ndarray],
    model_inputs: Sequence[ModelInput],
    sha256: str | None,
) -> UserData:
    """The arrays as data for `model_inputs`, or an error naming the array and the input."""
    by_name = {item.name: item for item in model_inputs}
    inputs_text = ", ".join(f"{item.name!r} {item.dtype} {_dims_text(item.dims)}" for item in model_inputs)
    per_sample: dict[str, np.ndarray] = {}
    fixed: dict[str, np.ndarray] = {}
    for item in model_inputs:
        if item.name not in arrays:
            if item.constant is not None:
                continue  # --input-value feeds it
            raise InputError(
                f"{where}: no array for input {item.name!r} ({item.dtype} {_dims_text(item.dims)}); the file has "
                f"{', '.join(map(repr, arrays)) or 'no arrays'}. Give every input an array named after it (or "
                f"--input-value {item.name}=NUMBER for a constant)"
            )
        array = _checked_dtype(where, item, arrays[item.name])
        _check_finite(where, item.name, array)
        if item.batch_axis is None:
            _check_dims(
                where,
                item,
                array,
                array.shape,
                item.dims,
                f"{_dims_text(item.dims)} itself: it has no batch axis, so one value feeds every call "
                "(0-d for a scalar)",
            )
            fixed[item.name] = array
        else:
            if array.ndim == 0:
                raise InputError(
                    f"{where}: array {item.name!r} is 0-d, but input {item.name!r} {_dims_text(item.dims)} carries "
                    f"the batch on dim {item.batch_axis}; give [samples, ...] (or --batch-axis {item.name}=none if "
                    "it has no batch)"
                )
            sample_dims = [dim for index, dim in enumerate(item.dims) if index != item.batch_axis]
            _check_dims(
                where,
                item,
                array,
                array.shape[1:],
                sample_dims,
                f"samples first, then each sample's {_dims_text(sample_dims)} (the input without its batch dim "
                f"{item.batch_axis})",
            )
            per_sample[item.name] = array
    unknown = sorted(set(arrays) - set(by_name) - {LABELS_KEY})
    if unknown:
        raise InputError(
            f"{where}: array {', '.join(map(repr, unknown))} names no input of the model (its inputs: {inputs_text}); "
            f"name each array after its input, and the labels {LABELS_KEY!r}"
        )
    labels = arrays.get(LABELS_KEY)
    if labels is not None:
        if labels.dtype.hasobject or labels.ndim == 0:
            raise InputError(f"{where}: array {LABELS_KEY!r} must be numeric with the samples on its first axis")
        if np.issubdtype(labels.dtype, np.floating):
            _check_finite(where, LABELS_KEY, labels)
    counts = {name: len(array) for name, array in per_sample.items()} | (
        {LABELS_KEY: len(labels)} if labels is not None else {}
    )
    if not per_sample:
        raise InputError(
            f"{where}: no input with a batch axis has an array, so there are no samples (inputs: {inputs_text})"
        )
    if len(set(counts.values())) > 1:
        raise InputError(
            f"{where}: the arrays hold different numbers of samples on their first axis: "
            + ", ".join(f"{name!r} {count}" for name, count in counts.items())
        )
    samples = next(iter(counts.values()))
    needed = max(MIN_SAMPLES, _fixed_batch(model_inputs) or 1)
    if samples < needed:
        raise InputError(
            f"{where}: {samples} sample{'s' if samples != 1 else ''}; at least {needed} are needed for a quality "
            "figure to mean anything"
        )
    return UserData(source, per_sample, fixed, labels, samples, sha256)


def _checked_dtype(where: str, item: ModelInput, array: np.ndarray) -> np.ndarray:
    """The array as the input's dtype, when it is of the same kind (float64 data for a float32
    input); another kind (uint8 pixels for a float input, floats for token ids) is an error."""
    wanted = np.dtype(item.dtype)

    def kind(dtype: np.dtype[Any]) -> str:
        return "int" if dtype.kind in "iu" else dtype.kind

    if array.dtype.hasobject or kind(array.dtype) != kind(wanted):
        raise InputError(
            f"{where}: array {item.name!r} is {array.dtype}, input {item.name!r} is {item.dtype}; save it as "
            f"{item.dtype}, preprocessed as the model expects"
        )
    if (
        kind(wanted) == "int"
        and array.size
        and (array.min() < np.iinfo(wanted).min or array.max() > np.iinfo(wanted).max)
    ):
        raise InputError(f"{where}: array {item.name!r} has values outside the range of {item.dtype}")
    return array.astype(wanted, copy=False)


def _check_finite(where: str, name: str, array: np.ndarray) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        first = np.argwhere(~np.isfinite(array))[0].tolist() if array.ndim else []
        raise InputError(f"{where}: array {name!r} holds {bad} NaN or infinite value(s), the first at {first}")


def _check_dims(
    where: str, item: ModelInput, array: np.ndarray, shape: Sequence[int], dims: Sequence[int | str | None], layout: str
) -> None:
    """`shape` (the array's, or its samples') against `dims` (the input's, less its batch dim)."""
    if len(shape) != len(dims) or any(
        isinstance(dim, int) and dim != size for dim, size in zip(dims, shape, strict=True)
    ):
        raise InputError(
            f"{where}: array {item.name!r} has shape {_dims_text(array.shape)}, which does not fit input "
            f"{item.name!r} {_dims_text(item.dims)}: expected {layout}"
        )


def merge_overrides(
    given: dict[str | None, tuple[int, ...]],
    from_data: dict[str | None, tuple[int, ...]],
    model_inputs: Sequence[ModelInput],
    where: str,
) -> dict[str | None, tuple[int, ...]]:
    """--input-shape and the data's shapes together: they must agree on every dim but the batch."""
    merged = dict(given)
    if None in merged and len(model_inputs) == 1:
        merged[model_inputs[0].name] = merged.pop(None)
    axes = {item.name: item.batch_axis for item in model_inputs}
    for name, shape in from_data.items():
        if name in merged:
            mine = merged[name]
            if len(mine) != len(shape) or any(
                a != b for index, (a, b) in enumerate(zip(mine, shape, strict=True)) if index != axes.get(name or "")
            ):
                raise InputError(
                    f"{where}: --input-shape {name}={'x'.join(map(str, mine))} disagrees with the data, whose samples "
                    f"give {'x'.join(map(str, shape))} (batch 1); drop the --input-shape or fix the data"
                )
        else:
            merged[name] = shape
    return merged
