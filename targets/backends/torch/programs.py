"""Reading torch.export programs (`.pt2`): the program and the input names speedproof saved in it.
What a worker needs to run one; exporting and describing programs is `exporters.torch_program`.

Loading a program is not loading plain data: torch.export.load unpickles pickled weights, custom
objects and, for files from older torch versions, whole artifacts with full unpickling, which can
run any code. speedproof loads programs with torch's weights-only unpickler forced on every one of
those paths and Python's own unpickler refused (`plain_data_unpickling`): a pickle that holds
anything but tensors and plain containers is an error naming the file, and never runs. What stays
trusted is the graph itself: running the program runs the torch operators it names.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from targets.errors import InputError

INPUT_NAMES_FILE = "speedproof-inputs.json"  # extra file in the archive: the input plan's names, in order


def load_program(path: Path) -> tuple[Any, list[str]]:
    """(ExportedProgram, input names) of the `.pt2` at `path`; errors name the file."""
    import torch

    if not path.is_file():
        raise InputError(f"{path}: no such program file")
    extra = {INPUT_NAMES_FILE: ""}
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.ERROR)  # it logs a traceback before raising on a file that is no program
    try:
        with plain_data_unpickling():
            program = torch.export.load(str(path), extra_files=extra)
    except UntrustedPickle as error:
        raise InputError(
            f"{path}: holds pickled Python objects that are not plain tensors ({error}); speedproof loads programs "
            "with torch's weights-only unpickler and never runs pickled code. Save the program with "
            "torch.export.save from plain tensors (no tensor subclasses or custom objects), or export it to ONNX"
        ) from None
    except Exception as error:
        if _caused_by_untrusted_pickle(error):
            raise InputError(
                f"{path}: holds pickled Python objects that are not plain tensors; speedproof loads programs with "
                "torch's weights-only unpickler and never runs pickled code. Save the program with "
                "torch.export.save from plain tensors, or export it to ONNX"
            ) from None
        raise InputError(f"{path}: not a torch.export program torch can load: {_first_line(error)}") from error
    finally:
        export_log.setLevel(level)
    user_inputs = [spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    names = json.loads(extra[INPUT_NAMES_FILE]) if extra[INPUT_NAMES_FILE] else user_inputs
    if len(names) != len(user_inputs):
        raise InputError(f"{path}: {INPUT_NAMES_FILE} names {len(names)} inputs, the program has {len(user_inputs)}")
    return program, list(names)


class UntrustedPickle(Exception):
    """A program file asked for an unpickling that could run code."""


@contextlib.contextmanager
def plain_data_unpickling() -> Iterator[None]:
    """While torch.export.load runs: every torch.load is weights-only (plain tensors and containers,
    nothing callable), and the paths that would use Python's own unpickler (opaque objects,
    torchbind objects) raise UntrustedPickle instead. Not thread-safe: program loading is the only
    thing a process does at that moment."""
    import pickle

    import torch
    from torch.export.pt2_archive import _package

    original_load = torch.load
    original_pickle_load_obj = getattr(torch._C, "_pickle_load_obj", None)

    def weights_only_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        try:
            return original_load(*args, **kwargs)
        except pickle.UnpicklingError as error:
            raise UntrustedPickle(_unpickler_reason(error)) from None

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise UntrustedPickle("a custom object stored with Python's pickle")

    class RefusingPickle:
        loads = staticmethod(refuse)
        load = staticmethod(refuse)

    torch.load = weights_only_load  # type: ignore[assignment]
    package_pickle = getattr(_package, "pickle", None)
    _package.pickle = RefusingPickle  # type: ignore[assignment]
    if original_pickle_load_obj is not None:
        torch._C._pickle_load_obj = refuse
    try:
        yield
    finally:
        torch.load = original_load
        if package_pickle is not None:
            _package.pickle = package_pickle
        if original_pickle_load_obj is not None:
            torch._C._pickle_load_obj = original_pickle_load_obj


def _unpickler_reason(error: Exception) -> str:
    """The line of torch's weights-only error that says what was refused (`Unsupported global: ...`)."""
    for line in str(error).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(" was not an allowed global")[0].strip()
    return "a pickle the weights-only unpickler refuses"


def _caused_by_untrusted_pickle(error: BaseException) -> bool:
    """torch may wrap what the refusal raised (e.g. in a RuntimeError): look down the chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UntrustedPickle):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def program_input_values(program: Any) -> list[Any]:
    """The fake tensors (shape, dtype) of the program's user inputs, in order."""
    user_inputs = [spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    values = {node.name: node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder"}
    return [values[name] for name in user_inputs]


def is_static_dim(dim: Any) -> bool:
    """Whether a dim of a program input's shape is a plain int (not a symbol such as the batch)."""
    try:
        int(dim)
    except (TypeError, ValueError):
        return False
    return not hasattr(dim, "node")


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def output_tensors(outputs: Any) -> list[Any]:
    """Every tensor a program or module returned, in order (nested tuples, lists and dicts flattened)."""
    import torch

    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        return [tensor for value in outputs.values() for tensor in output_tensors(value)]
    if isinstance(outputs, (list, tuple)):
        return [tensor for value in outputs for tensor in output_tensors(value)]
    raise InputError(f"the model returned {type(outputs).__name__}, not tensors")
