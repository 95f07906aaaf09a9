"""TensorRT engines built from ONNX artifacts, where they run, and cached.

An engine is specific to its GPU and TensorRT version, so it is built on the machine that measures
(this host, a board, a fleet worker) by the `tensorrt` backend, not where the artifact was exported;
that is why this lives in `targets`, which is all such a machine needs.

- Precision: `precision = "model"` (default) builds a strongly typed network: the engine computes in
  the ONNX's own types, so an `fp16` artifact runs in FP16 and an `int8-static:symmetric=true`
  artifact (Q/DQ nodes, calibrated on the model source's data) runs in INT8 (explicit quantization).
  That is the only mode TensorRT 11 has. `precision = "fp16"` lets TensorRT 10 pick FP16 kernels for
  an FP32 artifact (BuilderFlag.FP16, weak typing); TensorRT 11 removed it and says so.
- 2:4: with `sparsity = "auto"` sparse weights are enabled when the artifact has layers whose weights
  carry the 2:4 pattern; the builder's own messages say which layers were eligible and which got
  sparse kernels (`targets.backends.tensorrt.inspection`).
- Shapes: one optimisation profile, batch 1 to `max_batch_size` (at least the batch measured),
  optimised for the batch measured; the other dims are those of the inputs measured.
- Caches: a timing cache per TensorRT version and GPU, and an engine cache keyed by the artifact's
  sha256, the TensorRT version, the GPU (name and compute capability) and every build flag, so a
  rebuilt engine is never mistaken for a cached one. `SPEEDPROOF_ENGINE_CACHE` names the folder
  (default ~/.cache/speedproof/tensorrt-engines). Engines are written atomically beside a JSON file
  with their build facts.

The pure parts (flags, keys, the ONNX facts) are tested everywhere; building needs TensorRT and a GPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from targets.backends.tensorrt.inspection import SparsityLog, sparsity_from_log
from targets.backends.two_four import zeros_have_two_four_pattern
from targets.cache_files import speedproof_cache
from targets.errors import SpeedproofError

INSTALL_TENSORRT = "pip install 'speedproof[trt]'"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
DEFAULT_MAX_BATCH = 64


@dataclass(frozen=True)
class OnnxFacts:
    """What an ONNX artifact asks of TensorRT."""

    qdq_nodes: int = 0  # explicit quantization: int8 requested
    nonzero_zero_points: tuple[str, ...] = ()  # Q/DQ zero points TensorRT refuses (it needs 0)
    two_four_layers: tuple[str, ...] = ()  # nodes whose weights carry the 2:4 pattern

    @property
    def int8_requested(self) -> bool:
        return self.qdq_nodes > 0


def _reduction_axis(op_type: str, attributes: Mapping[str, Any], input_index: int) -> int | None:
    """The axis a weight is reduced over (where 2:4 groups of four lie), or None for other inputs."""
    if op_type == "Conv" and input_index == 1:
        return 1
    if op_type == "MatMul" and input_index == 1:
        return 0
    if op_type == "Gemm" and input_index == 1:
        return 1 if attributes.get("transB") else 0
    return None


def onnx_facts(path: Path) -> OnnxFacts:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializers = {item.name: item for item in model.graph.initializer}
    qdq, nonzero, two_four = 0, [], []
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            qdq += 1
            if len(node.input) > 2 and node.input[2] in initializers:
                if np.any(numpy_helper.to_array(initializers[node.input[2]]) != 0):
                    nonzero.append(node.name or node.output[0])
            continue
        attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        for index, name in enumerate(node.input):
            axis = _reduction_axis(node.op_type, attributes, index)
            if axis is not None and name in initializers:
                if zeros_have_two_four_pattern(numpy_helper.to_array(initializers[name]) == 0, axis):
                    two_four.append(node.name or node.output[0])
    return OnnxFacts(qdq, tuple(nonzero), tuple(two_four))


@dataclass(frozen=True)
class EngineBuildFlags:
    """Everything that changes what the builder makes (part of the engine cache key)."""

    precision: str  # "model": strongly typed, the ONNX's own types; "fp16": TensorRT 10 may pick FP16
    sparse_weights: bool
    min_batch: int
    opt_batch: int
    max_batch: int
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]  # each input's dims after the batch
    detailed_profiling: bool = True  # the inspector's per-layer facts need it

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shapes"] = {name: list(dims) for name, dims in self.input_shapes}
        return data

    def shapes(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """min, opt and max shapes of one input for the optimisation profile."""
        rest = dict(self.input_shapes)[name]
        return (self.min_batch, *rest), (self.opt_batch, *rest), (self.max_batch, *rest)


def build_flags(
    options: Mapping[str, Any], facts: OnnxFacts, feed_shapes: Mapping[str, Sequence[int]]
) -> EngineBuildFlags:
    """The build flags for a backend's options, an artifact's facts and the shapes measured."""
    batch = max(int(shape[0]) for shape in feed_shapes.values()) if feed_shapes else 1
    precision = str(options.get("precision", "model"))
    if precision not in ("model", "fp16"):
        raise SpeedproofError(f'tensorrt option precision = {precision!r}; valid: "model", "fp16"')
    return EngineBuildFlags(
        precision=precision,
        sparse_weights=options.get("sparsity", "auto") == "auto" and bool(facts.two_four_layers),
        min_batch=1,
        opt_batch=batch,
        max_batch=max(batch, int(options.get("max_batch_size", DEFAULT_MAX_BATCH))),
        input_shapes=tuple((name, tuple(int(dim) for dim in shape[1:])) for name, shape in sorted(feed_shapes.items())),
    )


def engine_cache_key(artifact_sha256: str, tensorrt_version: str, gpu: str, flags: EngineBuildFlags) -> str:
    payload = {"artifact": artifact_sha256, "tensorrt": tensorrt_version, "gpu": gpu, "flags": flags.as_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def engine_cache_dir() -> Path:
    return speedproof_cache("tensorrt-engines", "SPEEDPROOF_ENGINE_CACHE")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".incoming-", delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, path)


def tensorrt_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


@dataclass
class BuiltEngine:
    """A serialized engine and how it was obtained (reported as the runtime's cold start facts)."""

    data: bytes
    source: str  # "built" or "cache"
    seconds: float
    key: str
    sparsity_log: SparsityLog

    def facts(self) -> dict[str, Any]:
        return {"source": self.source, "seconds": round(self.seconds, 3), "cache_key": self.key}


def load_or_build_engine(
    onnx_path: Path, artifact_sha256: str, gpu: str, flags: EngineBuildFlags, cache_dir: Path | None = None
) -> BuiltEngine:
    """The engine for these flags: from the cache when its key is there, else built (and cached)."""
    import tensorrt as trt

    folder = cache_dir or engine_cache_dir()
    key = engine_cache_key(artifact_sha256, trt.__version__, gpu, flags)
    engine_path, facts_path = folder / f"{key}.engine", folder / f"{key}.json"
    started = time.perf_counter()
    if engine_path.is_file() and facts_path.is_file():
        stored = json.loads(facts_path.read_text())
        return BuiltEngine(
            engine_path.read_bytes(),
            "cache",
            time.perf_counter() - started,
            key,
            SparsityLog.from_dict(stored.get("sparsity_log")),
        )
    data, messages = _build(onnx_path, flags, folder / f"timing-{trt.__version__}-{_safe(gpu)}.cache")
    sparsity = sparsity_from_log(messages)
    _write_atomically(engine_path, data)
    _write_atomically(
        facts_path,
        json.dumps(
            {"flags": flags.as_dict(), "tensorrt": trt.__version__, "gpu": gpu, "sparsity_log": sparsity.as_dict()}
        ).encode(),
    )
    return BuiltEngine(data, "built", time.perf_counter() - started, key, sparsity)


def _safe(text: str) -> str:
    return "".join(character if character.isalnum() else "_" for character in text)[:80]


def _build(onnx_path: Path, flags: EngineBuildFlags, timing_cache_path: Path) -> tuple[bytes, list[str]]:
    import tensorrt as trt

    class CapturingLogger(trt.ILogger):  # type: ignore[misc]
        """Keeps the builder's messages: its sparsity report and, on failure, why."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []
            self.errors: list[str] = []

        def log(self, severity: Any, message: str) -> None:
            if severity <= trt.ILogger.Severity.ERROR:
                self.errors.append(str(message))
            if severity <= trt.ILogger.Severity.INFO:
                self.messages.append(str(message))

    logger = CapturingLogger()
    builder = trt.Builder(logger)
    major = tensorrt_major(trt.__version__)
    network_flags = 0
    if flags.precision == "model" and major < 11:  # 11.x networks are always strongly typed
        network_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
        raise SpeedproofError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    if flags.detailed_profiling:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if flags.precision == "fp16":
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise SpeedproofError(
                f"TensorRT {trt.__version__} has no weak typing (BuilderFlag.FP16 was removed in 11.x): use the fp16 "
                'recipe (an FP16 artifact) with precision = "model"'
            )
        config.set_flag(trt.BuilderFlag.FP16)
    if flags.sparse_weights:
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        name = network.get_input(index).name
        profile.set_shape(name, *flags.shapes(name))
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
    timing_cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reasons = "; ".join(logger.errors[-3:]) or "the builder gave no error message"
        raise SpeedproofError(f"TensorRT could not build an engine for {onnx_path.name}: {reasons}")
    _write_atomically(timing_cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized)), logger.messages
