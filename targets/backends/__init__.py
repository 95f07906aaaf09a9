"""The one place where runtime backends are registered.

Each entry names the module and class that implement it and the options a target profile may set
for it, with their help. Importing this package imports no runtime; `load_runner_class` does that,
inside the worker process that runs the cell.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from targets.errors import SpeedproofError, unknown_choice

if TYPE_CHECKING:
    from targets.backends.base import BackendRunner


@dataclass(frozen=True)
class BackendOption:
    """One option a profile may set on a backend, with its type and help."""

    type: type
    help: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendEntry:
    module: str
    class_name: str
    help: str
    options: dict[str, BackendOption]
    artifact_kind: str = "onnx"  # the kind of artifact file it runs (exporters.artifacts.ARTIFACT_KINDS)
    extra: str | None = None  # the optional extra that installs its runtime, e.g. "openvino"


BACKENDS: dict[str, BackendEntry] = {
    "onnxruntime": BackendEntry(
        module="targets.backends.onnxruntime.runner",
        class_name="OnnxRuntimeRunner",
        help="ONNX Runtime InferenceSession on one execution provider",
        options={
            "execution_provider": BackendOption(
                str,
                "execution provider that must run the model, e.g. CPUExecutionProvider, "
                "CUDAExecutionProvider; a fallback to another provider fails the cell",
            ),
            "graph_optimization_level": BackendOption(
                str,
                "ORT graph optimisations applied when the session is created",
                choices=("disabled", "basic", "extended", "all"),
            ),
        },
    ),
    "openvino": BackendEntry(
        module="targets.backends.openvino.runner",
        class_name="OpenVinoRunner",
        help="OpenVINO's CPU plugin compiling the ONNX artifact (read as is); records the precision each compute "
        "layer really ran in, and fails a quantized layer that ran in float",
        extra="openvino",
        options={
            "performance_hint": BackendOption(
                str,
                "OpenVINO's performance hint: latency (one stream) or throughput (streams for parallel requests; "
                "speedproof runs one request at a time)",
                choices=("latency", "throughput"),
            ),
            "inference_precision": BackendOption(
                str,
                "precision of float layers: f32, bf16 (a CPU with AVX-512 BF16 or AMX) or f16; left out: the "
                "plugin's choice. A CPU without it cannot run the profile; a compile that ignored it fails the cell",
                choices=("f32", "bf16", "f16"),
            ),
            "num_streams": BackendOption(int, "execution streams (left out: what the performance hint picks)"),
            "low_precision": BackendOption(
                str,
                "auto: the plugin runs quantized (QDQ) layers in int8; off: its low-precision transformations are "
                "off (LP_TRANSFORMS_MODE), so they run in float and an int8 artifact's cell is FELL_BACK",
                choices=("auto", "off"),
            ),
        },
    ),
    "onnxruntime-genai": BackendEntry(
        module="targets.backends.genai.runner",
        class_name="GenaiRunner",
        help="ONNX Runtime GenAI running a generative decoder folder (genai_config.json + model.onnx) on the CPU, "
        "timed one phase of greedy generation at a time: the prompt's prefill, time to first token, time per "
        "decoded token (the job sets the phase, the prompt length and the decode window of each worker); speedproof "
        "picks it for decoder sources (verify's decoder scenario)",
        artifact_kind="genai-folder",
        extra="llm",
        # none a profile sets: the decoder job gives each worker its phase, prompt length and decode window
        options={},
    ),
    "torch": BackendEntry(
        module="targets.backends.torch.runner",
        class_name="TorchRunner",
        help="PyTorch running a torch.export program (.pt2) eager, compiled (inductor) or as a CUDA graph",
        artifact_kind="pt2",
        options={
            "device": BackendOption(str, "where the program runs", choices=("cpu", "cuda")),
            "mode": BackendOption(
                str,
                "eager: the module as is; compile: torch.compile (inductor), compiled on the first inference; "
                "cuda-graph: captured once, then replayed (device = cuda)",
                choices=("eager", "compile", "cuda-graph"),
            ),
            "dtype": BackendOption(
                str,
                "cast weights and inputs to this dtype (left out: the program's own)",
                choices=("float32", "float16", "bfloat16"),
            ),
            "timing": BackendOption(
                str,
                "kernel: inputs stay on the device between iterations; end-to-end: every iteration copies "
                "the inputs in and the first output back to the host",
                choices=("kernel", "end-to-end"),
            ),
            "sparsity": BackendOption(
                str,
                "auto: linear layers with the 2:4 pattern (the semi-structured recipe) run on torch's 2:4 sparse "
                "kernels where it has them (CUDA, float16/bfloat16/int8); dense: never",
                choices=("auto", "dense"),
            ),
        },
    ),
    "tensorrt": BackendEntry(
        module="targets.backends.tensorrt.runner",
        class_name="TensorRTRunner",
        help="a TensorRT engine built from the ONNX artifact on the GPU that runs it (cached), timed with CUDA "
        "events; records which tactic and precision each layer got",
        extra="trt",
        options={
            "precision": BackendOption(
                str,
                "model: a strongly typed network, the ONNX's own types (fp16 and int8-static:symmetric=true "
                "artifacts; TensorRT 11's only mode); fp16: TensorRT 10 may pick FP16 kernels for an FP32 artifact",
                choices=("model", "fp16"),
            ),
            "sparsity": BackendOption(
                str,
                "auto: enable sparse weights when the artifact has 2:4 weights (the semi-structured recipe); "
                "dense: never",
                choices=("auto", "dense"),
            ),
            "mode": BackendOption(
                str,
                "engine: enqueue per iteration; cuda-graph: capture the enqueue once, then replay",
                choices=("engine", "cuda-graph"),
            ),
            "timing": BackendOption(
                str,
                "kernel: inputs stay on the device; end-to-end: copies in and the first output out are timed too",
                choices=("kernel", "end-to-end"),
            ),
            "max_batch_size": BackendOption(
                int, "the optimisation profile covers batch 1 to this (at least the batch measured)"
            ),
        },
    ),
}


def backend_entry(name: str) -> BackendEntry:
    try:
        return BACKENDS[name]
    except KeyError:
        raise unknown_choice("backend", name, BACKENDS) from None


def load_runner_class(name: str) -> type[BackendRunner]:
    """Import the backend's module (and so its runtime) and return its runner class."""
    entry = backend_entry(name)
    try:
        module = importlib.import_module(entry.module)
    except ImportError as error:
        install = f"; install it with pip install 'speedproof[{entry.extra}]'" if entry.extra else ""
        raise SpeedproofError(f"backend {name!r} cannot be used on this host: {error}{install}") from error
    runner_class: type[BackendRunner] = getattr(module, entry.class_name)
    return runner_class
