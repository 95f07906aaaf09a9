"""ONNX-to-ONNX transformations: int8 quantization (dynamic, and static in QDQ format calibrated
on representative inputs) with onnxruntime.quantization, float16 conversion with float32 inputs
and outputs, and a plain re-serialisation (the `identity` control for ONNX sources)."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx

from targets.errors import SpeedproofError


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization prints advice and progress through logging and stdout."""
    logger = logging.getLogger()
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous)


def copy_model(source: Path, destination: Path) -> Path:
    """Load and save again: the same graph and weights in a file of its own."""
    onnx.save(onnx.load(str(source)), str(destination))
    return destination


def quantize_int8_dynamic(source: Path, destination: Path, per_channel: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with quiet_quantizer():
            quantize_dynamic(source, destination, per_channel=per_channel, weight_type=QuantType.QInt8)
    except Exception as error:
        raise SpeedproofError(f"int8-dynamic: onnxruntime could not quantize {source.name}: {error}") from error
    return destination


class _FeedReader:
    """onnxruntime's CalibrationDataReader over prepared feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # called by some calibrators; our feeds are read once
        pass


def quantize_int8_static(
    source: Path,
    destination: Path,
    calibration_feeds: Sequence[dict[str, np.ndarray]],
    per_channel: bool,
    activations: str = "int8",
    reduce_range: bool = False,
    symmetric: bool = False,
) -> Path:
    """QDQ int8 with int8 weights and `activations` ("int8" or "uint8"), MinMax calibration over
    `calibration_feeds`. uint8 activations without `reduce_range` can saturate in onnxruntime's
    x86 kernels on CPUs without VNNI: measured on the digits model, 91% instead of 99% accuracy.
    `symmetric`: zero points of 0 for activations and weights, which TensorRT's explicit
    quantization requires."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration_feeds:
        raise SpeedproofError("int8-static: no calibration data")
    with tempfile.TemporaryDirectory(prefix="speedproof-quant-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:
            with quiet_quantizer():
                # shape inference and graph clean-up first, as onnxruntime recommends for static quantization
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception:
            prepared = source  # pre-processing is an optimisation; quantize the original instead
        try:
            with quiet_quantizer():
                quantize_static(
                    prepared,
                    destination,
                    _FeedReader(calibration_feeds),
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    reduce_range=reduce_range,
                    calibrate_method=CalibrationMethod.MinMax,
                    calibration_providers=["CPUExecutionProvider"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else None,
                )
        except Exception as error:
            raise SpeedproofError(f"int8-static: onnxruntime could not quantize {source.name}: {error}") from error
    return destination


def convert_fp16(source: Path, destination: Path) -> Path:
    """float16 weights and arithmetic; inputs and outputs stay float32 so callers do not change."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        with quiet_quantizer():
            converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    except Exception as error:
        raise SpeedproofError(f"fp16: could not convert {source.name} to float16: {error}") from error
    sort_nodes_topologically(converted.graph)  # the converter appends its output casts at the end
    onnx.save(converted, str(destination))
    return destination


def sort_nodes_topologically(graph: onnx.GraphProto) -> None:
    """Reorder `graph.node` so every node comes after the producers of its inputs (stable)."""
    available = {value.name for value in graph.input} | {init.name for init in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        remaining = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            missing = sorted({name for node in remaining for name in node.input if name not in available})
            raise SpeedproofError(f"graph has a cycle or undefined inputs: {', '.join(missing[:5])}")
        pending = remaining
    new_nodes = [copy.deepcopy(node) for node in ordered]
    del graph.node[:]
    graph.node.extend(new_nodes)
