"""MACs of an ONNX graph at batch 1: every tensor's shape (ONNX's shape inference with data
propagation, and ONNX Runtime's symbolic shape inference, which resolves what the first leaves
open — Reshape targets computed in the graph, attention blocks, LSTMs), then the multiply-adds of
each conv, Gemm, MatMul, 4-bit MatMul and recurrent layer (LSTM, GRU, RNN: both weight
matrices at every step), inside `If`, `Loop` and `Scan` bodies too: an `If` counts
its larger branch, a `Loop` its body times a constant trip count (once otherwise), a `Scan` its body
times the scanned length. What cannot be counted is named with the reason, never just "-"."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

CONV_OPS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op -> index of its weight input
MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}  # op -> (A, B) inputs
# recurrent ops: W [directions, gates x hidden, input] and R [directions, gates x hidden, hidden] per step
RECURRENT_OPS = ("LSTM", "GRU", "RNN")
# ops that pass a weight through unchanged in kind (dequantize, cast, transpose of an initializer)
WEIGHT_PASS_THROUGH_OPS = {"DequantizeLinear", "Cast", "Transpose", "Identity"}
# how many unresolved nodes a record names (the count says how many there are)
NAMED_UNRESOLVED = 5
# graphs larger than this are not handed to ONNX Runtime for folding (it copies them)
FOLDING_MAX_BYTES = 512 * 2**20

Shapes = dict[str, tuple[int, ...]]


@dataclass
class MacCount:
    macs: int = 0
    unresolved: list[str] = field(default_factory=list)  # "MatMul 'name': why"
    widths: list[int] = field(default_factory=list)  # output widths of weight-bearing conv/linear layers
    notes: list[str] = field(default_factory=list)  # how control flow was counted

    def add(self, other: MacCount, times: int = 1) -> None:
        self.macs += other.macs * times
        self.unresolved += other.unresolved
        self.widths += other.widths
        self.notes += other.notes


def batch_one_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None) -> Shapes:
    """Every tensor's fully known shape (subgraphs' included) from ONNX's shape inference, with the
    inputs at `input_shapes` (whole shapes at batch 1, from --input-shape or the data), else with
    their symbolic leading (batch) dims set to 1."""
    try:
        return _known_shapes(
            onnx.shape_inference.infer_shapes(_fixed_inputs(model, input_shapes or {}), data_prop=True).graph
        )
    except Exception:
        return {}  # facts other than MACs do not need shapes


def _with_symbolic_shapes(fixed: onnx.ModelProto, shapes: Shapes) -> Shapes:
    """`shapes` completed by ONNX Runtime's symbolic shape inference on `fixed` (the inputs fixed)."""
    shapes = dict(shapes)
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(copy.deepcopy(fixed), auto_merge=True, guess_output_rank=True)
        if inferred is not None:
            for name, shape in _known_shapes(inferred.graph).items():
                shapes.setdefault(name, shape)
    except Exception:
        pass  # an op it does not know: ONNX's shapes stand
    return shapes


def count_macs(model: onnx.ModelProto, shapes: Shapes) -> MacCount:
    """The MACs of `model`'s graph (see the module)."""
    constants = _constant_values(model.graph)
    return _graph_macs(model.graph, shapes, constants, {})


def model_macs(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None) -> MacCount:
    """The MACs of `model` at batch 1. When shape inference leaves nodes unknown although every input
    dim is fixed (shapes computed in the graph: Shape, Gather, Mod, Concat into a Reshape, as torch
    exports attention), ONNX Runtime's basic graph optimizations fold those computations into
    constants and the count is taken on the folded graph (the same nodes' work, nothing fused)."""
    shapes = batch_one_shapes(model, input_shapes)
    counted = count_macs(model, shapes)
    if not counted.unresolved:
        return counted  # the common case: ONNX's inference resolved every counted node
    fixed = _fixed_inputs(model, input_shapes or {})
    again = count_macs(model, _with_symbolic_shapes(fixed, shapes))
    if len(again.unresolved) < len(counted.unresolved):
        counted = again
    if not counted.unresolved:
        return counted
    folded = _shapes_folded(fixed)
    if folded is None:
        return counted
    again = count_macs(folded, batch_one_shapes(folded, input_shapes))
    return again if len(again.unresolved) < len(counted.unresolved) else counted


def _shapes_folded(fixed: onnx.ModelProto) -> onnx.ModelProto | None:
    """`fixed` (every input dim known) after ONNX Runtime's basic optimizations (constant folding
    of its shape computations), or None when an input dim is symbolic or ONNX Runtime cannot load it."""
    for value in fixed.graph.input:
        if not all(dim.HasField("dim_value") for dim in value.type.tensor_type.shape.dim):
            return None
    if fixed.ByteSize() > FOLDING_MAX_BYTES:
        return None
    import tempfile
    from pathlib import Path

    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="speedproof-shapes-") as folder:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(Path(folder) / "folded.onnx")
            options.log_severity_level = 3
            ort.InferenceSession(fixed.SerializeToString(), options, providers=["CPUExecutionProvider"])
            return onnx.load(options.optimized_model_filepath)
    except Exception:
        return None


def _fixed_inputs(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    fixed = copy.deepcopy(model)
    del fixed.graph.value_info[:]  # recomputed with the concrete batch
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
    return fixed


def _known_shapes(graph: onnx.GraphProto) -> Shapes:
    shapes: Shapes = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        if all(dim.HasField("dim_value") for dim in dims):
            shapes[value.name] = tuple(int(dim.dim_value) for dim in dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    for subgraph in _subgraphs(graph.node):
        for name, shape in _known_shapes(subgraph).items():
            shapes.setdefault(name, shape)
    return shapes


def _subgraphs(nodes: Iterable[onnx.NodeProto]) -> Iterable[onnx.GraphProto]:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield attribute.g
            yield from attribute.graphs


def nbits_sizes(node: onnx.NodeProto) -> tuple[int, int] | None:
    """(K, N) of onnxruntime's MatMulNBits, from its attributes."""
    if node.op_type != "MatMulNBits":
        return None
    attributes = {attribute.name: attribute.i for attribute in node.attribute}
    return (attributes["K"], attributes["N"]) if "K" in attributes and "N" in attributes else None


def _stand_in_for_nbits_matmuls(graph: onnx.GraphProto) -> None:
    """ONNX's shape inference does not know onnxruntime's MatMulNBits (4-bit weights), so nothing
    after one would get a shape: give each a standard MatMul by a (K, N) stand-in weight for the
    inference only (the MACs come from the real node's attributes)."""
    for node in graph.node:
        sizes = nbits_sizes(node)
        if sizes is None:
            continue
        stand_in = f"{node.output[0]}::stand_in_weight"
        graph.initializer.append(numpy_helper.from_array(np.zeros(sizes, np.float32), stand_in))
        node.op_type, node.domain = "MatMul", ""
        del node.input[1:]
        node.input.append(stand_in)
        del node.attribute[:]


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer if len(init.dims) <= 1}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value" and len(attribute.t.dims) <= 1:
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _name(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or (node.output[0] if node.output else '?')!r}"


def _graph_macs(
    graph: onnx.GraphProto, shapes: Shapes, constants: dict[str, np.ndarray], outer_producers: dict[str, onnx.NodeProto]
) -> MacCount:
    producers = {**outer_producers, **{output: node for node in graph.node for output in node.output}}
    weights = {init.name for init in graph.initializer} | {
        node.output[0] for node in graph.node if node.op_type == "Constant" and node.output
    }

    def is_weight(name: str) -> bool:
        while name not in weights:
            producer = producers.get(name)
            if producer is None or producer.op_type not in WEIGHT_PASS_THROUGH_OPS:
                return False
            name = producer.input[0]
        return True

    def unknown(node: onnx.NodeProto, name: str) -> str:
        return f"{_name(node)}: the shape of {name!r} could not be inferred"

    count = MacCount()
    for node in graph.node:
        output = shapes.get(node.output[0]) if node.output else None
        if node.op_type == "If":
            count.add(_if_macs(node, shapes, constants, producers))
        elif node.op_type in ("Loop", "Scan"):
            count.add(_loop_macs(node, shapes, constants, producers))
        elif node.op_type in RECURRENT_OPS:  # LSTM, GRU, RNN: input and recurrent weights, every step
            x, w, r = (shapes.get(name) for name in node.input[:3])
            if x is None or w is None or r is None:
                missing = next(name for name, shape in zip(node.input[:3], (x, w, r), strict=True) if shape is None)
                count.unresolved.append(unknown(node, missing))
                continue
            batch_first = any(a.name == "layout" and a.i == 1 for a in node.attribute)
            steps, batch = (x[1], x[0]) if batch_first else (x[0], x[1])
            count.macs += steps * batch * (math.prod(w) + math.prod(r))
        elif node.op_type in CONV_OPS:
            weight = shapes.get(node.input[CONV_OPS[node.op_type]])
            if output is None or weight is None:
                count.unresolved.append(unknown(node, node.output[0] if output is None else node.input[1]))
                continue
            count.macs += math.prod(output) * math.prod(weight[1:])
            count.widths.append(weight[0])
        elif node.op_type == "Gemm":
            first = shapes.get(node.input[0])
            if output is None or first is None:
                count.unresolved.append(unknown(node, node.output[0] if output is None else node.input[0]))
                continue
            transposed = any(a.name == "transA" and a.i for a in node.attribute)
            count.macs += math.prod(output) * first[0 if transposed else 1]
            count.widths.append(output[-1])
        elif (sizes := nbits_sizes(node)) is not None:  # 4-bit weights of (K, N), given as attributes
            first = shapes.get(node.input[0])
            if output is None or first is None:
                count.unresolved.append(unknown(node, node.output[0] if output is None else node.input[0]))
                continue
            count.macs += math.prod(output) * first[-1]
            count.widths.append(sizes[1])
        elif node.op_type in MATMUL_OPS:
            a_index, b_index = MATMUL_OPS[node.op_type]
            first = shapes.get(node.input[a_index])
            if output is None or first is None:
                count.unresolved.append(unknown(node, node.output[0] if output is None else node.input[a_index]))
                continue
            count.macs += math.prod(output) * first[-1]
            second = shapes.get(node.input[b_index])
            if second is not None and len(second) == 2 and is_weight(node.input[b_index]):
                count.widths.append(second[-1])
    return count


def _if_macs(
    node: onnx.NodeProto, shapes: Shapes, constants: dict[str, np.ndarray], producers: dict[str, onnx.NodeProto]
) -> MacCount:
    """An `If`: its larger branch (which one runs depends on the data), said in a note."""
    branches = {
        attribute.name.removesuffix("_branch"): _graph_macs(attribute.g, shapes, constants, producers)
        for attribute in node.attribute
        if attribute.type == onnx.AttributeProto.GRAPH
    }
    if not branches:
        return MacCount()
    larger = max(branches, key=lambda name: branches[name].macs)
    counted = branches[larger]
    for name, branch in branches.items():
        if name != larger:
            counted.unresolved += branch.unresolved
    if any(branch.macs for branch in branches.values()):
        parts = ", ".join(f"{name} {branch.macs:,}" for name, branch in branches.items())
        counted.notes.append(f"{_name(node)}: branches of {parts} MACs; counted the {larger} branch, the larger")
    return counted


def _loop_macs(
    node: onnx.NodeProto, shapes: Shapes, constants: dict[str, np.ndarray], producers: dict[str, onnx.NodeProto]
) -> MacCount:
    """A `Loop`'s body times its trip count when that is a constant; a `Scan`'s times the length
    of its first scanned input."""
    body = next((attribute.g for attribute in node.attribute if attribute.name == "body"), None)
    if body is None:
        return MacCount()
    once = _graph_macs(body, shapes, constants, producers)
    total = MacCount()
    if node.op_type == "Loop":
        trips = constants.get(node.input[0]) if node.input and node.input[0] else None
        times = int(trips.reshape(-1)[0]) if trips is not None and trips.size == 1 else None
    else:
        scanned = shapes.get(node.input[-1]) if node.input else None
        times = scanned[0] if scanned else None
    if once.macs:
        if times is None:
            once.notes.append(
                f"{_name(node)}: {once.macs:,} MACs a step; the step count is not a constant: counted once"
            )
        else:
            once.notes.append(f"{_name(node)}: {once.macs:,} MACs a step x {times} steps")
    total.add(once, times if times is not None and times >= 0 else 1)
    return total
