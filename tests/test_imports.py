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
    assert "targets.backends.onnxruntime_runner" in modules and "harness.cli" in modules
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
