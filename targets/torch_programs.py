"""Reading torch.export programs (`.pt2`): the program and the input names speedproof saved in it.
What a worker needs to run one; exporting and describing programs is `exporters.torch_program`.

Loading a program is not loading plain data: torch.export.load unpickles custom objects and, for
files from older torch versions, falls back to full unpickling. A `.pt2` is trusted as much as a
`module:function` source: load only programs you would run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from targets.errors import SpeedproofError

INPUT_NAMES_FILE = "speedproof-inputs.json"  # extra file in the archive: the input plan's names, in order


def load_program(path: Path) -> tuple[Any, list[str]]:
    """(ExportedProgram, input names) of the `.pt2` at `path`; errors name the file."""
    import torch

    if not path.is_file():
        raise SpeedproofError(f"{path}: no such program file")
    extra = {INPUT_NAMES_FILE: ""}
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.ERROR)  # it logs a traceback before raising on a file that is no program
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as error:
        raise SpeedproofError(f"{path}: not a torch.export program torch can load: {_first_line(error)}") from error
    finally:
        export_log.setLevel(level)
    user_inputs = [spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    names = json.loads(extra[INPUT_NAMES_FILE]) if extra[INPUT_NAMES_FILE] else user_inputs
    if len(names) != len(user_inputs):
        raise SpeedproofError(
            f"{path}: {INPUT_NAMES_FILE} names {len(names)} inputs, the program has {len(user_inputs)}"
        )
    return program, list(names)


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
    raise SpeedproofError(f"the model returned {type(outputs).__name__}, not tensors")
