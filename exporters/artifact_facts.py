"""The facts of an artifact, the numbers people trust instead of measuring: bytes on disk, bytes
zipped (deflate), parameters, non-zero parameters, MACs at batch 1 (from the ONNX graph with shape
inference), an op histogram, sha256, and channel alignment (the share of conv/linear widths that
are multiples of 8 and of 16)."""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from exporters.mac_count import NAMED_UNRESOLVED, MacCount, model_macs, nbits_sizes
from exporters.onnx_file import in_dependency_order
from targets.onnx_external_data import external_data_files

HASH_CHUNK_BYTES = 1 << 20
DEFLATE_LEVEL = 6  # zlib's default, what `zip` uses
ALIGNMENTS = (8, 16)
MISALIGNED_EXAMPLES = 8
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
    # what was not counted and why, and how control flow (If, Loop, Scan) was counted
    macs_notes: list[str] = field(default_factory=list)

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


def _packed_4bit_weights(model: onnx.ModelProto) -> dict[str, int]:
    """MatMulNBits' packed weight tensors (two 4-bit weights a byte, and padding) -> the K x N
    weights they hold, counted as params (and as non-zero: packed nibbles say nothing of zeros)."""
    packed = {}
    for node in model.graph.node:
        sizes = nbits_sizes(node)
        if sizes is not None and len(node.input) > 1:
            packed[node.input[1]] = sizes[0] * sizes[1]
    return packed


def macs_notes(counted: MacCount) -> list[str]:
    """The record's words on the MACs: how control flow was counted, and the nodes (a few, and how
    many) whose shapes stayed unknown, so MACs are "-"."""
    notes = list(counted.notes)
    if counted.unresolved:
        more = len(counted.unresolved) - NAMED_UNRESOLVED
        notes.append(
            f"MACs unknown: {len(counted.unresolved)} node(s) without shapes: "
            + "; ".join(counted.unresolved[:NAMED_UNRESOLVED])
            + (f"; and {more} more" if more > 0 else "")
            + " (a symbolic dim other than the batch: fix it with --input-shape or --data)"
        )
    return notes


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
    counted = model_macs(ordered, input_shapes)
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
        macs=None if counted.unresolved else counted.macs,
        macs_unresolved_nodes=len(counted.unresolved),
        op_histogram=dict(histogram.most_common()),
        alignment=alignment_of(counted.widths),
        weight_dtypes=_weight_dtypes(full),
        macs_notes=macs_notes(counted),
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
