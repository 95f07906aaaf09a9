"""The ONNX-level recipe steps: int8 quantization (dynamic and static, through onnxruntime's
quantization tools; int8-nncf through NNCF's), 4-bit weight-only quantization of MatMul weights, and float16 conversion.
Each registers itself with the catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.recipes.catalogue import OnnxStepContext, OptionSpec, RecipeKind, register

if TYPE_CHECKING:
    from harness.recipes.catalogue import RecipeStep

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


def _int8_nncf(step: RecipeStep, source: Path, destination: Path, context: OnnxStepContext) -> None:
    from exporters.nncf_quantize import quantize_int8_nncf

    quantize_int8_nncf(
        source,
        destination,
        context.calibration_feeds(int(step.option("calibration"))),
        preset=str(step.option("preset")),
    )


def _int4_weight(step: RecipeStep, source: Path, destination: Path, context: OnnxStepContext) -> dict[str, Any]:
    from exporters.int4_weights import quantize_int4_weights

    result = quantize_int4_weights(
        source,
        destination,
        block_size=int(step.option("block_size")),
        symmetric=bool(step.option("symmetric")),
        accuracy_level=int(step.option("accuracy_level")),
        bits=8 if step.name == "int8-weight" else 4,
    )
    return result.as_note()


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
        "int8-nncf",
        "onnx",
        "NNCF's post-training int8 quantization (QDQ, fast bias correction), as OpenVINO users make int8 "
        "models; needs pip install 'speedproof[nncf]'",
        options={
            "calibration": OptionSpec("int", 64, "calibration samples", minimum=1),
            "preset": OptionSpec(
                "choice",
                "performance",
                "performance: symmetric activations; mixed: asymmetric activations (models with non-ReLU activations)",
                ("performance", "mixed"),
            ),
        },
        apply_onnx=_int8_nncf,
    )
)
# the options of weight-only quantization, on ONNX models (onnxruntime's quantizer) and on decoders (ONNX Runtime
# GenAI's model builder, harness/decoders/build.py)
WEIGHT_ONLY_OPTIONS = {
    "block_size": OptionSpec("choice", "32", "weights per scale (block along the input axis)", ("32", "64", "128")),
    "symmetric": OptionSpec("bool", False, "no zero points (symmetric around 0) instead of one per block"),
    "accuracy_level": OptionSpec(
        "choice",
        "4",
        "MatMulNBits' compute type: 0 the kernel's choice, 1 fp32, 2 fp16, 3 bf16, 4 int8 (fastest on x86 "
        "CPUs with AVX2/AVX512-VNNI)",
        ("0", "1", "2", "3", "4"),
    ),
}
register(
    RecipeKind(
        "int4-weight",
        "onnx",
        "4-bit block-wise weight-only quantization of MatMul/Gemm weights (onnxruntime's MatMulNBits, RTN); "
        "activations stay float. On a decoder: the model builder's int4 precision with these options",
        options=WEIGHT_ONLY_OPTIONS,
        apply_onnx=_int4_weight,
    )
)
register(
    RecipeKind(
        "int8-weight",
        "onnx",
        "8-bit block-wise weight-only quantization of MatMul/Gemm weights (MatMulNBits with 8 bits); activations "
        "stay float. On a decoder: the model builder's int8 precision with these options",
        options=WEIGHT_ONLY_OPTIONS,
        apply_onnx=_int4_weight,
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
