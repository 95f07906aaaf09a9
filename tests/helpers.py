"""What several test modules share: fast measurement settings, worker scripts that crash or hang,
a cell request for a tiny model, a synthetic host, ONNX graphs built by hand, and a model whose
weights are external data. Test modules import these from here, never from each other."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx
import pytest
from onnx import helper

from targets.host.fingerprint import HostFingerprint
from targets.inputs import InputSpec
from targets.runners.base import WorkerRequest
from targets.runners.protocol import MeasurementProtocol

# enough to exercise every phase of the protocol in well under a second per cell
FAST_PROTOCOL = MeasurementProtocol(
    warmup_min_iterations=2,
    warmup_min_duration_s=0.0,
    min_iterations=5,
    min_duration_s=0.02,
    max_duration_s=5.0,
    load_allowance_s=60.0,
)
FAST_FLAGS = [
    "--min-iterations",
    str(FAST_PROTOCOL.min_iterations),
    "--min-duration-s",
    str(FAST_PROTOCOL.min_duration_s),
    "--warmup-min-iterations",
    "2",
    "--warmup-min-duration-s",
    "0",
]
TINY_CNN = "tests.tiny_models:tiny_cnn"
# short bursts and budgets: enough for the logic, not for publishable numbers
# one worker per side for the whole pair (shared or fresh workers for fast models: their own tests use them)
FAST_POLICY = {"burst_duration_s": 0.05, "min_pairs": 4, "max_pair_duration_s": 4.0, "fresh_workers_below_ms": 0.0}
# the same as a gate config's [policy] table
FAST_POLICY_TOML = "[policy]\n" + "".join(f"{key} = {value}\n" for key, value in FAST_POLICY.items())
FAST_POLICY_FLAGS = [
    "--burst-duration-s",
    "0.05",
    "--min-pairs",
    "4",
    "--max-pair-duration-s",
    "4",
    "--fresh-workers-below-ms",
    "0",
]

SEGFAULTING_WORKER = "import ctypes\nctypes.string_at(0)\n"
HANGING_WORKER = "import time\nprint('loading...', flush=True)\ntime.sleep(600)\n"
SILENT_EXIT_WORKER = "import sys\nprint('cannot start: missing library', file=sys.stderr)\nsys.exit(3)\n"


def cell_request(tiny_conv_onnx: Path, batch_size: int = 1) -> WorkerRequest:
    """A worker request for the tiny conv net on onnxruntime's CPU provider."""
    return WorkerRequest(
        artifact_path=str(tiny_conv_onnx),
        backend="onnxruntime",
        options={"execution_provider": "CPUExecutionProvider"},
        threads=1,
        cpu_affinity=(),
        inputs=(InputSpec(name="input", dtype="float32", shape=(batch_size, 3, 16, 16)),),
        batch_size=batch_size,
        protocol=FAST_PROTOCOL,
    )


def synthetic_host(**changes: object) -> HostFingerprint:
    fields: dict[str, object] = dict(
        hostname="h",
        os="Linux",
        isa="x86_64",
        cpu_model="Test CPU",
        cpu_flags=("avx2",),
        physical_cores=2,
        logical_cores=2,
        memory_bytes=8 * 1024**3,
        python="3.11",
        cpu_governor=None,
        load_average_1m=0.0,
        emulated=False,
    )
    fields.update(changes)
    return HostFingerprint(**fields)  # type: ignore[arg-type]


def make_onnx_model(
    inputs: list[onnx.ValueInfoProto],
    nodes: list[onnx.NodeProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def minimal_record(*cells: dict) -> dict:
    """The smallest record the store accepts (what every record has), with these cells."""
    return {
        "schema_version": 2,
        "run_id": "0123456789abcdef",
        "created_at": "2026-11-24T12:00:00.000Z",
        "command": "bench",
        "host": {},
        "cells": list(cells),
    }


BASELINE_CELL = {"model": "m", "variant": "baseline", "backend": "onnxruntime", "batch_size": 1, "status": "ok"}
# a bench cell every report format renders: what a measured cell has, with nothing measured
RENDERABLE_CELL = {
    **BASELINE_CELL,
    **dict.fromkeys(("provider", "error", "latency_ms", "artifact", "quality", "throughput_per_s"), None),
    **dict.fromkeys(("cold_start_ms", "memory", "cv"), None),
    "iterations": 0,
    "warnings": [],
}


def with_external_data(source: Path, folder: Path, scale: float) -> Path:
    """`source`'s graph with its weights (times `scale`) in data/weights.bin beside it, as models past 2 GB are."""
    import numpy as np
    from onnx import numpy_helper

    model = onnx.load(str(source))
    for tensor in model.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype == np.float32 and weights.nbytes >= 1024:  # the ones saved as external data
            tensor.CopyFrom(numpy_helper.from_array(weights * np.float32(scale), tensor.name))
    folder.mkdir()
    (folder / "data").mkdir()
    path = folder / "model.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="data/weights.bin", size_threshold=1024)
    return path


@contextmanager
def measuring_alone(tmp_path_factory: pytest.TempPathFactory, exclusive: bool = True) -> Iterator[None]:
    """While the block runs, no other test of this run runs on another pytest-xdist worker (with
    `exclusive=False`: no `serial` one does). For module fixtures whose measurements the tests judge
    by speed; the lock file lies in the workers' common temp folder. Without xdist: nothing to do."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    lock_path = tmp_path_factory.getbasetemp().parent / "speedproof-serial-tests.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
