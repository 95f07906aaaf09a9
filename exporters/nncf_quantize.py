"""int8 through NNCF's post-training quantizer (`nncf.quantize` on the ONNX model): how OpenVINO users make
int8 models. It writes QDQ like onnxruntime's quantizer, so both runtimes can run it; NNCF's defaults add
fast bias correction and its overflow fix (7-bit weights for the first layers) on CPUs without VNNI.

NNCF is an optional extra (`speedproof[nncf]`): without it the recipe fails with how to install it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from exporters.onnx_transforms import quiet_quantizer
from targets.errors import SpeedproofError

PRESETS = ("performance", "mixed")  # symmetric activations, or asymmetric ones (NNCF's names)


def quantize_int8_nncf(
    source: Path, destination: Path, calibration_feeds: Sequence[dict[str, np.ndarray]], preset: str = "performance"
) -> Path:
    """Quantize `source` with NNCF, calibrated on every feed of `calibration_feeds`; write `destination`."""
    if not calibration_feeds:
        raise SpeedproofError("int8-nncf: no calibration data")
    try:
        with quiet_quantizer(), contextlib.redirect_stderr(io.StringIO()):
            import nncf
    except ImportError as error:
        raise SpeedproofError(
            f"int8-nncf needs NNCF, which is not installed ({error}): pip install 'speedproof[nncf]'"
        ) from error
    nncf_logger = logging.getLogger("nncf")
    previous = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:
        model = onnx.load(str(source))
        with quiet_quantizer(), contextlib.redirect_stderr(io.StringIO()):  # its progress bars
            quantized = nncf.quantize(
                model,
                nncf.Dataset(list(calibration_feeds)),
                preset=nncf.QuantizationPreset(preset),
                subset_size=len(calibration_feeds),
            )
    except Exception as error:  # NNCF raises its own and onnx's errors
        raise SpeedproofError(f"int8-nncf: NNCF could not quantize {source.name}: {error}") from error
    finally:
        nncf_logger.setLevel(previous)
    onnx.save(quantized, str(destination))
    return destination
