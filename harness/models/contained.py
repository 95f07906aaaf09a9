"""User code, contained: a `package.module:function` model source is first imported, called and
exported to ONNX in a process of its own (`python -m harness.models.contained REQUEST.json`), with
a time limit and a cap on its memory, so that a module that crashes, kills itself, hangs, eats
memory or exits at import fails that source with a message instead of taking the run down. A
torch.export program (`.pt2`) is first loaded and exported there the same way: a file that crashes
torch's deserializer, or asks for an unpickling that could run code, fails with a message.

Only the current folder (where the user named the module from) and the installed packages are
importable there. Once the contained run succeeded, the CLI may import the same module itself
when a torch-level recipe needs the module object (`import_source_function`).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.environment import positive_number_from_environment
from targets.errors import InputError, SpeedproofError
from targets.files_in import RESULT_CAP_BYTES, read_input_json
from targets.quick_exit import exit_quickly
from targets.runners.processes import python_module_command, run_to_end, signal_name, stderr_tail

TIMEOUT_ENVIRONMENT = "SPEEDPROOF_SOURCE_TIMEOUT_S"
MEMORY_ENVIRONMENT = "SPEEDPROOF_SOURCE_MEMORY_MB"
DEFAULT_TIMEOUT_S = 600.0
# share of the host's memory the contained process may allocate
DEFAULT_MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class ContainedExport:
    """What the contained run of a source function produced: the baseline ONNX file and facts about
    the torch model it returned."""

    onnx_path: Path
    latency_only: bool
    provides: frozenset[str]
    state_path: Path | None = None  # the exported module's weights (state_dict), for the CLI's own call


def source_limits() -> tuple[float, int]:
    """(seconds, bytes) the contained process may take."""
    import psutil

    timeout_s = positive_number_from_environment(TIMEOUT_ENVIRONMENT, DEFAULT_TIMEOUT_S)
    default_mb = psutil.virtual_memory().total * DEFAULT_MEMORY_SHARE / 2**20
    return timeout_s, int(positive_number_from_environment(MEMORY_ENVIRONMENT, default_mb) * 2**20)


def export_in_contained_process(
    spec: str, input_shapes: dict[str | None, tuple[int, ...]], onnx_path: Path, program: bool = False
) -> ContainedExport:
    """Import and call the source function (or, with `program`, load the `.pt2` file `spec`) in a
    contained process that exports the result to `onnx_path`; a failure of any kind becomes a
    SpeedproofError saying what happened."""
    state_path = onnx_path.resolve().with_suffix(".state.pt")
    request = {
        "spec": str(Path(spec).resolve()) if program else spec,
        "input_shapes": [[name, list(shape)] for name, shape in input_shapes.items()],
        "onnx_path": str(onnx_path.resolve()),
        "state_path": str(state_path),
        "program": program,
    }
    doing = ("loading" if program else "importing and calling") + " it"
    result = run_contained("harness.models.contained", request, f"model {spec!r}", doing)
    return ContainedExport(
        onnx_path=onnx_path,
        latency_only=bool(result["latency_only"]),
        provides=frozenset(result["provides"]),
        state_path=None if program else state_path,
    )


def run_contained(
    entry_module: str, request: dict[str, Any], who: str, doing: str, in_scratch: bool = False
) -> dict[str, Any]:
    """Run `python -m entry_module REQUEST.json` under the source limits (time, memory) and return
    the result it wrote; a hang, a crash, an exit without a result or a failed result raises a
    SpeedproofError that starts with `who` and says what happened while `doing`. The child gets
    `request` plus `folder` (the current folder, importable there), `result_path` and `memory_mb`;
    with `in_scratch` it runs in a new empty folder, deleted after it, instead of the current one.
    Whatever it started is stopped when it ends (`targets.runners.reaper`)."""
    timeout_s, memory_bytes = source_limits()
    with tempfile.TemporaryDirectory(prefix="speedproof-contained-") as folder:
        request_path = Path(folder) / "request.json"
        result_path = Path(folder) / "result.json"
        stderr_path = Path(folder) / "stderr.txt"
        full_request = {
            **request,
            "folder": os.getcwd(),
            "result_path": str(result_path),
            "memory_mb": memory_bytes // 2**20,
        }
        request_path.write_text(json.dumps(full_request))

        def cap_memory() -> None:  # runs in the child before it starts Python
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))

        command = python_module_command(entry_module, str(request_path))
        scratch = None
        if in_scratch:  # its working folder: what it writes by a relative path lands here and is deleted
            scratch = Path(folder) / "work"
            scratch.mkdir()
        returncode = run_to_end(command, stderr_path, timeout_s, preexec_fn=cap_memory, reaped=True, cwd=scratch)
        if returncode is None:
            raise InputError(
                f"{who}: {doing} took longer than {timeout_s:g} s and was stopped (set {TIMEOUT_ENVIRONMENT} to "
                "allow more)"
            )
        tail = stderr_tail(stderr_path)
        last_output = f"; its last output:\n{tail}" if tail else ""
        if returncode < 0:
            raise InputError(f"{who}: the process {doing} crashed with {signal_name(returncode)}" + last_output)
        try:
            result = read_input_json(result_path, f"{who}: result", RESULT_CAP_BYTES)
        except SpeedproofError:
            raise InputError(
                f"{who}: the process {doing} exited with code {returncode} without a result" + last_output
            ) from None
    if not isinstance(result, dict) or result.get("status") != "ok":
        error = str(result.get("error") if isinstance(result, dict) else result)
        raise InputError(error if error.startswith(f"{who}: ") else f"{who}: {error}")
    return result


def import_source_function(spec: str, folder: str, who: str | None = None) -> Any:
    """Import `package.module` from `folder` (or the installed packages) and return its function.
    Anything the import raises, SystemExit included, becomes a SpeedproofError starting with `who`."""
    who = who or f"model {spec!r}"
    module_name, _, function_name = spec.partition(":")
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        python_module = importlib.import_module(module_name)
    except (KeyboardInterrupt, MemoryError):
        raise
    except ImportError as error:
        raise InputError(f"{who}: cannot import {module_name!r}: {error}") from None
    except BaseException as error:
        raise user_code_failed(who, f"importing {module_name!r}", error) from None
    finally:
        if added:
            sys.path.remove(folder)
    function = getattr(python_module, function_name, None)
    if not callable(function):
        raise InputError(f"{who}: {module_name!r} has no function {function_name!r}")
    return function


def call_source_function(spec: str, function: Any, *args: Any, who: str | None = None) -> Any:
    """Call a user function; what it raises, SystemExit included, becomes a SpeedproofError."""
    function_name = spec.partition(":")[2]
    try:
        return function(*args)
    except (KeyboardInterrupt, MemoryError, SpeedproofError):
        raise
    except BaseException as error:
        raise user_code_failed(who or f"model {spec!r}", f"calling {function_name}()", error) from None


def user_code_failed(who: str, doing: str, error: BaseException) -> SpeedproofError:
    """What user code raised (SystemExit included), as a message starting with `who`."""
    if isinstance(error, SystemExit):
        return InputError(f"{who}: {doing} called sys.exit({error.code!r})")
    return InputError(f"{who}: {doing} failed: {type(error).__name__}: {error}")


def _run_contained(request: dict[str, Any]) -> dict[str, Any]:
    from harness.models.torch_sources import as_torch_model, export_torch_model

    spec = request["spec"]
    shapes = {name: tuple(shape) for name, shape in request["input_shapes"]}
    if request.get("program"):
        return _export_program_contained(Path(spec), shapes, Path(request["onnx_path"]))
    try:
        function = import_source_function(spec, request["folder"])
        torch_model = as_torch_model(spec, call_source_function(spec, function), shapes)
        export_torch_model(torch_model, Path(request["onnx_path"]))
        _save_state(torch_model, Path(request["state_path"]))
    except SpeedproofError as error:
        return {"status": "failed", "error": str(error)}
    except MemoryError:
        return {"status": "failed", "error": _out_of_memory(request)}
    except Exception as error:
        return {"status": "failed", "error": f"exporting it failed: {type(error).__name__}: {error}"}
    return {
        "status": "ok",
        "latency_only": torch_model.latency_only,
        "provides": sorted(torch_model.provided_data()),
    }


def _save_state(torch_model: Any, path: Path) -> None:
    """The exported module's weights and buffers, for the CLI to load into its own call's module."""
    import torch

    if isinstance(torch_model.module, torch.nn.Module):
        torch.save({name: value.detach().cpu() for name, value in torch_model.module.state_dict().items()}, path)


def _export_program_contained(
    path: Path, input_shapes: dict[str | None, tuple[int, ...]], onnx_path: Path
) -> dict[str, Any]:
    from exporters.torch_program import program_example_inputs
    from exporters.torch_to_onnx import export_to_onnx
    from targets.backends.torch.programs import load_program

    try:
        program, names = load_program(path)
        examples = program_example_inputs(program, names, input_shapes)
        export_to_onnx(program.module(), examples, onnx_path, input_names=names)
    except SpeedproofError as error:
        return {"status": "failed", "error": str(error)}
    except Exception as error:
        return {"status": "failed", "error": f"exporting it to ONNX failed: {type(error).__name__}: {error}"}
    return {"status": "ok", "latency_only": False, "provides": []}


def _out_of_memory(request: dict[str, Any]) -> str:
    doing = "loading it" if request.get("program") else "importing and calling it"
    return (
        f"{doing} ran out of memory under the cap of {request['memory_mb']} MB (set {MEMORY_ENVIRONMENT} to allow more)"
    )


def contained_main(
    argv: list[str] | None,
    entry_module: str,
    job: Callable[[dict[str, Any]], dict[str, Any]],
    out_of_memory: Callable[[dict[str, Any]], str],
) -> int:
    """The child side of `run_contained`: run `job` on the request and write its result; whatever
    user code raises (SpeedproofError, MemoryError, SystemExit, anything) comes back as a message."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {entry_module} REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(args[0]).read_text())
    try:
        result = job(request)
    except SpeedproofError as error:
        result = {"status": "failed", "error": str(error)}
    except MemoryError:
        result = {"status": "failed", "error": out_of_memory(request)}
    except BaseException as error:  # noqa: B036 - anything user code does must come back as a message
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    Path(request["result_path"]).write_text(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    return contained_main(argv, "harness.models.contained", _run_contained, _out_of_memory)


if __name__ == "__main__":
    exit_quickly(main())  # the parent waits for the exit: after a torch export the teardown took 1.2-1.5 s
