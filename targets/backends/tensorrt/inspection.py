"""Which kernels a TensorRT engine really runs: read from the engine inspector's JSON (built with
detailed profiling verbosity) and the builder's own sparsity messages, and turned into the facts
the record keeps and the hints a verdict gives.

- Per layer: name, type, the precision it computes in (from its first input's format, as NVIDIA's
  trt-engine-explorer reads it; a layer with no inputs has none), the chosen tactic, and whether that
  tactic is a sparse kernel (its name says `sparse`).
- 2:4: the layers whose weights carry the pattern are eligible (the builder says which in its log
  "Layers eligible for sparse math"; without the log, the count comes from the ONNX weights), and the
  layers it picked sparse kernels for ("picks sparse implementation for layers", else tactic names).
- int8: requested when the ONNX carries Q/DQ nodes (explicit quantization); the compute layers
  (convolutions, GEMMs, matrix multiplies) that still run in FP16/FP32 are named.

Everything here is plain parsing, tested everywhere on stored inspector JSON; only
`targets.backends.tensorrt.runner` needs TensorRT and a GPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# layers whose precision decides speed (what quantization and 2:4 are for)
COMPUTE_LAYER_TYPES = ("Convolution", "Deconvolution", "FullyConnected", "MatrixMultiply", "Gemm")
PRECISION_TOKENS = (  # substring of a tensor's "Format/Datatype" -> precision (first match wins)
    ("int8", "int8"),
    ("fp8", "fp8"),
    ("bf16", "bf16"),
    ("fp16", "fp16"),
    ("half", "fp16"),
    ("fp32", "fp32"),
    ("float", "fp32"),
    ("int32", "int32"),
)
ELIGIBLE_LOG = re.compile(r"Layers eligible for sparse math:\s*(.*)$")
PICKED_LOG = re.compile(r"picks sparse implementation for layers:\s*(.*)$")
SHOWN_LAYERS = 5  # layer names a hint lists before "..."


@dataclass(frozen=True)
class EngineLayer:
    name: str
    type: str
    precision: str | None
    tactic: str | None
    sparse_kernel: bool

    @property
    def computes(self) -> bool:
        return any(kind.lower() in self.type.lower() for kind in COMPUTE_LAYER_TYPES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "precision": self.precision,
            "tactic": self.tactic,
            "sparse_kernel": self.sparse_kernel,
        }


@dataclass(frozen=True)
class SparsityLog:
    """What the builder said about 2:4 (None: it said nothing, e.g. an engine loaded from the cache
    whose build facts were lost, or sparse weights not enabled)."""

    eligible: tuple[str, ...] | None = None
    picked: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "eligible": None if self.eligible is None else list(self.eligible),
            "picked": None if self.picked is None else list(self.picked),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SparsityLog:
        data = data or {}
        eligible, picked = data.get("eligible"), data.get("picked")
        return cls(
            None if eligible is None else tuple(eligible),
            None if picked is None else tuple(picked),
        )


def sparsity_from_log(lines: Iterable[str]) -> SparsityLog:
    """The builder's "(Sparsity)" messages: which layers were eligible, which got sparse kernels."""
    eligible: tuple[str, ...] | None = None
    picked: tuple[str, ...] | None = None
    for line in lines:
        if match := ELIGIBLE_LOG.search(line):
            eligible = _layer_list(match.group(1))
        elif match := PICKED_LOG.search(line):
            picked = _layer_list(match.group(1))
    return SparsityLog(eligible, picked)


def _layer_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def tensor_precision(format_text: str | None) -> str | None:
    """The precision in a "Format/Datatype" string ("Channel major FP16 format where channel % 8 == 0")."""
    if not format_text:
        return None
    lowered = format_text.lower()
    for token, precision in PRECISION_TOKENS:
        if token in lowered:
            return precision
    return None


def parse_layers(information: Mapping[str, Any]) -> list[EngineLayer]:
    """The layers of an inspector JSON (`get_engine_information(LayerInformationFormat.JSON)`)."""
    layers = []
    for raw in information.get("Layers", []):
        if not isinstance(raw, dict):  # an inspector without detailed verbosity lists bare names
            layers.append(EngineLayer(str(raw), "unknown", None, None, False))
            continue
        inputs = raw.get("Inputs") or []
        tactic = raw.get("TacticName") or None
        layers.append(
            EngineLayer(
                name=str(raw.get("Name", "?")),
                type=str(raw.get("ParameterType") or raw.get("LayerType") or "unknown"),
                precision=tensor_precision(inputs[0].get("Format/Datatype")) if inputs else None,
                tactic=tactic,
                sparse_kernel=bool(tactic and "sparse" in tactic.lower()),
            )
        )
    return layers


@dataclass(frozen=True)
class KernelReport:
    """What an engine runs, for the record (`runtime.tensorrt`) and the verdict's hints."""

    layers: tuple[EngineLayer, ...]
    int8_requested: bool = False  # the ONNX has Q/DQ nodes
    sparsity_requested: bool = False  # sparse weights were enabled for an artifact with 2:4 weights
    eligible_from_weights: int = 0  # layers whose ONNX weights carry 2:4 (when the builder did not say)
    sparsity_log: SparsityLog = field(default_factory=SparsityLog)
    detailed: bool = True  # whether the inspector gave per-layer details

    @property
    def compute_layers(self) -> list[EngineLayer]:
        return [layer for layer in self.layers if layer.computes]

    def sparse_layers(self) -> list[str]:
        if self.sparsity_log.picked is not None:
            return list(self.sparsity_log.picked)
        return [layer.name for layer in self.layers if layer.sparse_kernel]

    def eligible_count(self) -> int:
        if self.sparsity_log.eligible is not None:
            return len(self.sparsity_log.eligible)
        return self.eligible_from_weights

    def float_compute_layers(self) -> list[EngineLayer]:
        """Compute layers that run in a float precision (what int8 was meant to replace)."""
        return [layer for layer in self.compute_layers if layer.precision in ("fp16", "fp32", "bf16")]

    def precision_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for layer in self.compute_layers:
            key = layer.precision or "unknown"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        compute = self.compute_layers
        return {
            "layers": [layer.as_dict() for layer in self.layers],
            "compute_layer_precisions": self.precision_counts(),
            "int8": {
                "requested": self.int8_requested,
                "compute_layers": len(compute),
                "int8_layers": sum(layer.precision == "int8" for layer in compute),
                "float_layers": [layer.name for layer in self.float_compute_layers()],
            },
            "sparsity": {
                "requested": self.sparsity_requested,
                "eligible_layers": self.eligible_count(),
                "sparse_layers": self.sparse_layers(),
                "builder_log": self.sparsity_log.as_dict(),
            },
            "detailed": self.detailed,
        }


def kernel_report(
    information: Mapping[str, Any],
    int8_requested: bool,
    sparsity_requested: bool,
    eligible_from_weights: int,
    sparsity_log: SparsityLog | None = None,
) -> KernelReport:
    layers = parse_layers(information)
    return KernelReport(
        layers=tuple(layers),
        int8_requested=int8_requested,
        sparsity_requested=sparsity_requested,
        eligible_from_weights=eligible_from_weights,
        sparsity_log=sparsity_log or SparsityLog(),
        detailed=any(layer.type != "unknown" for layer in layers),
    )


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN_LAYERS])
    return shown + (f", ... ({len(names)} in all)" if len(names) > SHOWN_LAYERS else "")


def tensorrt_hints(facts: Mapping[str, Any] | None) -> list[str]:
    """The verdict's hints from a variant's `runtime.tensorrt` facts."""
    if not facts:
        return []
    hints = []
    sparsity, int8 = facts.get("sparsity") or {}, facts.get("int8") or {}
    if sparsity.get("requested"):
        used, eligible = sparsity.get("sparse_layers") or [], int(sparsity.get("eligible_layers") or 0)
        if not used:
            hints.append(
                "sparsity requested but no sparse kernel picked: TensorRT enabled sparse weights"
                + (f" for {eligible} eligible layers" if eligible else "")
                + " and chose dense tactics for all of them (2:4 pays only on large GEMMs/convolutions, "
                "typically from 256 channels, and at batch sizes where the layer is compute-bound)"
            )
        elif eligible and len(used) < eligible:
            hints.append(f"2:4 used in {len(used)} of {eligible} eligible layers ({_names(used)})")
    if int8.get("requested"):
        floats = list(int8.get("float_layers") or [])
        if floats:
            hints.append(
                f"int8 requested but {len(floats)} of {int8.get('compute_layers')} compute layers ran in fp16/fp32 "
                f"({_names(floats)}): Q/DQ nodes missing around them, or no int8 tactic for their shapes"
            )
    if facts.get("detailed") is False:
        hints.append(
            "the engine gave no per-layer details (built without detailed profiling verbosity), so which "
            "kernels ran is unknown"
        )
    return hints
