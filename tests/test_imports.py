"""Every module imports with only the base dependencies: no torchvision, TensorRT or GPU."""

import pkgutil
import subprocess
import sys

import exporters
import harness
import targets

OPTIONAL = ["torchvision", "tensorrt", "pycuda", "pynvml", "dask", "distributed", "matplotlib"]
CHECK = """
import importlib, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is blocked: optional dependency")

sys.meta_path.insert(0, Block())
for module in {modules!r}:
    importlib.import_module(module)
"""


def _all_modules():
    names = []
    for package in (harness, targets, exporters):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            names.append(info.name)
    return names


def test_every_module_imports_without_optional_dependencies():
    modules = _all_modules()
    assert "targets.backends.onnxruntime.runner" in modules and "harness.cli" in modules
    completed = subprocess.run(
        [sys.executable, "-c", CHECK.format(blocked=OPTIONAL, modules=modules)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr


def test_importing_harness_loads_no_heavy_runtime():
    code = (
        "import sys, harness, harness.cli, targets.backends\n"
        "print(sorted({'torch', 'onnxruntime', 'tensorrt'} & set(sys.modules)))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def _imports_of(path):
    """Every module a file imports (top level or inside functions)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _package_files(package):
    from pathlib import Path

    return sorted(Path(package.__path__[0]).rglob("*.py"))


def test_dependencies_point_down():
    """harness plans and judges; exporters make artifacts; targets run them. targets imports neither
    of the others (a board or a cluster worker needs only it), exporters does not import harness."""
    for package, forbidden in ((targets, ("harness", "exporters")), (exporters, ("harness",))):
        for path in _package_files(package):
            bad = sorted(name for name in _imports_of(path) if name.split(".")[0] in forbidden)
            assert not bad, f"{path} imports {bad}"


def test_commands_do_not_import_each_other_and_stages_do_not_import_commands():
    from harness.commands import COMMAND_MODULES

    commands = {f"harness.commands.{name}" for name in COMMAND_MODULES}
    for path in _package_files(harness):
        imported = _imports_of(path)
        if path.parent.name == "commands":
            own = f"harness.commands.{path.stem}"
            assert not (imported & commands) - {own}, f"{path} imports another command"
        elif path.name not in ("cli.py", "entry.py"):  # the script's entry only imports the command line
            assert not any(name.startswith(("harness.commands", "harness.cli")) for name in imported), path


def _module_name(path, package):
    from pathlib import Path

    parts = path.relative_to(Path(package.__path__[0]).parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_cycles(packages):
    """Groups of modules that import each other, directly or round a loop (imports inside
    functions and under TYPE_CHECKING count: a lazy import is still a dependency)."""
    files = {_module_name(path, package): path for package in packages for path in _package_files(package)}
    edges = {
        name: {other for other in _imports_of(path) if other in files and other != name} for name, path in files.items()
    }
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(name):  # Tarjan's strongly connected components
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for other in edges[name]:
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in on_stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            group = []
            while not group or group[-1] != name:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                cycles.append(sorted(group))

    for name in files:
        if name not in index:
            visit(name)
    return cycles


def test_no_two_modules_import_each_other():
    """What both sides of a circle needed now lives below both (harness.models.torch_sources,
    harness.models.npz_files, RecipeStep in the catalogue; targets.ssh_address, targets.cache_files,
    targets.backends.two_four and cuda_devices, the CPU lists in targets.host)."""
    assert _import_cycles([harness, exporters]) == []
    assert _import_cycles([targets]) == []


# targets' floors, lowest first: what a module may import is on its own floor or below
TARGETS_FLOORS = ("shared", "host", "backends", "profiles", "runners")


def _targets_floor(module):
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("host", "backends", "runners"):
        return TARGETS_FLOORS.index(parts[1])
    return TARGETS_FLOORS.index("profiles" if module == "targets.profiles" else "shared")


def test_targets_imports_run_down_its_floors_and_backends_keep_to_their_own_folder():
    """The root's shared modules (errors, inputs, scratch, TOML, addresses) import no floor above;
    host facts no backend; backends no profile or runner; profiles no runner. A backend's folder
    (targets/backends/<runtime>/) imports no other backend's folder."""
    files = {_module_name(path, targets): path for path in _package_files(targets)}
    assert {"targets.host.fingerprint", "targets.backends.torch.runner", "targets.runners.compatibility"} <= set(files)
    for name, path in files.items():
        for other in sorted(_imports_of(path) & set(files)):
            assert _targets_floor(other) <= _targets_floor(name), f"{name} imports {other}, a floor above it"
            own, theirs = name.split("."), other.split(".")
            if len(own) > 3 and len(theirs) > 3 and own[1] == theirs[1] == "backends":
                assert own[2] == theirs[2], f"{name} imports {other}: one backend's folder uses another's"
