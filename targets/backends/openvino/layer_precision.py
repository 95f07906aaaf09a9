"""Which precision each compute layer of a compiled OpenVINO model really ran in, against what the ONNX
artifact asked for: a quantized layer (QDQ-fed Conv/MatMul/Gemm, or a QLinear/Integer op) that OpenVINO
runs in a float precision is a fallback, named layer by layer, never a silent f32 result.

Reads the runtime (execution) graph's `layerType`, `runtimePrecision` and `originalLayersNames`, which
carry the ONNX node names the plugin fused into each layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

# ONNX compute ops whose quantized form is QDQ around them, or an op of its own
QDQ_COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
QUANTIZED_COMPUTE_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})
# OpenVINO CPU layer types that do a model's multiply-adds
RUNTIME_COMPUTE_LAYERS = frozenset(
    {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul", "Gemm"}
)
INTEGER_PRECISIONS = frozenset({"u8", "i8", "u4", "i4"})


@dataclass(frozen=True)
class RuntimeLayer:
    """One layer of the compiled model's execution graph."""

    name: str
    layer_type: str
    precision: str
    original_names: tuple[str, ...]

    @property
    def is_compute(self) -> bool:
        return self.layer_type in RUNTIME_COMPUTE_LAYERS


def runtime_layers(compiled_model: Any) -> list[RuntimeLayer]:
    """The execution graph of an `ov.CompiledModel`, layer by layer."""
    layers = []
    for op in compiled_model.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        originals = str(info["originalLayersNames"].astype(str)) if "originalLayersNames" in info else ""
        layers.append(
            RuntimeLayer(
                name=op.get_friendly_name(),
                layer_type=str(info["layerType"].astype(str)),
                precision=str(info["runtimePrecision"].astype(str)),
                original_names=tuple(name for name in originals.split(",") if name),
            )
        )
    return layers


def has_quantized_ops(model: Any) -> bool:
    """Whether OpenVINO's reading of the artifact (an `ov.Model`) holds quantization: FakeQuantize (its form
    of QuantizeLinear), or 8- or 4-bit integer constants (dequantized weights)."""
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize" or (
            kind == "Constant" and op.get_output_element_type(0).get_type_name() in INTEGER_PRECISIONS
        ):
            return True
    return False


def quantized_compute_nodes(onnx_path: str | Path) -> set[str]:
    """Names of the artifact's compute nodes that are quantized: QDQ-fed (a weight or data input made by
    DequantizeLinear) or an integer op of their own. Reads the graph only, not external weights."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    dequantized = {output for node in model.graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    names = set()
    for node in model.graph.node:
        if node.op_type in QUANTIZED_COMPUTE_OPS or (
            node.op_type in QDQ_COMPUTE_OPS and any(name in dequantized for name in node.input[:2])
        ):
            names.add(node.name)
    return names


def fell_back_layers(quantized_nodes: Iterable[str], layers: Iterable[RuntimeLayer]) -> list[RuntimeLayer]:
    """The compute layers that hold a quantized node of the artifact but ran in a float precision."""
    quantized = set(quantized_nodes)
    return [
        layer
        for layer in layers
        if layer.is_compute
        and layer.precision not in INTEGER_PRECISIONS
        and quantized.intersection((layer.name, *layer.original_names))
    ]


def precision_summary(layers: Iterable[RuntimeLayer]) -> dict[str, int]:
    """How many compute layers ran in each precision, e.g. {"u8": 20, "i8": 1}."""
    return dict(Counter(layer.precision for layer in layers if layer.is_compute))


def fell_back_text(fallen: list[RuntimeLayer], quantized_count: int, limit: int = 5) -> str:
    named = ", ".join(f"{layer.name} ({layer.layer_type}, {layer.precision})" for layer in fallen[:limit])
    more = f" and {len(fallen) - limit} more" if len(fallen) > limit else ""
    return f"{len(fallen)} of the artifact's {quantized_count} quantized layers ran in float on OpenVINO: {named}{more}"
