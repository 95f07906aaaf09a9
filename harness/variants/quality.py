"""Quality of an artifact, evaluated by running the artifact itself on the target's backend, through
the runner of the machine the target runs on (so the numbers include what the runtime does, int8
rounding for instance): top-1 `accuracy` on the source's labelled test data, or, without labels,
`fidelity` to the baseline artifact on a fixed set of generated inputs: top-1 agreement (for outputs
with a class axis), mean cosine similarity, signal-to-noise ratio and the largest difference of the
first output, and which of them fits that output (`auto_measure`: top-1 only for `[batch, classes]`
scores; a detector's boxes, a map or an embedding are judged by closeness)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.models.data import LabelledData
from targets.errors import SpeedproofError
from targets.inputs import DEFAULT_SEED, ModelInput, generate_feed, resolve_input_specs
from targets.profiles import BackendSpec
from targets.runners.base import Runner

EVALUATION_BATCH = 64
FIDELITY_SAMPLES = 64
FIDELITY_BATCH = 8
# generated evaluation inputs differ from the ones timed in bench
FIDELITY_SEED = DEFAULT_SEED + 7919

Feed = dict[str, np.ndarray]


def evaluation_batch(model_inputs: Sequence[ModelInput], preferred: int) -> int:
    """`preferred`, unless the model has a fixed batch dimension: then that."""
    fixed = [item.dims[0] for item in model_inputs if item.dims and isinstance(item.dims[0], int)]
    return int(fixed[0]) if fixed else preferred


def generated_feeds(
    model_inputs: Sequence[ModelInput], overrides: dict[str | None, tuple[int, ...]], samples: int = FIDELITY_SAMPLES
) -> list[Feed]:
    """A fixed list of generated batches, the same for the same model inputs."""
    batch = evaluation_batch(model_inputs, FIDELITY_BATCH)
    specs = resolve_input_specs(list(model_inputs), batch, overrides)
    return [generate_feed(specs, seed=FIDELITY_SEED + index) for index in range(max(1, samples // batch))]


def data_feeds(model_inputs: Sequence[ModelInput], inputs: np.ndarray, batch: int) -> list[Feed]:
    """Batches of a data array for the model's single input (a fixed batch dim drops the tail)."""
    if len(model_inputs) != 1:
        raise SpeedproofError(f"data feeds one input, but the model has {len(model_inputs)}")
    model_input = model_inputs[0]
    batch = evaluation_batch(model_inputs, batch)
    dtype = np.dtype(model_input.dtype)
    last = len(inputs) - (len(inputs) % batch if isinstance(model_input.dims[0], int) else 0)
    return [{model_input.name: inputs[start : start + batch].astype(dtype)} for start in range(0, last, batch)]


@dataclass(frozen=True)
class QualityBackend:
    """Where quality is evaluated: the target's first backend, on the runner's machine."""

    runner: Runner
    backend: BackendSpec
    threads: int

    def first_output(self, artifact_path: Path, feeds: Sequence[Feed]) -> np.ndarray:
        """The artifact's first output over all feeds, concatenated along the batch axis."""
        return self.runner.first_outputs(str(artifact_path), self.backend, self.threads, feeds)


def top1(outputs: np.ndarray) -> np.ndarray:
    """Predicted class per sample (and per position, for outputs with more than two axes)."""
    if outputs.ndim < 2:
        raise SpeedproofError(f"top-1 needs outputs with a class axis; the first output has shape {outputs.shape}")
    return outputs.argmax(axis=-1).reshape(len(outputs), -1)


def accuracy(
    evaluator: QualityBackend, artifact_path: Path, model_inputs: Sequence[ModelInput], data: LabelledData
) -> dict[str, Any]:
    feeds = data_feeds(model_inputs, data.inputs, EVALUATION_BATCH)
    predictions = top1(evaluator.first_output(artifact_path, feeds))[:, 0]
    labels = data.labels[: len(predictions)]
    return {"metric": "accuracy", "accuracy": float(np.mean(predictions == labels)), "samples": len(labels)}


# an SNR past this is reported as this: the outputs are the same to float precision
MAX_SNR_DB = 200.0


def fitting_measure(baseline_outputs: np.ndarray) -> tuple[str, str]:
    """Which closeness measure fits the first output, and why: top-1 only for class scores."""
    shape = tuple(baseline_outputs.shape)
    if baseline_outputs.ndim == 2 and shape[1] >= 2:
        return "top1", f"the first output is [batch, {shape[1]}]: class scores"
    return "cosine", f"the first output has shape [batch, {', '.join(map(str, shape[1:]))}]: not one score per class"


def fidelity(outputs: np.ndarray, baseline_outputs: np.ndarray) -> dict[str, Any]:
    """Every closeness measure of `outputs` against the baseline's, and the one that fits them."""
    if outputs.shape != baseline_outputs.shape:
        raise SpeedproofError(f"outputs have shape {outputs.shape}, the baseline's {baseline_outputs.shape}")
    agreement = float(np.mean(top1(outputs) == top1(baseline_outputs))) if outputs.ndim >= 2 else None
    flat = outputs.reshape(len(outputs), -1).astype(np.float64)
    reference = baseline_outputs.reshape(len(outputs), -1).astype(np.float64)
    norms = np.linalg.norm(flat, axis=1) * np.linalg.norm(reference, axis=1)
    # two zero vectors are the same output; one zero vector against a non-zero one is not
    cosine = np.where(norms > 0, np.sum(flat * reference, axis=1) / np.where(norms > 0, norms, 1), 0.0)
    cosine = np.where((norms == 0) & (np.abs(flat).sum(1) == np.abs(reference).sum(1)), 1.0, cosine)
    noise = float(np.sum((flat - reference) ** 2))
    signal = float(np.sum(reference**2))
    snr_db = MAX_SNR_DB if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else -MAX_SNR_DB)
    measure, why = fitting_measure(baseline_outputs)
    return {
        "metric": "fidelity",
        "top1_agreement": agreement,
        "mean_cosine": float(np.mean(cosine)),
        "snr_db": float(min(snr_db, MAX_SNR_DB)),
        "max_abs_diff": float(np.max(np.abs(flat - reference))) if flat.size else 0.0,
        "auto_measure": measure,
        "auto_measure_reason": why,
        "samples": len(outputs),
    }
