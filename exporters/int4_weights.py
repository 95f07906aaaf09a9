"""4-bit (and 8-bit) weight-only quantization of an ONNX graph (the LLM-style int4 of RTN/GPTQ/AWQ) through
onnxruntime's own quantizer: every MatMul whose weight is a constant becomes a MatMulNBits with
block-wise 4-bit weights and float scales; activations stay float. Gemm nodes (what the exporter
makes of a 2-D nn.Linear) are first rewritten as MatMul + Add, which computes the same thing, so
that their weights are quantized too."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from exporters.onnx_transforms import quiet_quantizer
from targets.errors import SpeedproofError

INT4_BLOCK_SIZES = (32, 64, 128)
# MatMulNBits' accuracy_level: 0 unset (the kernel's choice), 1 fp32, 2 fp16, 3 bf16, 4 int8 compute
INT4_ACCURACY_LEVELS = (0, 1, 2, 3, 4)
NBITS_OP = "MatMulNBits"


@dataclass(frozen=True)
class Int4Result:
    matmuls: int  # MatMul nodes with a constant weight before quantization (Gemm rewritten included)
    quantized: int  # of those, how many became MatMulNBits
    gemms_rewritten: int

    def as_note(self) -> dict[str, int]:
        return {
            "matmuls_with_constant_weights": self.matmuls,
            "matmuls_to_matmulnbits": self.quantized,
            "gemms_rewritten_as_matmul": self.gemms_rewritten,
        }


def quantize_int4_weights(
    source: Path, destination: Path, block_size: int, symmetric: bool, accuracy_level: int, bits: int = 4
) -> Int4Result:
    """Write `destination`: `source` with `bits`-bit (4 or 8) block-wise weights on its MatMuls; raises when no
    MatMul or Gemm has a constant weight (nothing would change)."""
    recipe = f"int{bits}-weight"
    quantizer_class = _nbits_quantizer()
    model = onnx.load(str(source))
    rewritten = rewrite_gemms_as_matmuls(model.graph)
    matmuls = _constant_weight_matmuls(model.graph)
    if not matmuls:
        raise SpeedproofError(
            f"{recipe}: {source.name} has no MatMul or Gemm with a constant weight to quantize ({recipe} "
            "quantizes linear layers' weights; convolutions stay as they are)"
        )
    try:
        with quiet_quantizer():
            quantizer = quantizer_class(
                model,
                bits=bits,
                block_size=block_size,
                is_symmetric=symmetric,
                accuracy_level=accuracy_level or None,
            )
            quantizer.process()
            quantized_model = quantizer.model.model
    except Exception as error:
        raise SpeedproofError(f"{recipe}: onnxruntime could not quantize {source.name}: {error}") from error
    onnx.save(quantized_model, str(destination))
    counts = Counter(node.op_type for node in quantized_model.graph.node)
    return Int4Result(matmuls=matmuls, quantized=counts[NBITS_OP], gemms_rewritten=rewritten)


def _nbits_quantizer() -> Any:
    """onnxruntime's MatMulNBitsQuantizer, imported without what its module does to logging on
    import (`logging.basicConfig(level=INFO)`, which would print every later library's INFO lines)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    return MatMulNBitsQuantizer


def _constant_weight_matmuls(graph: onnx.GraphProto) -> int:
    constants = {initializer.name for initializer in graph.initializer}
    return sum(1 for node in graph.node if node.op_type == "MatMul" and node.input[1] in constants)


def rewrite_gemms_as_matmuls(graph: onnx.GraphProto) -> int:
    """Replace each Gemm whose B is a constant (alpha = beta = 1, A not transposed) by MatMul with
    B laid out as (K, N), plus Add of C where it has one; returns how many were rewritten."""
    initializers = {initializer.name: initializer for initializer in graph.initializer}
    rewritten = 0
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        simple = attributes.get("alpha", 1.0) == 1.0 and attributes.get("beta", 1.0) == 1.0
        if node.op_type != "Gemm" or not simple or attributes.get("transA", 0) or node.input[1] not in initializers:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        if attributes.get("transB", 0):
            weight = np.ascontiguousarray(weight.T)
        weight_name = f"{node.input[1]}_as_matmul_{rewritten}"
        graph.initializer.append(numpy_helper.from_array(weight, weight_name))
        has_bias = len(node.input) > 2 and node.input[2] != ""
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(
            onnx.helper.make_node("MatMul", [node.input[0], weight_name], [product], name=f"{node.name}_matmul")
        )
        if has_bias:
            nodes.append(
                onnx.helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_bias")
            )
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
        used = {name for node in graph.node for name in node.input}
        unused = [initializer for initializer in graph.initializer if initializer.name not in used]
        for initializer in unused:
            graph.initializer.remove(initializer)
    return rewritten
