"""The user's data and metric functions, called contained: `--data package.module:function` (an
iterable of feed dicts) and `--metric-fn package.module:function` (outputs and labels in, one number
out) each run in a process of their own (`python -m harness.models.user_functions REQUEST.json`)
under the same time limit and memory cap as a model source, so a function that crashes, hangs, eats
memory or returns something other than a finite number fails with a message and never passes.

A metric function is called as `metric(outputs, labels)`: `outputs` a list with one dict per model
call, in data order, `{output name: numpy array}` as the model returned them (one sample per call,
unless the model's batch is fixed at more); `labels` the data's `labels` array, or None. It returns
one number, higher is better (accuracy, mAP, 1 - CER, F1)."""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.models.npz_files import MAX_FUNCTION_SAMPLES
from targets.errors import InputError
from targets.inputs import ModelInput
from targets.quick_exit import exit_quickly

ENTRY_MODULE = "harness.models.user_functions"


def collect_function_data(
    spec: str, model_inputs: Sequence[ModelInput], option: str, work_dir: Path
) -> dict[str, np.ndarray]:
    """Call the data function contained; its feed dicts joined into samples-first arrays (what an
    .npz would hold), to be checked like one."""
    from harness.models.contained import run_contained
    from harness.models.npz_files import LABELS_KEY, read_npz

    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="speedproof-data-", dir=work_dir) as folder:
        out_path = Path(folder) / "calls.npz"
        axes = {item.name: item.batch_axis for item in model_inputs}
        result = run_contained(
            ENTRY_MODULE,
            {
                "job": "data",
                "spec": spec,
                "out_path": str(out_path),
                "batch_axes": axes,
                "max_samples": MAX_FUNCTION_SAMPLES,
            },
            f"{option} {spec!r}",
            "calling it and reading its data",
            in_scratch=True,
        )
        stored = read_npz(out_path, f"{option} {spec}")
    calls: list[dict[str, np.ndarray]] = [{} for _ in range(_result_calls(result, stored, f"{option} {spec!r}"))]
    for key, name in result["keys"]:
        calls[int(key.split("_", 1)[0].removeprefix("call"))][name] = stored[key]
    if not calls:
        raise InputError(f"{option} {spec!r}: the function yielded no feed dicts")
    arrays: dict[str, np.ndarray] = {}
    for name in sorted({name for call in calls for name in call}):
        axis = 0 if name == LABELS_KEY else axes.get(name, 0)
        present = [index for index, call in enumerate(calls) if name in call]
        if len(present) != len(calls):
            missing = next(index for index in range(len(calls)) if index not in present)
            raise InputError(f"{option} {spec!r}: feed dict {missing} has no {name!r}, feed dict {present[0]} has")
        if axis is None:
            arrays[name] = calls[0][name]  # no batch axis: one value for every call
            continue
        try:
            arrays[name] = np.concatenate([np.moveaxis(call[name], axis, 0) for call in calls])
        except (ValueError, TypeError, np.exceptions.AxisError) as error:  # TypeError: dtypes that do not join
            raise InputError(
                f"{option} {spec!r}: the feed dicts' {name!r} arrays do not join along its batch dim {axis} "
                f"({error}); every call's {name!r} must have the same shape but for the batch"
            ) from None
    return arrays


def task_metric(
    spec: str, outputs: list[list[np.ndarray]], names: Sequence[str], labels: np.ndarray | None, work_dir: Path
) -> float:
    """The metric function's number for `outputs` (one list of arrays per model call), called
    contained; a crash, a hang, a non-number, NaN or inf raises."""
    from harness.models.contained import run_contained

    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="speedproof-metric-", dir=work_dir) as folder:
        outputs_path = Path(folder) / "outputs.npz"
        arrays: dict[str, Any] = {
            f"call{call}_out{index}": array for call, values in enumerate(outputs) for index, array in enumerate(values)
        }
        if labels is not None:
            arrays["labels"] = labels
        np.savez(outputs_path, **arrays)
        result = run_contained(
            ENTRY_MODULE,
            {
                "job": "metric",
                "spec": spec,
                "outputs_path": str(outputs_path),
                "names": list(names),
                "calls": len(outputs),
                "has_labels": labels is not None,
            },
            f"--metric-fn {spec!r}",
            "computing the metric",
            in_scratch=True,
        )
    score = result.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise InputError(f"--metric-fn {spec!r}: its process gave back {str(score)[:80]!r}, not a finite number")
    return float(score)


def _result_calls(result: dict[str, Any], stored: dict[str, np.ndarray], who: str) -> int:
    """How many feed dicts the data function's process says it wrote, checked against what it wrote
    (user code ran in that process and could have rewritten its result)."""
    calls, keys = result.get("calls"), result.get("keys")
    pattern = re.compile(r"^call(\d+)_\d+$")
    valid = (
        isinstance(calls, int)
        and not isinstance(calls, bool)
        and 0 <= calls <= MAX_FUNCTION_SAMPLES
        and isinstance(keys, list)
        and all(
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(part, str) for part in item)
            and item[0] in stored
            and (match := pattern.match(item[0])) is not None
            and int(match.group(1)) < calls
            for item in keys
        )
    )
    if not valid:
        raise InputError(
            f"{who}: the result its process gave back does not match the data it wrote (calls {str(calls)[:40]}); "
            "a data function must not write into speedproof's folders"
        )
    assert isinstance(calls, int)
    return calls


def _collect_data(request: dict[str, Any]) -> dict[str, Any]:
    from harness.models.contained import call_source_function, import_source_function, user_code_failed

    spec, who = request["spec"], f"--data {request['spec']!r}"
    function = import_source_function(spec, request["folder"], who=who)
    produced = call_source_function(spec, function, who=who)
    if isinstance(produced, dict):
        produced = [produced]
    try:
        iterator = iter(produced)
    except TypeError:
        return {
            "status": "failed",
            "error": f"{who}: returned {type(produced).__name__}, not an iterable of feed dicts",
        }
    arrays: dict[str, Any] = {}
    keys: list[list[str]] = []
    calls = samples = 0
    axes: dict[str, int | None] = request["batch_axes"]
    while samples < request["max_samples"]:
        try:
            item = next(iterator)
        except StopIteration:
            break
        except BaseException as error:  # noqa: B036 - what the user's iterator raises is its failure
            raise user_code_failed(who, f"reading feed dict {calls}", error) from None
        if not isinstance(item, dict) or not all(isinstance(key, str) for key in item):
            return {
                "status": "failed",
                "error": f"{who}: item {calls} is {type(item).__name__}, not a dict {{input name: array}}",
            }
        batch = 1
        for position, (name, value) in enumerate(item.items()):
            array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
            if array.dtype.hasobject:
                return {"status": "failed", "error": f"{who}: feed dict {calls}: {name!r} is not a numeric array"}
            key = f"call{calls}_{position}"
            arrays[key] = array
            keys.append([key, name])
            axis = axes.get(name)
            if axis is not None and array.ndim > axis:
                batch = int(array.shape[axis])
        samples += batch
        calls += 1
    np.savez(request["out_path"], **arrays)
    return {"status": "ok", "calls": calls, "keys": keys}


def _compute_metric(request: dict[str, Any]) -> dict[str, Any]:
    from harness.models.contained import call_source_function, import_source_function

    spec, who = request["spec"], f"--metric-fn {request['spec']!r}"
    with np.load(request["outputs_path"], allow_pickle=False) as archive:
        names = request["names"]
        outputs = [
            {
                name: archive[f"call{call}_out{index}"]
                for index, name in enumerate(names)
                if f"call{call}_out{index}" in archive
            }
            for call in range(request["calls"])
        ]
        labels = archive["labels"] if request["has_labels"] else None
    function = import_source_function(spec, request["folder"], who=who)
    value = call_source_function(spec, function, outputs, labels, who=who)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        shown = repr(value)
        return {
            "status": "failed",
            "error": f"{who}: returned {shown[:80]} ({type(value).__name__}); a metric function returns one number, "
            "higher is better",
        }
    if not math.isfinite(float(value)):
        return {"status": "failed", "error": f"{who}: returned {float(value)}; the metric must be a finite number"}
    return {"status": "ok", "score": float(value)}


def _run_job(request: dict[str, Any]) -> dict[str, Any]:
    return _collect_data(request) if request["job"] == "data" else _compute_metric(request)


def _out_of_memory(request: dict[str, Any]) -> str:
    from harness.models.contained import MEMORY_ENVIRONMENT

    return f"ran out of memory under the cap of {request['memory_mb']} MB (set {MEMORY_ENVIRONMENT} to allow more)"


def main(argv: list[str] | None = None) -> int:
    from harness.models.contained import contained_main

    return contained_main(argv, ENTRY_MODULE, _run_job, _out_of_memory)


if __name__ == "__main__":
    exit_quickly(main())  # the parent waits for the exit (see harness.models.contained)
