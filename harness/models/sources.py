"""Model sources: turn what the user named (an .onnx file, a zoo name, package.module:function)
into a checked baseline ONNX file on disk (exported from torch where needed) and, for torch
sources, the torch model with its data for the recipes that transform it."""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.machinery import PathFinder
from pathlib import Path

import onnx

from harness.models.data import TorchModel
from harness.models.torch_sources import FUNCTION_SOURCE_SEPARATOR, as_torch_model, export_torch_model
from harness.models.zoo import ZOO, zoo_model
from harness.progress import ProgressCallback, no_progress
from targets.errors import InputError
from targets.files_in import checked_input

TORCH_FILE_SUFFIXES = (".pt", ".pt2", ".pth")
PROGRAM_SUFFIX = ".pt2"  # a torch.export program: a model source of its own


@dataclass
class ResolvedSource:
    """A model source made concrete: its display name, baseline ONNX file and parsed graph, and
    for torch sources the way to get the torch model (loaded on first use, then kept)."""

    name: str
    kind: str  # "onnx-file" | "zoo" | "function" | "program"
    onnx_path: Path
    model: onnx.ModelProto
    latency_only: bool
    load_torch: Callable[[], TorchModel] | None = None
    provides: frozenset[str] = frozenset()  # of DATA_KINDS: what the torch model brings
    _torch_model: TorchModel | None = field(default=None, repr=False)
    program_path: Path | None = None  # a "program" source: the .pt2 the user gave

    @property
    def is_torch(self) -> bool:
        return self.load_torch is not None

    def torch_model(self) -> TorchModel:
        if self.load_torch is None:
            raise InputError(f"model {self.name!r} is an ONNX file: there is no torch model to transform")
        if self._torch_model is None:
            self._torch_model = self.load_torch()
        return self._torch_model


def cache_dir() -> Path:
    """Per-user cache folder for exported artifacts (XDG_CACHE_HOME, else ~/.cache)."""
    base = os.environ.get("SPEEDPROOF_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "speedproof"
    )
    return Path(base)


def is_onnx_file_source(spec: str) -> bool:
    """Whether MODEL names an ONNX file (known before anything is loaded or exported)."""
    return spec.endswith(".onnx") or (Path(spec).is_file() and Path(spec).suffix not in TORCH_FILE_SUFFIXES)


def is_program_source(spec: str) -> bool:
    """Whether MODEL names a torch.export program (.pt2)."""
    return Path(spec).suffix == PROGRAM_SUFFIX


def source_holds_torch_module(spec: str) -> bool:
    """Whether MODEL gives a torch module the torch-level recipes can transform."""
    return not is_onnx_file_source(spec) and not is_program_source(spec)


def source_label(spec: str) -> str:
    """A short name for MODEL in file and folder names: a file's stem, else the spec itself."""
    return Path(spec).stem if is_onnx_file_source(spec) or is_program_source(spec) else spec


def resolve_model_source(
    spec: str,
    input_shapes: dict[str | None, tuple[int, ...]],
    work_dir: Path,
    progress: ProgressCallback = no_progress,
) -> ResolvedSource:
    """Resolve MODEL; torch sources are exported into `work_dir` (zoo exports are cached)."""
    from exporters.onnx_file import load_onnx_model

    check_model_source(spec)
    if is_onnx_file_source(spec):
        path = Path(spec)
        return ResolvedSource(path.stem, "onnx-file", path, load_onnx_model(path), latency_only=False)
    if is_program_source(spec):
        return _export_program_source(Path(spec), input_shapes, work_dir)
    if spec in ZOO:
        return _export_zoo_model(spec, progress)
    return _export_function_source(spec, input_shapes, work_dir)


_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_model_source(spec: str) -> None:
    """Raise when MODEL names something that cannot exist (a missing file, an unknown zoo name, a
    module that cannot be found, a torch file), without loading, exporting or importing anything."""
    if is_program_source(spec):
        checked_input(Path(spec), "model")
        return
    if Path(spec).suffix in TORCH_FILE_SUFFIXES:
        raise InputError(
            f"model {spec!r}: pickled torch files are not a model source (loading one runs its code); save a "
            "torch.export program (torch.export.save(program, 'model.pt2')), export to ONNX, or pass "
            "package.module:function that builds the module"
        )
    if spec.endswith(".onnx"):
        checked_input(Path(spec), "model")
    if is_onnx_file_source(spec) or spec in ZOO:
        return
    if FUNCTION_SOURCE_SEPARATOR in spec:
        check_function_spec(spec, f"model {spec!r}")
        return
    if os.path.lexists(spec):  # a FIFO, a device, a folder: the one way in says what it is
        checked_input(Path(spec), "model")
    if "/" in spec or "." in Path(spec).name:
        raise InputError(f"model file not found: {spec}")
    zoo_model(spec)  # raises the "unknown zoo model ..., valid: ..." error


def check_function_spec(spec: str, who: str) -> None:
    """Raise, starting with `who`, unless `spec` is `package.module:function` whose top package can be
    found in the current folder or the installed packages (nothing is imported)."""
    module_name, separator, function_name = spec.partition(FUNCTION_SOURCE_SEPARATOR)
    if not separator or not _IDENTIFIER_PATH.match(module_name) or not function_name.isidentifier():
        raise InputError(f"{who}: expected package.module:function (Python names)")
    top = module_name.split(".")[0]
    if PathFinder.find_spec(top, [os.getcwd(), *sys.path]) is None and top not in sys.builtin_module_names:
        raise InputError(f"{who}: no module {top!r} in the current folder ({os.getcwd()}) or the installed packages")


def _export_zoo_model(name: str, progress: ProgressCallback) -> ResolvedSource:
    from exporters.onnx_file import load_onnx_model
    from exporters.torch_to_onnx import DEFAULT_OPSET

    entry = zoo_model(name)
    zoo_cache = cache_dir() / "zoo"

    def load_torch() -> TorchModel:
        return entry.load(zoo_cache, progress)

    # the export is the same for the same weights, torch and opset: reuse it
    # (the version comes from package metadata: importing torch just for it costs seconds)
    torch_version = importlib.metadata.version("torch")
    weights_key = entry.weights_key(zoo_cache, progress)
    path = zoo_cache / f"{name}-{weights_key}-torch{torch_version}-opset{DEFAULT_OPSET}.onnx"
    source = ResolvedSource(name, "zoo", path, onnx.ModelProto(), entry.latency_only, load_torch, entry.provides)
    if not path.exists():
        progress(f"exporting {name} to ONNX (once; cached in {zoo_cache})")
        temporary = path.with_suffix(f".{os.getpid()}.partial.onnx")
        export_torch_model(source.torch_model(), temporary)
        os.replace(temporary, path)
    source.model = load_onnx_model(path)
    return source


def _export_function_source(
    spec: str, input_shapes: dict[str | None, tuple[int, ...]], work_dir: Path
) -> ResolvedSource:
    """Import, call and export the function in a contained process; the CLI imports the module
    itself only later, and only when a torch-level recipe needs the module object."""
    from exporters.onnx_file import load_onnx_model
    from harness.models.contained import call_source_function, export_in_contained_process, import_source_function

    module_name, _, function_name = spec.partition(FUNCTION_SOURCE_SEPARATOR)
    folder = os.getcwd()
    # the function's name is a Python name (checked): safe in a file name, once cut to a sane length
    exported = export_in_contained_process(spec, input_shapes, work_dir / f"{function_name[:100]}.onnx")

    def load_torch() -> TorchModel:
        function = import_source_function(spec, folder)
        torch_model = as_torch_model(spec, call_source_function(spec, function), input_shapes)
        carry_exported_state(torch_model, exported.state_path, spec)
        return torch_model

    return ResolvedSource(
        function_name,
        "function",
        exported.onnx_path,
        load_onnx_model(exported.onnx_path),
        exported.latency_only,
        load_torch,
        exported.provides,
    )


def carry_exported_state(torch_model: TorchModel, state_path: Path | None, spec: str) -> None:
    """Give the module this process built the weights of the one that was exported (its state,
    saved by the contained export): a function that draws random weights on every call
    (`torchvision.models:squeezenet1_1`) returns another net each time, and a torch recipe's variant
    must be the exported baseline, changed, not an unrelated net."""
    import torch

    if state_path is None or not state_path.is_file() or not isinstance(torch_model.module, torch.nn.Module):
        return
    state = torch.load(state_path, weights_only=True)
    try:
        torch_model.module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as error:
        raise InputError(
            f"model {spec!r}: a second call returned a network of another structure than the exported one "
            f"({str(error).splitlines()[0][:200]}); the function must build the same network every time"
        ) from None


def _export_program_source(
    path: Path, input_shapes: dict[str | None, tuple[int, ...]], work_dir: Path
) -> ResolvedSource:
    """A torch.export program: measured as it is by the torch backend, exported to ONNX for the
    others. It is first loaded and exported in a contained process, as user code is: a file that
    crashes torch's loader, hangs it or holds a pickle that could run code fails with a message."""
    from exporters.onnx_file import load_onnx_model
    from harness.models.contained import export_in_contained_process

    exported = export_in_contained_process(str(path), input_shapes, work_dir / f"{path.stem[:100]}.onnx", program=True)
    onnx_path = exported.onnx_path
    return ResolvedSource(
        path.stem, "program", onnx_path, load_onnx_model(onnx_path), latency_only=False, program_path=path
    )
