"""torch backend: a torch.export program (`.pt2`) run by PyTorch itself, on CPU or CUDA.

Modes: `eager` (the program's module called as is), `compile` (torch.compile with inductor; the
compilation happens on the first inference and is reported as cold start, never as latency) and
`cuda-graph` (captured once after warm-up on a side stream, then replayed). `dtype` casts the
program's weights and inputs (float16/bfloat16); left out, the program's own dtype is kept (a
`fp16` recipe's program is already float16). With `sparsity = "auto"` (the default) linear layers
that carry the 2:4 pattern run on torch's semi-structured sparse kernels where it has them (CUDA,
float16/bfloat16/int8, block-aligned shapes), and `runtime_facts` says which did and why the others
stayed dense (targets.backends.torch.semi_structured).

Inputs are converted once per feed and kept on the device, so a timed iteration is the model's
work only (`timing = "kernel"`); `timing = "end-to-end"` copies the inputs to the device and the
first output back to the host in every iteration. On CUDA `infer` returns before the kernels end;
`synchronize` waits for them, and the timing loop calls it before it reads the time: on CUDA the
time of an iteration is that of a pair of CUDA events recorded around the work (after the copies
in, kernels, copies out for end-to-end), never the host's wait, and the peak of torch's caching
allocator is reported as device memory. Everything runs under `torch.inference_mode()`, entered
when the runner activates. The CUDA paths have not yet run on a GPU.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from targets.backends.base import BackendRunner, TensorMetadata, TimingKind
from targets.backends.cuda_devices import current_cuda_device_uuid, torch_device_peaks
from targets.backends.torch.programs import is_static_dim, output_tensors
from targets.backends.torch.semi_structured import SemiStructuredReport, sparsify
from targets.errors import SpeedproofError

GRAPH_WARMUP_ITERATIONS = 3  # on a side stream before capture, as torch's CUDA-graph notes ask


def torch_unavailable_reason(options: Mapping[str, Any]) -> str | None:
    """Why these options cannot run here (None: they can). Imports torch."""
    try:
        import torch
    except ImportError as error:
        return f"PyTorch is not installed ({error})"
    device = str(options.get("device", "cpu"))
    mode = str(options.get("mode", "eager"))
    if device == "cuda" and not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})"
    if mode == "cuda-graph" and device != "cuda":
        return 'mode "cuda-graph" needs device = "cuda"'
    if mode == "compile" and device == "cpu" and shutil.which("g++") is None and shutil.which("c++") is None:
        return 'mode "compile" on the CPU needs a C++ compiler (inductor builds its kernels with g++)'
    return None


class TorchRunner(BackendRunner):
    name = "torch"

    def __init__(self, artifact_path: str, threads: int, options: Mapping[str, Any]) -> None:
        super().__init__(artifact_path, threads, options)
        self.device = str(self.options.get("device", "cpu"))
        self.mode = str(self.options.get("mode", "eager"))
        self.dtype_name: str | None = self.options.get("dtype")
        self.end_to_end = self.options.get("timing", "kernel") == "end-to-end"
        self.needs_synchronize = self.uses_gpu = self.device == "cuda"
        if self.device == "cuda":  # CUDA events around the work: device time, not the host's wait
            self.timing = TimingKind.DEVICE_END_TO_END if self.end_to_end else TimingKind.DEVICE_KERNEL
        self._events: tuple[Any, Any] | None = None
        self._threads_before: int | None = None
        self._module: Any = None
        self._input_names: list[str] = []
        self._input_values: list[Any] = []
        self._inference: contextlib.ExitStack | None = None
        self._fed: Mapping[str, np.ndarray] | None = None
        self._tensors: list[Any] = []
        self._graph: Any = None
        self._graph_outputs: Any = None
        self._enqueue_ns = 0
        self.semi_structured = SemiStructuredReport()

    @classmethod
    def unavailable_reason(cls, options: Mapping[str, Any]) -> str | None:
        return torch_unavailable_reason(options)

    def activate_impl(self) -> None:
        import torch

        from targets.backends.torch.programs import load_program, program_input_values

        reason = torch_unavailable_reason(self.options)
        if reason is not None:
            raise SpeedproofError(f"torch backend cannot run here: {reason}")
        self._threads_before = torch.get_num_threads()  # restored on deactivate: quality checks run in-process
        torch.set_num_threads(self.threads)
        with contextlib.suppress(RuntimeError):  # only settable before the first parallel work
            torch.set_num_interop_threads(1)
        program, self._input_names = load_program(Path(self.artifact_path))
        self._input_values = program_input_values(program)
        module = program.module().to(self.device)
        if self.dtype_name is not None:
            module = module.to(getattr(torch, self.dtype_name))
        if self.options.get("sparsity", "auto") == "auto":
            self.semi_structured = sparsify(module, self.device, _weights_dtype(module))
        self._inference = contextlib.ExitStack()
        self._inference.enter_context(torch.inference_mode())
        if self.mode == "compile":
            module = torch.compile(module, dynamic=False)
        self._module = module
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def get_input_metadata_impl(self) -> list[TensorMetadata]:
        return [
            TensorMetadata(
                name=name,
                dtype=str(self._input_dtype(value)).removeprefix("torch."),
                shape=tuple(int(dim) if is_static_dim(dim) else str(dim) for dim in value.shape),
            )
            for name, value in zip(self._input_names, self._input_values, strict=True)
        ]

    def _input_dtype(self, value: Any) -> Any:
        """An input's dtype as the module gets it: `dtype` casts floating-point inputs only."""
        import torch

        return getattr(torch, self.dtype_name) if self.dtype_name and value.dtype.is_floating_point else value.dtype

    def _device_tensors(self, feed: Mapping[str, np.ndarray]) -> list[Any]:
        """The feed on the device: torch-allocated copies (aligned as its kernels expect), never views of
        the numpy buffers."""
        import torch

        return [
            torch.from_numpy(np.ascontiguousarray(feed[name])).to(self.device, self._input_dtype(value), copy=True)
            for name, value in zip(self._input_names, self._input_values, strict=True)
        ]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> Any:
        events = self._events
        entered = time.perf_counter_ns() if events is not None else 0  # enqueue time: on CUDA only
        if events is not None:
            events[0].record()  # before the copies: end-to-end time includes them
        if self.end_to_end or feed is not self._fed:
            if self._graph is not None:  # a captured graph reads its static inputs: copy the feed into them
                for static, name in zip(self._tensors, self._input_names, strict=True):
                    static.copy_(_host_tensor(feed[name]), non_blocking=False)
            else:
                self._tensors = self._device_tensors(feed)
            self._fed = feed
        if self.mode == "cuda-graph":
            if self._graph is None:
                self._capture()
            self._graph.replay()
            outputs = self._graph_outputs
        else:
            outputs = self._module(*self._tensors)
        if self.end_to_end:
            outputs = (output_tensors(outputs)[0].to("cpu", non_blocking=False),)
        if events is not None:
            events[1].record()
            self._enqueue_ns = time.perf_counter_ns() - entered
        return outputs

    def host_enqueue_ns(self) -> int | None:
        """Host time of the last `infer` up to its end event: on CUDA the launches, not the kernels."""
        return self._enqueue_ns if self.device == "cuda" else None

    def device_elapsed_ns(self) -> int:
        """Time between the events `infer` recorded (valid after `synchronize`)."""
        assert self._events is not None
        start, stop = self._events
        return int(start.elapsed_time(stop) * 1_000_000)  # elapsed_time is in ms

    def runtime_facts(self) -> dict[str, Any]:
        if not self.semi_structured.requested:
            return {}
        return {"semi_structured": self.semi_structured.as_dict()}

    def cuda_device_uuid(self) -> str | None:
        return current_cuda_device_uuid() if self.device == "cuda" else None

    def device_memory(self) -> dict[str, int]:
        return torch_device_peaks() if self.device == "cuda" else {}

    def _capture(self) -> None:
        """Warm up on a side stream, then capture one call into a CUDA graph (static inputs)."""
        import torch

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_ITERATIONS):
                self._module(*self._tensors)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._graph_outputs = self._module(*self._tensors)
        self._graph = graph

    def synchronize_impl(self) -> None:
        import torch

        torch.cuda.synchronize()

    def outputs_as_numpy(self, outputs: Any) -> list[np.ndarray]:
        return [tensor.detach().float().cpu().numpy() for tensor in output_tensors(outputs)]

    def deactivate_impl(self) -> None:
        self._module = self._graph = self._graph_outputs = self._fed = self._events = None
        self._tensors = []
        if self._inference is not None:
            self._inference.close()
            self._inference = None
        if self._threads_before is not None:
            import torch

            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    def actual_provider_impl(self) -> str:
        if self.device == "cuda":
            import torch

            return f"torch-{self.mode} on {torch.cuda.get_device_name()}"
        return f"torch-{self.mode} on cpu"


def _weights_dtype(module: Any) -> str:
    """The dtype name of the module's first floating-point parameter ("float32" when it has none)."""
    for parameter in module.parameters():
        if parameter.dtype.is_floating_point:
            return str(parameter.dtype).removeprefix("torch.")
    return "float32"


def _host_tensor(array: np.ndarray) -> Any:
    """A CPU tensor over the array (copy_ into a device tensor moves it)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))
