"""Shared fixtures: a tiny model zoo built at test time, fast measurement settings, markers, the
tiny sources' contained exports made once per test process, and the serial lock: the suite runs on
two pytest-xdist workers, and a test marked `serial` (its assertions rest on measured speed) runs
while no other test does."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.dask_fleet import MISSING as FLEET_MISSING
from tests.dask_fleet import DaskFleet, start_fleet
from tests.helpers import make_onnx_model, measuring_alone
from tests.ssh_board import MISSING as SSH_MISSING
from tests.ssh_board import SshBoard, start_board


def _has_cuda_device() -> bool:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return False
    completed = subprocess.run([tool, "-L"], capture_output=True, text=True, check=False)
    return completed.returncode == 0 and "GPU" in completed.stdout


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # files with a `slow` test first (the demo's takes minutes): pytest-xdist hands out files in
    # this order, so the longest one starts at once instead of finishing last on one worker
    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow_files)
    if _has_cuda_device():
        return
    skip_gpu = pytest.mark.skip(reason="needs an NVIDIA CUDA device; nvidia-smi found none on this host")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _one_serial_test_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A `serial` test holds the lock alone; every other test holds it shared with the rest, so a
    serial test waits for the other worker's current test and the other worker waits for it."""
    with measuring_alone(tmp_path_factory, exclusive=request.node.get_closest_marker("serial") is not None):
        yield


@pytest.fixture(autouse=True, scope="session")
def _a_level_history_of_the_suites_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's verifications keep their host levels (harness/measure/host_state.py) apart from the
    user's: a user's history never holds a test's run back, nor a test's the user's. Subprocesses inherit it."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("SPEEDPROOF_LEVEL_HISTORY", str(tmp_path_factory.mktemp("host-levels")))
    yield
    monkeypatch.undo()


# the test sources whose successful contained exports are made once per test process and copied after
TINY_SOURCES = "tests.tiny_models:"


@pytest.fixture(autouse=True, scope="session")
def _tiny_sources_exported_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A `tests.tiny_models:NAME` source is exported in its contained process (a fresh Python that
    imports torch and runs a dynamo export: ~5 s of CPU) the first time a test of this process
    names it with those input shapes; later runs get a copy of that export and its facts, as if the
    contained process had run again. The module does not change during a session, so the copy is
    what the process would write. Failures are never kept (each failing run is real), nor is any
    other source: the tests of containment itself (tests/faults) name modules of their own, and
    every source given to a `speedproof` subprocess is exported for real."""
    from harness.models import contained

    folder = tmp_path_factory.mktemp("contained-exports")
    real_export = contained.export_in_contained_process
    made: dict[tuple, tuple[Path, contained.ContainedExport]] = {}

    def export_once(
        spec: str, input_shapes: dict[str | None, tuple[int, ...]], onnx_path: Path, program: bool = False
    ) -> contained.ContainedExport:
        if program or not spec.startswith(TINY_SOURCES):
            return real_export(spec, input_shapes, onnx_path, program)
        key = (spec, tuple(sorted(input_shapes.items(), key=str)))
        if key not in made:
            exported = real_export(spec, input_shapes, onnx_path, program)
            kept = folder / f"{len(made)}-{onnx_path.name}"
            shutil.copyfile(exported.onnx_path, kept)
            made[key] = (kept, exported)
            return exported
        kept, exported = made[key]
        onnx_path.parent.mkdir(parents=True, exist_ok=True)  # as the export in the contained process does
        shutil.copyfile(kept, onnx_path)
        return replace(exported, onnx_path=onnx_path)  # the same facts, at the path this run asked for

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(contained, "export_in_contained_process", export_once)
        yield


@pytest.fixture(scope="session")
def tiny_conv_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small conv net exported from torch at test time (dynamic batch axis, input 1x3x16x16)."""
    import torch

    from exporters.torch_to_onnx import export_to_onnx

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).eval()
    path = tmp_path_factory.mktemp("zoo") / "tiny_conv.onnx"
    export_to_onnx(module, [torch.randn(2, 3, 16, 16)], path)
    return path


@pytest.fixture
def embedding_onnx(tmp_path: Path) -> Path:
    """Token ids [batch, seq] -> Gather from a 50-row table: the seq dim needs --input-shape."""
    table = numpy_helper.from_array(np.arange(50 * 4, dtype=np.float32).reshape(50, 4), "table")
    model = make_onnx_model(
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_node("Gather", ["table", "ids"], ["out"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", 4])],
        [table],
    )
    path = tmp_path / "embedding.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture
def fixed_batch_onnx(tmp_path: Path) -> Path:
    """Relu on a [1, 4] input: a fixed batch of one."""
    model = make_onnx_model(
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "fixed_batch.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="session")
def ssh_board(tmp_path_factory: pytest.TempPathFactory):
    """A real sshd on 127.0.0.1 whose "board" is this host (tests/ssh_board.py)."""
    if SSH_MISSING:
        pytest.skip(f"{SSH_MISSING} (.ci/run installs openssh-server)")
    board: SshBoard = start_board(tmp_path_factory.mktemp("ssh-board"))
    yield board
    board.stop()


@pytest.fixture(scope="session")
def dask_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskFleet]:
    """A real Dask scheduler with an untagged x86-cpu worker and workers tagged alpha and beta (tests/dask_fleet.py)."""
    if FLEET_MISSING:
        pytest.skip(FLEET_MISSING)
    fleet = start_fleet(tmp_path_factory.mktemp("fleet"))
    try:
        yield fleet
    finally:
        from targets.runners.cluster import disconnect_all

        disconnect_all()
        fleet.stop()
