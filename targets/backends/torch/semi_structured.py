"""2:4 semi-structured sparsity in the torch backend: which layers of a program carry the 2:4 pattern
(2 of every 4 consecutive input weights zero, as the `semi-structured` recipe leaves them), which of
those torch can run on its sparse kernels, and the conversion itself
(`torch.sparse.to_sparse_semi_structured`, cuSPARSELt or CUTLASS).

Torch runs 2:4 only for linear layers (2-D weights), on CUDA, in float16/bfloat16/int8, with both
weight dimensions multiples of the kernel's block: everything else stays dense, and the report says
which layer and why. A program without the pattern (a dense baseline) is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from targets.backends.two_four import zeros_have_two_four_pattern

# layers this small (output x input features) are where 2:4 kernels measured no gain over dense
# (torch's cuSPARSELt fp16 linear: 0.17x-1.04x of dense on an H100 for layers up to 4096 wide)
SMALL_GEMM_ELEMENTS = 4096 * 4096
LISTED_LAYERS = 20  # the record lists this many layers; the counts cover them all


@dataclass
class SparseLayer:
    name: str
    shape: tuple[int, ...]
    sparse: bool
    reason: str | None = None  # why it stayed dense

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "sparse": self.sparse, "reason": self.reason}


@dataclass
class SemiStructuredReport:
    """2:4 layers found in the program (`requested`) and those that really run sparse."""

    layers: list[SparseLayer] = field(default_factory=list)
    kernel: str | None = None  # cusparselt or cutlass, when any layer became sparse

    @property
    def requested(self) -> int:
        return len(self.layers)

    @property
    def sparse(self) -> int:
        return sum(1 for layer in self.layers if layer.sparse)

    @property
    def small_sparse(self) -> int:
        """Sparse layers too small for 2:4 kernels to beat dense ones."""
        return sum(1 for layer in self.layers if layer.sparse and _elements(layer.shape) < SMALL_GEMM_ELEMENTS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested_layers": self.requested,
            "sparse_layers": self.sparse,
            "small_sparse_layers": self.small_sparse,
            "kernel": self.kernel,
            "layers": [layer.as_dict() for layer in self.layers[:LISTED_LAYERS]],
        }


def _elements(shape: tuple[int, ...]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def has_two_four_pattern(weight: Any) -> bool:
    """Whether every 4 consecutive input weights (dim 1) of a torch weight hold at least 2 zeros."""
    return zeros_have_two_four_pattern(weight.detach().eq(0).cpu().numpy(), axis=1)


def weights_by_operator(module: Any) -> list[tuple[str, str]]:
    """(weight attribute, "linear" | "conv") for every linear/conv node of a program's graph whose
    weight is a module attribute."""
    import torch

    kinds = {torch.ops.aten.linear.default: "linear"}
    for name in ("conv1d", "conv2d", "conv3d", "convolution"):
        overload = getattr(getattr(torch.ops.aten, name), "default", None)
        if overload is not None:
            kinds[overload] = "conv"
    found: dict[str, str] = {}
    for node in module.graph.nodes:
        if node.op != "call_function" or node.target not in kinds or len(node.args) < 2:
            continue
        weight = node.args[1]
        if getattr(weight, "op", None) == "get_attr":
            found.setdefault(str(weight.target), kinds[node.target])
    return list(found.items())


def kernel_constraints() -> tuple[str, dict[str, tuple[int, int]]]:
    """The kernel torch will use for 2:4 and its (rows, cols) block per dtype name."""
    import torch
    from torch.sparse import SparseSemiStructuredTensor, SparseSemiStructuredTensorCUSPARSELT

    if SparseSemiStructuredTensor._FORCE_CUTLASS or not torch.backends.cusparselt.is_available():
        kernel_class: Any = torch.sparse.SparseSemiStructuredTensorCUTLASS
    else:
        kernel_class = SparseSemiStructuredTensorCUSPARSELT
    blocks = {
        str(dtype).removeprefix("torch."): (config.sparse_min_rows, config.sparse_min_cols)
        for dtype, config in kernel_class._DTYPE_SHAPE_CONSTRAINTS.items()
    }
    return str(kernel_class.BACKEND), blocks


def dense_reason(
    kind: str, shape: tuple[int, ...], dtype: str, device: str, kernel: str, blocks: dict[str, tuple[int, int]]
) -> str | None:
    """Why a layer with the 2:4 pattern cannot run on torch's 2:4 kernels; None when it can."""
    if kind != "linear":
        return "torch has 2:4 kernels for linear layers only; convolutions run dense"
    if device != "cuda":
        return "torch's 2:4 kernels run on CUDA only"
    if dtype not in blocks:
        return f"{kernel} has no 2:4 kernel for {dtype} (it has {', '.join(sorted(blocks))}); use dtype = float16"
    rows, cols = blocks[dtype]
    out_features, in_features = shape[0], shape[1]
    if out_features % rows or in_features % cols:
        return f"weight {out_features}x{in_features} is not a multiple of {kernel}'s {rows}x{cols} block"
    return None


def sparsify(module: Any, device: str, dtype: str) -> SemiStructuredReport:
    """Replace every eligible 2:4 linear weight of `module` (already on `device`, in `dtype`) by its
    semi-structured sparse form; report every 2:4 layer and what became of it."""
    import torch

    report = SemiStructuredReport()
    candidates = []
    for name, kind in weights_by_operator(module):
        try:
            weight = module.get_parameter(name)
        except AttributeError:
            try:
                weight = module.get_buffer(name)
            except AttributeError:
                continue
        if has_two_four_pattern(weight):
            candidates.append((name, kind, weight))
    if not candidates:
        return report
    kernel, blocks = kernel_constraints() if device == "cuda" else ("none", {})
    for name, kind, weight in candidates:
        shape = tuple(int(dim) for dim in weight.shape)
        reason = dense_reason(kind, shape, dtype, device, kernel, blocks)
        if reason is None:
            try:
                sparse = torch.sparse.to_sparse_semi_structured(weight.detach().contiguous())
                owner_name, _, leaf = name.rpartition(".")
                owner = module.get_submodule(owner_name) if owner_name else module
                setattr(owner, leaf, torch.nn.Parameter(sparse, requires_grad=False))
                report.kernel = kernel
            except (RuntimeError, ValueError, TypeError) as error:
                reason = f"to_sparse_semi_structured refused it: {str(error).splitlines()[0]}"
        report.layers.append(SparseLayer(name, shape, sparse=reason is None, reason=reason))
    return report


def two_four_hints(facts: dict[str, Any] | None) -> list[str]:
    """What a record's `semi_structured` facts say about 2:4 not paying: requested but dense, used in only
    some layers, or used only on GEMMs too small to gain."""
    if not facts or not facts.get("requested_layers"):
        return []
    requested, sparse = int(facts["requested_layers"]), int(facts.get("sparse_layers") or 0)
    reasons = sorted({str(layer["reason"]) for layer in facts.get("layers") or [] if layer.get("reason")})
    why = f" ({'; '.join(reasons[:2])})" if reasons else ""
    if sparse == 0:
        return [
            f"2:4 requested but not used by the runtime: none of the {requested} layers with the 2:4 pattern runs "
            f"on sparse kernels{why}, so the zeros are multiplied like any other weight"
        ]
    hints = []
    if sparse < requested:
        hints.append(f"2:4 used in {sparse} of {requested} layers with the pattern; the others run dense{why}")
    small = int(facts.get("small_sparse_layers") or 0)
    if small == sparse:
        hints.append(
            f"GEMMs too small for 2:4 to pay: all {sparse} sparse layers are smaller than 4096x4096, where 2:4 "
            "kernels measured no faster than dense ones; 2:4 pays on large linear layers and batches"
        )
    return hints
