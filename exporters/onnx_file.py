"""Check an ONNX file before anything runs it, and read its declared inputs.

Refuses a missing, non-ONNX or truncated file, and external data that points outside the
model's own folder (a path-traversal risk in files from elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import helper

from targets.errors import InputError
from targets.files_in import checked_input
from targets.inputs import DEFAULT_INT_HIGH, ModelInput
from targets.onnx_external_data import external_data_files

PROTOBUF_LIMIT_BYTES = 2**31 - 1


def load_onnx_model(path: Path) -> onnx.ModelProto:
    """Parse and check an ONNX file (external data left on disk); errors name the file."""
    size_bytes = checked_input(path, "model").st_size
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"model {str(path)!r}: its path is not UTF-8, and ONNX and ONNX Runtime take UTF-8 paths only; rename "
            "the file (or its folder)"
        ) from None
    if size_bytes > PROTOBUF_LIMIT_BYTES:
        # protobuf cannot parse a message this large: refuse before reading gigabytes into memory
        raise InputError(
            f"{path} is {size_bytes / 2**30:.1f} GiB, past protobuf's 2 GiB limit for one ONNX file; a model this "
            "large keeps its weights as external data (onnx.save_model(..., save_as_external_data=True))"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError and friends
        raise InputError(f"{path} is not a readable ONNX model (truncated, or not ONNX at all): {error}") from None
    if not model.graph.node or not model.graph.output:
        raise InputError(
            f"{path} parsed as ONNX but has no nodes or no outputs: the file is truncated or not an ONNX model"
        )
    external_data_files(model, path)
    try:
        # path-based check: it also reads external data and works past 2 GB
        onnx.checker.check_model(str(path))
    except Exception as error:
        if not _valid_once_sorted(model, path, error):
            raise InputError(f"{path} is not a valid ONNX model: {error}") from None
    return model


def _valid_once_sorted(model: onnx.ModelProto, path: Path, error: Exception) -> bool:
    """Whether the checker's only complaint is the order of the nodes: ONNX Runtime's own float16
    converter writes its input casts after their users, and ONNX Runtime sorts a graph itself when it
    loads it, so such a file (a user's candidate, say) runs as it is and is measured as it is."""
    if "topologically sorted" not in str(error) or external_data_files(model, path):
        return False
    ordered = _topologically_sorted(model)
    if ordered is None:
        return False  # a cycle, or an input nothing produces
    try:
        onnx.checker.check_model(ordered)
    except Exception:
        return False
    return True


def in_dependency_order(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` itself when its nodes are in dependency order, else a sorted copy (for shape
    inference, which reads the nodes in order); unsortable graphs come back as they are."""
    available = {value.name for value in model.graph.input} | {init.name for init in model.graph.initializer} | {""}
    for node in model.graph.node:
        if not all(name in available for name in node_reads(node)):
            return _topologically_sorted(model) or model
        available.update(node.output)
    return model


def node_reads(node: onnx.NodeProto) -> set[str]:
    """Every value a node reads: its inputs, and what the graphs of its attributes (an `If`'s
    branches, a `Loop`'s or `Scan`'s body, at any depth) read from outside themselves — the node
    must come after the producers of both."""
    reads = set(node.input)
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for graph in graphs:
            reads |= _outer_reads(graph)
    return reads


def _outer_reads(graph: onnx.GraphProto) -> set[str]:
    """The values a subgraph reads that it neither takes as inputs nor makes itself."""
    own = {value.name for value in graph.input} | {init.name for init in graph.initializer}
    own |= {init.values.name for init in graph.sparse_initializer}
    reads: set[str] = set()
    for node in graph.node:
        reads |= node_reads(node)
        own.update(node.output)
    reads |= {value.name for value in graph.output}
    return reads - own


def _topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy of `model` with its top-level nodes in dependency order (Kahn's algorithm), or None.
    A node with subgraphs depends on what they read from the main graph too (`node_reads`)."""
    available = {value.name for value in model.graph.input} | {init.name for init in model.graph.initializer}
    available.add("")  # an omitted optional input
    pending = list(model.graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [node for node in pending if all(name in available for name in node_reads(node))]
        if not ready:
            return None
        for node in ready:
            available.update(node.output)
        ordered.extend(ready)
        done = {id(node) for node in ready}
        pending = [node for node in pending if id(node) not in done]
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.node[:]
    copy.graph.node.extend(ordered)
    return copy


def _embedding_sizes(model: onnx.ModelProto) -> dict[str, int]:
    """For inputs used as Gather indices into an initializer (an embedding table): its row count."""
    initializer_shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    sizes: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type != "Gather" or len(node.input) < 2:
            continue
        table, indices = node.input[0], node.input[1]
        if table not in initializer_shapes:
            continue
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        rows = initializer_shapes[table][axis]
        sizes[indices] = min(rows, sizes.get(indices, rows))
    return sizes


def read_model_inputs(model: onnx.ModelProto) -> list[ModelInput]:
    """The graph's real inputs (not initializers), with dims as declared."""
    initializer_names = {init.name for init in model.graph.initializer}
    embedding_rows = _embedding_sizes(model)
    inputs = []
    for value in model.graph.input:
        if value.name in initializer_names:
            continue
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise InputError(f"input {value.name!r} is not a tensor; speedproof measures tensor inputs only")
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        dims: list[int | str | None] = []
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(int(dim.dim_value))
            else:
                dims.append(dim.dim_param or None)
        inputs.append(
            ModelInput(
                name=value.name,
                dtype=dtype,
                dims=tuple(dims),
                int_high=embedding_rows.get(value.name, DEFAULT_INT_HIGH),
            )
        )
    return inputs
