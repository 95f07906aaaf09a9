"""The facts of an artifact, the numbers people trust instead of measuring: bytes on disk, bytes
zipped (deflate), parameters, non-zero parameters, MACs at batch 1 (from the ONNX graph with shape
inference), an op histogram, sha256, and channel alignment (the share of conv/linear widths that
are multiples of 8 and of 16)."""

from __future__ import annotations

import copy
import hashlib
import math
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from exporters.onnx_file import in_dependency_order
from targets.onnx_external_data import external_data_files

HASH_CHUNK_BYTES = 1 << 20
DEFLATE_LEVEL = 6  # zlib's default, what `zip` uses
ALIGNMENTS = (8, 16)
MISALIGNED_EXAMPLES = 8
CONV_OPS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op -> index of its weight input
MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}  # op -> (A, B) inputs
# element types that hold weights; int64 and bool initializers are shapes, indices and masks
WEIGHT_TYPES = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.INT32,
}
# ops that pass a weight through unchanged in kind (dequantize, cast, transpose of an initializer)
WEIGHT_PASS_THROUGH_OPS = {"DequantizeLinear", "Cast", "Transpose", "Identity"}


@dataclass(frozen=True)
class ChannelAlignment:
    layers: int  # conv and linear layers whose output width is known
    multiple_of_8: float | None  # share of those layers
    multiple_of_16: float | None
    misaligned_examples: tuple[int, ...]  # a few widths that are not multiples of 8


@dataclass(frozen=True)
class ArtifactFacts:
    """What the record says about an artifact file."""

    path: str
    sha256: str
    bytes: int  # model file plus its external data files
    zipped_bytes: int
    params: int
    nonzero_params: int
    macs: int | None  # at batch 1; None when a conv/matmul shape could not be inferred
    macs_unresolved_nodes: int
    op_histogram: dict[str, int]
    alignment: ChannelAlignment
    # parameters per element type (float32, float16, int8, ...): a file compressed elsewhere says its precision here
    weight_dtypes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["alignment"]["misaligned_examples"] = list(self.alignment.misaligned_examples)
        return data


def file_digest_and_sizes(files: list[Path]) -> tuple[str, int, int]:
    """(sha256, bytes, deflated bytes) over the files in order, read in chunks. Deflating is the
    slow part (1.5 s for a 46 MB resnet18): it is done once per content in a process, so an
    identity copy or a candidate that is the baseline's file costs only the hash."""
    digest = hashlib.sha256()
    total_bytes = 0
    for chunk in _chunks(files):
        digest.update(chunk)
        total_bytes += len(chunk)
    sha256 = digest.hexdigest()
    zipped_bytes = _ZIPPED_BYTES.get(sha256)
    if zipped_bytes is None:
        compressor = zlib.compressobj(DEFLATE_LEVEL)
        zipped_bytes = sum(len(compressor.compress(chunk)) for chunk in _chunks(files)) + len(compressor.flush())
        if len(_ZIPPED_BYTES) >= ZIPPED_BYTES_REMEMBERED:
            _ZIPPED_BYTES.pop(next(iter(_ZIPPED_BYTES)))
        _ZIPPED_BYTES[sha256] = zipped_bytes
    return sha256, total_bytes, zipped_bytes


ZIPPED_BYTES_REMEMBERED = 256
_ZIPPED_BYTES: dict[str, int] = {}  # sha256 -> deflated bytes, oldest first


def _chunks(files: list[Path]) -> Iterator[bytes]:
    for file in files:
        with file.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK_BYTES):
                yield chunk


def _weight_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    tensors = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.type == onnx.AttributeProto.TENSOR:
                    tensors[node.output[0]] = attribute.t
    return {
        name: numpy_helper.to_array(tensor)
        for name, tensor in tensors.items()
        if tensor.data_type in WEIGHT_TYPES and len(tensor.dims) > 0
    }


def _batch_one_shapes(
    model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape with the inputs at `input_shapes` (whole shapes at batch 1, from
    --input-shape or the data), else with their symbolic leading (batch) dims set to 1; only fully
    known shapes are kept."""
    input_shapes = input_shapes or {}
    fixed = copy.deepcopy(model)
    del fixed.graph.value_info[:]  # recomputed below with the concrete batch
    initializer_names = {init.name for init in fixed.graph.initializer}
    for value in fixed.graph.input:
        if value.name in initializer_names:
            continue
        dims = value.type.tensor_type.shape.dim
        given = input_shapes.get(value.name)
        if given is not None and len(given) == len(dims):
            for dim, size in zip(dims, given, strict=True):
                dim.Clear()
                dim.dim_value = size
        elif dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    for value in fixed.graph.output:
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
    _stand_in_for_nbits_matmuls(fixed.graph)
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:
        inferred = fixed  # facts other than MACs do not need shapes
    shapes: dict[str, tuple[int, ...]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        if all(dim.HasField("dim_value") for dim in dims):
            shapes[value.name] = tuple(int(dim.dim_value) for dim in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _packed_4bit_weights(model: onnx.ModelProto) -> dict[str, int]:
    """MatMulNBits' packed weight tensors (two 4-bit weights a byte, and padding) -> the K x N
    weights they hold, counted as params (and as non-zero: packed nibbles say nothing of zeros)."""
    packed = {}
    for node in model.graph.node:
        sizes = _nbits_sizes(node)
        if sizes is not None and len(node.input) > 1:
            packed[node.input[1]] = sizes[0] * sizes[1]
    return packed


def _nbits_sizes(node: onnx.NodeProto) -> tuple[int, int] | None:
    """(K, N) of a MatMulNBits node's weight, from its attributes; None for any other node."""
    if node.op_type != "MatMulNBits":
        return None
    sizes = {attribute.name: attribute.i for attribute in node.attribute if attribute.name in ("K", "N")}
    return (sizes["K"], sizes["N"]) if len(sizes) == 2 else None


def _stand_in_for_nbits_matmuls(graph: onnx.GraphProto) -> None:
    """ONNX's shape inference does not know onnxruntime's MatMulNBits (4-bit weights), so nothing
    after one would get a shape: for shapes only, each becomes a MatMul with a (K, N) weight that
    is declared, not stored. MACs then count it as the MatMul it computes."""
    for node in graph.node:
        sizes = _nbits_sizes(node)
        if sizes is None or node.domain != "com.microsoft":
            continue
        weight = f"{node.output[0]}_nbits_weight_shape"
        graph.input.append(onnx.helper.make_tensor_value_info(weight, onnx.TensorProto.FLOAT, list(sizes)))
        first = node.input[0]
        del node.attribute[:]
        del node.input[:]
        node.input.extend([first, weight])  # a bias, where it has one, does not change the shape
        node.op_type, node.domain = "MatMul", ""


def _count_macs(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> tuple[int, int, list[int]]:
    """(MACs, nodes whose shapes were unknown, output widths of weight-bearing conv/linear layers)."""
    producers = {output: node for node in model.graph.node for output in node.output}
    constants = {init.name for init in model.graph.initializer} | {
        node.output[0] for node in model.graph.node if node.op_type == "Constant"
    }

    def is_weight(name: str) -> bool:
        while name not in constants:
            producer = producers.get(name)
            if producer is None or producer.op_type not in WEIGHT_PASS_THROUGH_OPS:
                return False
            name = producer.input[0]
        return True

    macs = unresolved = 0
    widths: list[int] = []
    for node in model.graph.node:
        output = shapes.get(node.output[0]) if node.output else None
        if node.op_type in CONV_OPS:
            weight = shapes.get(node.input[CONV_OPS[node.op_type]])
            if output is None or weight is None:
                unresolved += 1
                continue
            macs += math.prod(output) * math.prod(weight[1:])
            widths.append(weight[0])
        elif node.op_type == "Gemm":
            first = shapes.get(node.input[0])
            if output is None or first is None:
                unresolved += 1
                continue
            transposed = any(a.name == "transA" and a.i for a in node.attribute)
            macs += math.prod(output) * first[0 if transposed else 1]
            widths.append(output[-1])
        elif (sizes := _nbits_sizes(node)) is not None:  # 4-bit weights of (K, N), given as attributes
            first = shapes.get(node.input[0])
            if output is None or first is None:
                unresolved += 1
                continue
            macs += math.prod(output) * first[-1]
            widths.append(sizes[1])
        elif node.op_type in MATMUL_OPS:
            a_index, b_index = MATMUL_OPS[node.op_type]
            first = shapes.get(node.input[a_index])
            if output is None or first is None:
                unresolved += 1
                continue
            macs += math.prod(output) * first[-1]
            second = shapes.get(node.input[b_index])
            if second is not None and len(second) == 2 and is_weight(node.input[b_index]):
                widths.append(second[-1])
    return macs, unresolved, widths


def alignment_of(widths: list[int]) -> ChannelAlignment:
    if not widths:
        return ChannelAlignment(0, None, None, ())
    shares = [sum(width % alignment == 0 for width in widths) / len(widths) for alignment in ALIGNMENTS]
    misaligned = tuple(dict.fromkeys(width for width in widths if width % 8))[:MISALIGNED_EXAMPLES]
    return ChannelAlignment(len(widths), shares[0], shares[1], misaligned)


def artifact_facts(
    path: Path, model: onnx.ModelProto | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None
) -> ArtifactFacts:
    """All facts of the ONNX file at `path` (external data included); `input_shapes` resolves the
    symbolic dims of the inputs for MACs."""
    graph_only = model if model is not None else onnx.load(str(path), load_external_data=False)
    files = [path.resolve(), *external_data_files(graph_only, path)]
    sha256, total_bytes, zipped_bytes = file_digest_and_sizes(files)
    full = onnx.load(str(path)) if files[1:] else graph_only
    weights = _weight_tensors(full)
    packed = _packed_4bit_weights(full)
    ordered = in_dependency_order(full)  # shape inference reads the nodes in order
    shapes = _batch_one_shapes(ordered, input_shapes)
    macs, unresolved, widths = _count_macs(ordered, shapes)
    histogram = Counter(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}" for node in full.graph.node
    )
    return ArtifactFacts(
        path=str(path.resolve()),
        sha256=sha256,
        bytes=total_bytes,
        zipped_bytes=zipped_bytes,
        params=int(sum(packed.get(name, array.size) for name, array in weights.items())),
        nonzero_params=int(sum(packed.get(name, np.count_nonzero(array)) for name, array in weights.items())),
        macs=None if unresolved else macs,
        macs_unresolved_nodes=unresolved,
        op_histogram=dict(histogram.most_common()),
        alignment=alignment_of(widths),
        weight_dtypes=_weight_dtypes(full),
    )


def _weight_dtypes(model: onnx.ModelProto) -> dict[str, int]:
    """Elements of the initializers (and Constant nodes' values) per element type, largest first."""
    counts: Counter[str] = Counter()
    tensors = [*model.graph.initializer]
    tensors += [attribute.t for node in model.graph.node if node.op_type == "Constant" for attribute in node.attribute]
    for tensor in tensors:
        if len(tensor.dims) > 0:
            name = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).name if tensor.data_type else "undefined"
            counts[name] += int(np.prod(tensor.dims, dtype=np.int64))
    return dict(counts.most_common())
