"""OpenVINO backend: the ONNX artifact read by OpenVINO (`Core.read_model`), compiled for its CPU plugin with
the profile's options, and run through one synchronous infer request.

It reports what really ran: the compiled model's inference precision (bf16 asked on a CPU that lacks it
comes back f32: FELL_BACK), and each quantized layer's runtime precision from the execution graph (an int8
artifact whose quantized layers ran in f32 is FELL_BACK with the layers named). Shapes stay as the artifact
declares them (a symbolic batch compiles as dynamic), as ONNX Runtime gets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import openvino as ov

from targets.backends.base import BackendRunner, TensorMetadata
from targets.backends.openvino.layer_precision import (
    fell_back_layers,
    fell_back_text,
    has_quantized_ops,
    precision_summary,
    quantized_compute_nodes,
    runtime_layers,
)
from targets.errors import BackendFellBack, SpeedproofError

DEVICE = "CPU"
PERFORMANCE_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
# inference precision option -> (the plugin's name, the capability the CPU must report for it)
INFERENCE_PRECISIONS = {"f32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "f16": ("f16", "FP16")}
# OpenVINO element types mapped to numpy dtype names (inputs speedproof can generate)
OV_TO_NUMPY_DTYPE = {
    "f32": "float32",
    "f16": "float16",
    "f64": "float64",
    "i64": "int64",
    "i32": "int32",
    "i16": "int16",
    "i8": "int8",
    "u8": "uint8",
    "boolean": "bool",
}


def openvino_version() -> str:
    return str(ov.get_version()).split("-")[0]


def cpu_capabilities(core: ov.Core) -> tuple[str, ...]:
    """What the CPU plugin says this CPU can compute in: FP32, BF16, FP16, INT8, ..."""
    return tuple(str(item) for item in core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))


def _unavailable_reason(core: ov.Core, options: Mapping[str, Any]) -> str | None:
    """Why this CPU plugin cannot run with `options`; None when it can."""
    if DEVICE not in core.available_devices:
        return f"OpenVINO {openvino_version()} sees no CPU device (devices: {', '.join(core.available_devices)})"
    precision = options.get("inference_precision")
    if precision is not None:
        capability = INFERENCE_PRECISIONS[str(precision)][1]
        capabilities = cpu_capabilities(core)
        if capability not in capabilities:
            return (
                f"inference_precision = {precision!r}: this CPU cannot compute in {capability} (OpenVINO "
                f"{openvino_version()} reports {', '.join(capabilities)}); bf16 needs AVX-512 BF16 or AMX"
            )
    return None


class OpenVinoRunner(BackendRunner):
    name = "openvino"

    def __init__(self, artifact_path: str, threads: int, options: Mapping[str, Any]) -> None:
        super().__init__(artifact_path, threads, options)
        self.core: ov.Core | None = None
        self.compiled: ov.CompiledModel | None = None
        self.request: ov.InferRequest | None = None
        self.facts: dict[str, Any] = {}

    @classmethod
    def unavailable_reason(cls, options: Mapping[str, Any]) -> str | None:
        return _unavailable_reason(ov.Core(), options)

    def compile_config(self) -> dict[str, Any]:
        """The CPU plugin's properties for this profile's options."""
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": PERFORMANCE_HINTS[str(self.options.get("performance_hint", "latency"))],
            "INFERENCE_NUM_THREADS": self.threads,
        }
        if "inference_precision" in self.options:
            config["INFERENCE_PRECISION_HINT"] = INFERENCE_PRECISIONS[str(self.options["inference_precision"])][0]
        if "num_streams" in self.options:
            config["NUM_STREAMS"] = int(self.options["num_streams"])
        if self.options.get("low_precision") == "off":
            # the plugin's low-precision transformations off: quantized layers run in f32 (the fallback check's case)
            config["LP_TRANSFORMS_MODE"] = "NO"
        return config

    def activate_impl(self) -> None:
        self.core = ov.Core()
        reason = _unavailable_reason(self.core, self.options)
        if reason is not None:
            raise SpeedproofError(f"openvino cannot run {self.artifact_path}: {reason}")
        config = self.compile_config()
        try:
            model = self.core.read_model(self.artifact_path)
            self.compiled = self.core.compile_model(model, DEVICE, config)
        except Exception as error:  # OpenVINO raises RuntimeError with its own message
            raise SpeedproofError(f"openvino could not compile {self.artifact_path}: {error}") from error
        self.request = self.compiled.create_infer_request()
        self.facts = self._check_what_runs(config, has_quantized_ops(model))

    def _check_what_runs(self, config: Mapping[str, Any], quantized_model: bool) -> dict[str, Any]:
        """Raise BackendFellBack when the compiled model does not run as asked; else the facts to record.
        The ONNX graph is read for its quantized layers only when OpenVINO's model has quantized operations
        (a float model's worker start reads no file twice)."""
        assert self.compiled is not None
        asked = config.get("INFERENCE_PRECISION_HINT")
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32", "bf16", ...
        if asked is not None and precision != asked:
            raise BackendFellBack(f"openvino fell back: asked for inference precision {asked}, it compiled {precision}")
        layers = runtime_layers(self.compiled)
        quantized = quantized_compute_nodes(self.artifact_path) if quantized_model else set()
        fallen = fell_back_layers(quantized, layers)
        if fallen:
            raise BackendFellBack(f"openvino fell back: {fell_back_text(fallen, len(quantized))}")
        return {
            "openvino": {
                "version": openvino_version(),
                "inference_precision": precision,
                "num_streams": int(self.compiled.get_property("NUM_STREAMS")),
                "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
                "compute_layer_precisions": precision_summary(layers),
                "quantized_layers": len(quantized),
            }
        }

    def get_input_metadata_impl(self) -> list[TensorMetadata]:
        assert self.compiled is not None
        metadata = []
        for port in self.compiled.inputs:
            type_name = port.get_element_type().get_type_name()
            name = port.get_any_name()
            if type_name not in OV_TO_NUMPY_DTYPE:
                raise SpeedproofError(
                    f"{self.artifact_path}: input {name!r} has OpenVINO type {type_name}, which speedproof cannot "
                    f"generate data for (supported: {', '.join(OV_TO_NUMPY_DTYPE)})"
                )
            shape = tuple(dim.get_length() if dim.is_static else None for dim in port.get_partial_shape())
            metadata.append(TensorMetadata(name=name, dtype=OV_TO_NUMPY_DTYPE[type_name], shape=shape))
        return metadata

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> Any:
        return self.request.infer(feed, share_inputs=True)  # type: ignore[union-attr]

    def outputs_as_numpy(self, outputs: Any) -> list[np.ndarray]:
        return [np.asarray(value) for value in outputs.to_tuple()]

    def runtime_facts(self) -> dict[str, Any]:
        return self.facts

    def deactivate_impl(self) -> None:
        self.request = None
        self.compiled = None
        self.core = None

    def actual_provider_impl(self) -> str:
        assert self.compiled is not None
        devices = self.compiled.get_property("EXECUTION_DEVICES")
        return f"openvino-{','.join(str(device) for device in devices)}"
