"""The ONNX-level recipe steps: int8 quantization (dynamic and static, through onnxruntime's
quantization tools) and float16 conversion. Each registers itself with the catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.recipes.catalogue import OnnxStepContext, OptionSpec, RecipeKind, register

if TYPE_CHECKING:
    from harness.recipes.grammar import RecipeStep

PER_CHANNEL = OptionSpec("bool", False, "one scale per output channel")


def _int8_dynamic(step: RecipeStep, source: Path, destination: Path, context: OnnxStepContext) -> None:
    from exporters.onnx_transforms import quantize_int8_dynamic

    quantize_int8_dynamic(source, destination, bool(step.option("per_channel")))


def _int8_static(step: RecipeStep, source: Path, destination: Path, context: OnnxStepContext) -> None:
    from exporters.onnx_transforms import quantize_int8_static

    quantize_int8_static(
        source,
        destination,
        context.calibration_feeds(int(step.option("calibration"))),
        bool(step.option("per_channel")),
        activations=str(step.option("activations")),
        reduce_range=bool(step.option("reduce_range")),
        symmetric=bool(step.option("symmetric")),
    )


def _fp16(step: RecipeStep, source: Path, destination: Path, context: OnnxStepContext) -> None:
    from exporters.onnx_transforms import convert_fp16

    convert_fp16(source, destination)


register(
    RecipeKind(
        "int8-dynamic",
        "onnx",
        "onnxruntime dynamic int8 quantization (weights int8, activations quantized at run time)",
        options={"per_channel": PER_CHANNEL},
        apply_onnx=_int8_dynamic,
    )
)
register(
    RecipeKind(
        "int8-static",
        "onnx",
        "onnxruntime static int8 quantization, QDQ format, calibrated on representative data",
        options={
            "per_channel": PER_CHANNEL,
            "calibration": OptionSpec("int", 64, "calibration samples", minimum=1),
            "activations": OptionSpec("choice", "int8", "activation type", ("int8", "uint8")),
            "reduce_range": OptionSpec(
                "bool", False, "7-bit weights: avoids uint8 saturation on x86 CPUs without VNNI"
            ),
            "symmetric": OptionSpec(
                "bool", False, "zero points of 0 (int8 activations): what TensorRT's explicit quantization needs"
            ),
        },
        apply_onnx=_int8_static,
    )
)
register(
    RecipeKind(
        "fp16",
        "onnx",
        "float16 weights and compute; inputs and outputs stay float32",
        apply_onnx=_fp16,
    )
)
