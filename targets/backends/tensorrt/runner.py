"""tensorrt backend: a TensorRT engine built from the ONNX artifact (`targets.backends.tensorrt.engines`,
cached by content hash, TensorRT version, GPU and build flags) and run on a CUDA stream.

The engine is built (or loaded from the cache) on the first inference, when the shapes measured are
known: that happens in warm-up and is cold start, never latency, and the record says which it was
and how long it took (`runtime.tensorrt.engine`). Buffers are torch tensors on the device; an
iteration enqueues the engine (`execute_async_v3`) between two CUDA events on torch's current
stream, or replays a CUDA graph captured around that enqueue (`mode = "cuda-graph"`). `timing =
"kernel"` keeps the inputs on the device; `"end-to-end"` copies them in and the first output out
inside the events. After loading, the engine inspector (detailed profiling verbosity) says which
tactic and precision each layer got; `runtime_facts` records them with the 2:4 and int8 summaries
(`targets.backends.tensorrt.inspection`), from which the verdict's hints come.

Written against TensorRT's documented Python API (10.x and 11.x); it has NOT yet run on a GPU.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from targets.backends.base import BackendRunner, TensorMetadata, TimingKind
from targets.backends.cuda_devices import current_cuda_device_uuid, torch_device_peaks
from targets.backends.tensorrt.engines import (
    INSTALL_TENSORRT,
    BuiltEngine,
    build_flags,
    load_or_build_engine,
    onnx_facts,
)
from targets.backends.tensorrt.inspection import KernelReport, kernel_report
from targets.errors import SpeedproofError


def tensorrt_unavailable_reason(options: Mapping[str, Any]) -> str | None:
    """Why the tensorrt backend cannot run here (None: it can)."""
    try:
        import tensorrt
    except ImportError:
        return f"TensorRT is not installed: {INSTALL_TENSORRT}"
    except Exception as error:  # a wheel for another CUDA fails at import
        return f"TensorRT cannot be imported ({error}): {INSTALL_TENSORRT}"
    try:
        import torch
    except ImportError:
        return "the tensorrt backend uses PyTorch for device buffers and events, which is not installed"
    if not torch.cuda.is_available():
        return f"no CUDA device (TensorRT {tensorrt.__version__})"
    if options.get("mode", "engine") == "cuda-graph" and options.get("timing") == "end-to-end":
        return 'mode "cuda-graph" times the replay only; use timing = "kernel" with it'
    return None


def _onnx_inputs(path: Path) -> list[TensorMetadata]:
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    initializers = {item.name for item in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = tuple(
            dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None) for dim in tensor.shape.dim
        )
        inputs.append(
            TensorMetadata(value.name, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name, dims)
        )
    return inputs


class TensorRTRunner(BackendRunner):
    name = "tensorrt"
    uses_gpu = True
    needs_synchronize = True

    def __init__(self, artifact_path: str, threads: int, options: Mapping[str, Any]) -> None:
        super().__init__(artifact_path, threads, options)
        self.mode = str(self.options.get("mode", "engine"))
        self.end_to_end = self.options.get("timing", "kernel") == "end-to-end"
        self.timing = TimingKind.DEVICE_END_TO_END if self.end_to_end else TimingKind.DEVICE_KERNEL
        self._inputs: list[TensorMetadata] = []
        self._facts: Any = None
        self._sha256 = ""
        self._engine: Any = None
        self._context: Any = None
        self._built: BuiltEngine | None = None
        self._report: KernelReport | None = None
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._buffers: dict[str, Any] = {}
        self._outputs: list[str] = []
        self._fed: Mapping[str, np.ndarray] | None = None
        self._events: tuple[Any, Any] | None = None
        self._graph: Any = None
        self._enqueue_ns = 0

    @classmethod
    def unavailable_reason(cls, options: Mapping[str, Any]) -> str | None:
        return tensorrt_unavailable_reason(options)

    def activate_impl(self) -> None:
        import torch

        from targets.cache_files import file_sha256

        reason = tensorrt_unavailable_reason(self.options)
        if reason is not None:
            raise SpeedproofError(f"tensorrt backend cannot run here: {reason}")
        path = Path(self.artifact_path)
        self._inputs = _onnx_inputs(path)
        self._facts = onnx_facts(path)
        if self._facts.nonzero_zero_points:
            raise SpeedproofError(
                f"{path.name}: TensorRT's int8 needs zero points of 0, and {len(self._facts.nonzero_zero_points)} "
                "Q/DQ nodes have others (asymmetric quantization): use the recipe int8-static:symmetric=true"
            )
        self._sha256 = file_sha256(path)
        torch.cuda.reset_peak_memory_stats()
        self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def get_input_metadata_impl(self) -> list[TensorMetadata]:
        return list(self._inputs)

    # the engine, on the first inference ------------------------------------------------------
    def _prepare(self, feed: Mapping[str, np.ndarray]) -> None:
        """Build or load the engine for these shapes, bind device buffers and read what ran."""
        import tensorrt as trt
        import torch

        shapes = {name: tuple(int(dim) for dim in np.shape(value)) for name, value in feed.items()}
        flags = build_flags(self.options, self._facts, shapes)
        properties = torch.cuda.get_device_properties(torch.cuda.current_device())
        gpu = f"{properties.name} sm_{properties.major}{properties.minor}"
        self._built = load_or_build_engine(Path(self.artifact_path), self._sha256, gpu, flags)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(self._built.data)
        if self._engine is None:
            raise SpeedproofError(f"TensorRT could not load the engine {self._built.key} (built by another version?)")
        self._context = self._engine.create_execution_context()
        self._buffers, self._outputs = {}, []
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._context.set_input_shape(name, shapes[name])
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(self._engine.get_tensor_dtype(name)))).dtype
            shape = tuple(self._context.get_tensor_shape(name))
            self._buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self._context.set_tensor_address(name, self._buffers[name].data_ptr())
            if self._engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                self._outputs.append(name)
        self._shapes = shapes
        self._report = self._inspect()

    def _inspect(self) -> KernelReport:
        import json

        import tensorrt as trt

        assert self._built is not None
        inspector = self._engine.create_engine_inspector()
        inspector.execution_context = self._context
        information = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        return kernel_report(
            information,
            int8_requested=self._facts.int8_requested,
            sparsity_requested=bool(self._facts.two_four_layers) and self.options.get("sparsity", "auto") == "auto",
            eligible_from_weights=len(self._facts.two_four_layers),
            sparsity_log=self._built.sparsity_log,
        )

    def _copy_in(self, feed: Mapping[str, np.ndarray]) -> None:
        import torch

        for name, value in feed.items():
            self._buffers[name].copy_(torch.from_numpy(np.ascontiguousarray(value)), non_blocking=False)

    def _enqueue(self) -> None:
        import torch

        if not self._context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise SpeedproofError("TensorRT could not enqueue the engine (execute_async_v3 returned False)")

    def _capture(self) -> None:
        import torch

        self._enqueue()  # TensorRT wants one enqueue before capture (lazy resource set-up)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
        self._graph = graph

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> Any:
        shapes = {name: tuple(np.shape(value)) for name, value in feed.items()}
        if self._engine is None or shapes != self._shapes:
            self._prepare(feed)
            self._graph = None
        assert self._events is not None
        entered = time.perf_counter_ns()
        self._events[0].record()
        if self.end_to_end or feed is not self._fed:
            self._copy_in(feed)
            self._fed = feed
        if self.mode == "cuda-graph":
            if self._graph is None:
                self._capture()
            self._graph.replay()
        else:
            self._enqueue()
        outputs = [self._buffers[name] for name in self._outputs]
        if self.end_to_end:
            outputs = [outputs[0].to("cpu", non_blocking=False), *outputs[1:]]
        self._events[1].record()
        self._enqueue_ns = time.perf_counter_ns() - entered
        return outputs

    def synchronize_impl(self) -> None:
        import torch

        torch.cuda.current_stream().synchronize()

    def host_enqueue_ns(self) -> int | None:
        return self._enqueue_ns

    def device_elapsed_ns(self) -> int:
        assert self._events is not None
        start, stop = self._events
        return int(start.elapsed_time(stop) * 1_000_000)

    def outputs_as_numpy(self, outputs: Any) -> list[np.ndarray]:
        return [tensor.detach().float().cpu().numpy() for tensor in outputs]

    def runtime_facts(self) -> dict[str, Any]:
        if self._report is None or self._built is None:
            return {}
        return {"tensorrt": {**self._report.as_dict(), "engine": self._built.facts()}}

    def cuda_device_uuid(self) -> str | None:
        return current_cuda_device_uuid()

    def device_memory(self) -> dict[str, int]:
        memory = torch_device_peaks()  # the I/O buffers are torch tensors
        engine_bytes = getattr(self._engine, "device_memory_size_v2", None)
        if engine_bytes is not None:
            memory["tensorrt_engine_device_bytes"] = int(engine_bytes)
        return memory

    def deactivate_impl(self) -> None:
        self._graph = self._context = self._engine = self._fed = self._events = None
        self._buffers = {}

    def actual_provider_impl(self) -> str:
        import tensorrt as trt
        import torch

        return f"tensorrt {trt.__version__} on {torch.cuda.get_device_name()}"
