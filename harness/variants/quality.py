"""Quality of an artifact, evaluated by running the artifact itself on the target's backend, through
the runner of the machine the target runs on (so the numbers include what the runtime does, int8
rounding for instance): top-1 `accuracy` on the source's labelled test data, or, without labels,
`fidelity` to the baseline artifact (top-1 agreement and mean cosine similarity of outputs on a
fixed set of generated inputs)."""

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


def fidelity(outputs: np.ndarray, baseline_outputs: np.ndarray) -> dict[str, Any]:
    """Top-1 agreement and mean cosine similarity of `outputs` against the baseline's."""
    if outputs.shape != baseline_outputs.shape:
        raise SpeedproofError(f"outputs have shape {outputs.shape}, the baseline's {baseline_outputs.shape}")
    agreement = float(np.mean(top1(outputs) == top1(baseline_outputs)))
    flat, reference = outputs.reshape(len(outputs), -1), baseline_outputs.reshape(len(outputs), -1)
    norms = np.linalg.norm(flat, axis=1) * np.linalg.norm(reference, axis=1)
    # two zero vectors are the same output; one zero vector against a non-zero one is not
    cosine = np.where(norms > 0, np.sum(flat * reference, axis=1) / np.where(norms > 0, norms, 1), 0.0)
    cosine = np.where((norms == 0) & (np.abs(flat).sum(1) == np.abs(reference).sum(1)), 1.0, cosine)
    return {
        "metric": "fidelity",
        "top1_agreement": agreement,
        "mean_cosine": float(np.mean(cosine)),
        "samples": len(outputs),
    }
