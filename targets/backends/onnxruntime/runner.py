"""ONNX Runtime backend: an InferenceSession pinned to one execution provider.

Asking for a provider ORT does not have is an error listing the ones it has; a session that
silently fell back to another provider is an error too, never a result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime as ort

from targets.backends.base import BackendRunner, TensorMetadata
from targets.errors import BackendFellBack, SpeedproofError

DEFAULT_PROVIDER = "CPUExecutionProvider"
GPU_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})
OPTIMIZATION_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# ORT's type strings ("tensor(float)") mapped to numpy dtype names
ORT_TO_NUMPY_DTYPE = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


class OnnxRuntimeRunner(BackendRunner):
    name = "onnxruntime"

    def __init__(self, artifact_path: str, threads: int, options: Mapping[str, Any]) -> None:
        super().__init__(artifact_path, threads, options)
        self.provider = str(self.options.get("execution_provider", DEFAULT_PROVIDER))
        self.uses_gpu = self.provider in GPU_PROVIDERS
        self.session: ort.InferenceSession | None = None

    @classmethod
    def unavailable_reason(cls, options: Mapping[str, Any]) -> str | None:
        provider = str(options.get("execution_provider", DEFAULT_PROVIDER))
        available = ort.get_available_providers()
        if provider not in available:
            return f"onnxruntime {ort.__version__} has no {provider} (available: {', '.join(available)})"
        return None

    def activate_impl(self) -> None:
        reason = self.unavailable_reason(self.options)
        if reason is not None:
            raise SpeedproofError(f"requested provider {self.provider} is not available: {reason}")
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = self.threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        level = self.options.get("graph_optimization_level", "all")
        session_options.graph_optimization_level = OPTIMIZATION_LEVELS[level]
        session_options.log_severity_level = 3  # errors only: warnings would flood the worker's stderr
        try:
            self.session = ort.InferenceSession(
                self.artifact_path, sess_options=session_options, providers=[self.provider]
            )
        except Exception as error:  # ORT raises its own Fail/InvalidGraph/... types
            raise SpeedproofError(f"onnxruntime could not load {self.artifact_path}: {error}") from error
        actual = self.session.get_providers()[0]
        if actual != self.provider:
            raise BackendFellBack(
                f"onnxruntime fell back: asked for {self.provider}, the session runs on {actual} "
                f"(session providers: {', '.join(self.session.get_providers())})"
            )

    def get_input_metadata_impl(self) -> list[TensorMetadata]:
        assert self.session is not None
        metadata = []
        for node in self.session.get_inputs():
            if node.type not in ORT_TO_NUMPY_DTYPE:
                raise SpeedproofError(
                    f"{self.artifact_path}: input {node.name!r} has type {node.type}, which speedproof "
                    f"cannot generate data for (supported: {', '.join(ORT_TO_NUMPY_DTYPE)})"
                )
            metadata.append(
                TensorMetadata(name=node.name, dtype=ORT_TO_NUMPY_DTYPE[node.type], shape=tuple(node.shape))
            )
        return metadata

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> Any:
        return self.session.run(None, feed)  # type: ignore[union-attr]

    def deactivate_impl(self) -> None:
        self.session = None

    def actual_provider_impl(self) -> str:
        assert self.session is not None
        return str(self.session.get_providers()[0])
