"""Quality of an artifact, evaluated by running the artifact itself on the target's backend, through
the runner of the machine the target runs on (so the numbers include what the runtime does, int8
rounding for instance):

- `task`: the user's metric function (--metric-fn) on the outputs for the user's data;
- `accuracy`: top-1 against labels (the user's data with `labels`, or the source's test data),
  when the first output is class scores;
- otherwise `fidelity` to the baseline artifact, on the user's data or a fixed set of generated
  inputs: for every output its mean cosine similarity, signal-to-noise ratio and largest difference
  (the worst output's figures lead), top-1 agreement of the first output when it has a class axis,
  and which measure fits the model (`auto_measure`: top-1 only for a single `[batch, classes]`
  output; a detector's boxes, a map or an embedding are judged by closeness)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.models.data import LabelledData
from targets.errors import SpeedproofError
from targets.inputs import DEFAULT_SEED, ModelInput, feed_bytes, generate_feed, max_feed_bytes, resolve_input_specs
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
    fixed = evaluation_batch(model_inputs, 0)
    # one sample must fit the input cap (else its error names batch 1); the batches shrink to fit it
    sample_bytes = max(1, feed_bytes(resolve_input_specs(list(model_inputs), 1, overrides)))
    fitting = max(1, max_feed_bytes() // sample_bytes)
    batch = fixed or min(FIDELITY_BATCH, fitting)
    specs = resolve_input_specs(list(model_inputs), batch, overrides)
    count = max(1, min(samples // batch, fitting // batch))  # all of them held at once: within the cap too
    return [generate_feed(specs, seed=FIDELITY_SEED + index) for index in range(count)]


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

    def all_outputs(self, artifact_path: Path, feeds: Sequence[Feed]) -> list[list[np.ndarray]]:
        """Every output of the artifact, per feed."""
        return self.runner.outputs(str(artifact_path), self.backend, self.threads, feeds)


def top1(outputs: np.ndarray) -> np.ndarray:
    """Predicted class per sample (and per position, for outputs with more than two axes)."""
    if outputs.ndim < 2:
        raise SpeedproofError(f"top-1 needs outputs with a class axis; the first output has shape {outputs.shape}")
    return outputs.argmax(axis=-1).reshape(len(outputs), -1)


def accuracy(
    evaluator: QualityBackend, artifact_path: Path, model_inputs: Sequence[ModelInput], data: LabelledData
) -> dict[str, Any]:
    feeds = data_feeds(model_inputs, data.inputs, EVALUATION_BATCH)
    return top1_accuracy(evaluator.first_output(artifact_path, feeds), data.labels)


def top1_accuracy(first_outputs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1 of class scores against integer labels (a fixed batch may have dropped the tail)."""
    predictions = top1(first_outputs)[:, 0]
    labels = labels[: len(predictions)]
    return {"metric": "accuracy", "accuracy": float(np.mean(predictions == labels)), "samples": len(labels)}


# an SNR past this is reported as this: the outputs are the same to float precision
MAX_SNR_DB = 200.0
# closeness per channel: axes of at most this many channels; a channel the baseline holds constant
# (its variation below this share of the most varied channel's) is not judged; the worst kept
MAX_CHANNELS = 4096
CONSTANT_CHANNEL_SHARE = 1e-9
WORST_CHANNELS_KEPT = 128


def is_class_scores(outputs: np.ndarray) -> bool:
    return outputs.ndim == 2 and outputs.shape[1] >= 2


def fitting_measure(baseline_outputs: list[np.ndarray]) -> tuple[str, str]:
    """Which closeness measure fits the model's outputs (the first feed's), and why: top-1 only for a
    single output of class scores."""
    first = baseline_outputs[0]
    if len(baseline_outputs) > 1:
        return "cosine", f"the model has {len(baseline_outputs)} outputs: each is judged by closeness, the worst counts"
    shape = tuple(first.shape)
    if is_class_scores(first):
        return "top1", f"the output is [batch, {shape[1]}]: class scores"
    # the shape as measured: which axis is the batch is not known for an output (sequence-first ones)
    return "cosine", f"the output has shape [{', '.join(map(str, shape))}]: not one score per class"


@dataclass
class _ChannelSums:
    """Running sums per channel of one axis of an output (its values over the samples and the
    other axes): the baseline's sum and sum of squares, and the squared differences."""

    axis: int
    count: int = 0
    base: np.ndarray | None = None
    base_squares: np.ndarray | None = None
    noise: np.ndarray | None = None

    def add(self, output: np.ndarray, reference: np.ndarray) -> None:
        values = np.moveaxis(output, self.axis, 0).reshape(output.shape[self.axis], -1)
        base = np.moveaxis(reference, self.axis, 0).reshape(reference.shape[self.axis], -1)
        sums = (base.sum(1), (base**2).sum(1), ((values - base) ** 2).sum(1))
        if self.base is None or self.base_squares is None or self.noise is None:
            self.base, self.base_squares, self.noise = sums
        else:
            self.base, self.base_squares = self.base + sums[0], self.base_squares + sums[1]
            self.noise = self.noise + sums[2]
        self.count += base.shape[1]

    def snr_db(self) -> np.ndarray:
        """Each channel's standardized SNR: its variation in the baseline over the variant's error
        (NaN for a channel the baseline holds constant: nothing to judge)."""
        assert self.base is not None and self.base_squares is not None and self.noise is not None
        signal = np.maximum(self.base_squares - self.base**2 / max(self.count, 1), 0.0)
        judged = signal > CONSTANT_CHANNEL_SHARE * float(signal.max(initial=0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.where(self.noise > 0, 10 * np.log10(signal / self.noise), MAX_SNR_DB)
        return np.where(judged, np.minimum(snr, MAX_SNR_DB), np.nan)


@dataclass
class _Closeness:
    """Running sums of one output's closeness over the feeds."""

    cosines: list[np.ndarray]
    noise: float = 0.0
    signal: float = 0.0
    max_abs: float = 0.0
    incomparable: str | None = None
    channels: list[_ChannelSums] | None = None

    def add(self, values: np.ndarray, reference: np.ndarray, where: str) -> None:
        if self.incomparable is not None:
            return
        if values.shape != reference.shape:
            self.incomparable = (
                f"shape {list(values.shape)} vs the baseline's {list(reference.shape)} {where} (an output whose size "
                "depends on the data, after NMS say: judge it with --metric-fn)"
            )
            return
        rows = len(values) if values.ndim else 1
        flat = values.reshape(rows, -1).astype(np.float64)
        base = reference.reshape(rows, -1).astype(np.float64)
        norms = np.linalg.norm(flat, axis=1) * np.linalg.norm(base, axis=1)
        # two zero vectors are the same output; one zero vector against a non-zero one is not
        cosine = np.where(norms > 0, np.sum(flat * base, axis=1) / np.where(norms > 0, norms, 1), 0.0)
        same_zero = (norms == 0) & (np.abs(flat).sum(1) == np.abs(base).sum(1))
        self.cosines.append(np.where(same_zero, 1.0, cosine))
        self.noise += float(np.sum((flat - base) ** 2))
        self.signal += float(np.sum(base**2))
        if flat.size:
            self.max_abs = max(self.max_abs, float(np.max(np.abs(flat - base))))
        if values.ndim >= 2:
            if self.channels is None:  # the axis after the batch, and the last one too ([1, N, 84] layouts)
                axes = dict.fromkeys(axis for axis in (1, values.ndim - 1) if 2 <= values.shape[axis] <= MAX_CHANNELS)
                self.channels = [_ChannelSums(axis) for axis in axes]
            for sums in self.channels:
                sums.add(values.astype(np.float64), reference.astype(np.float64))

    def figures(self, name: str) -> dict[str, Any]:
        if self.incomparable is not None:
            return {"name": name, "incomparable": self.incomparable}
        if self.noise == 0:
            snr_db = MAX_SNR_DB
        else:
            snr_db = 10 * np.log10(self.signal / self.noise) if self.signal > 0 else -MAX_SNR_DB
        cosines = np.concatenate(self.cosines) if self.cosines else np.ones(1)
        return {
            "name": name,
            "mean_cosine": float(np.mean(cosines)),
            "snr_db": float(min(snr_db, MAX_SNR_DB)),
            "max_abs_diff": self.max_abs,
            **({"channels": self._worst_channels()} if self.channels else {}),
        }

    def _worst_channels(self) -> dict[str, Any] | None:
        """The axis whose worst channel is worst, and its worst channels (standardized SNR, lowest first)."""
        worst: dict[str, Any] | None = None
        for sums in self.channels or []:
            snr = sums.snr_db()
            if np.all(np.isnan(snr)):
                continue
            order = np.argsort(np.where(np.isnan(snr), np.inf, snr))[:WORST_CHANNELS_KEPT]
            listed = [[int(index), round(float(snr[index]), 2)] for index in order if not np.isnan(snr[index])]
            entry: dict[str, Any] = {
                "axis": sums.axis,
                "count": int(len(snr)),
                "worst": listed,
                "all_listed": int(np.count_nonzero(~np.isnan(snr))) <= WORST_CHANNELS_KEPT,
            }
            if worst is None or listed[0][1] < worst["worst"][0][1]:
                worst = entry
        return worst


def _worst_channels_of(figures: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The output whose worst channel is worst, with its channel figures."""
    candidates = [{"output": item["name"], **item["channels"]} for item in figures if item.get("channels")]
    return min(candidates, key=lambda item: item["worst"][0][1]) if candidates else None


def fidelity(
    outputs: list[list[np.ndarray]] | np.ndarray,
    baseline_outputs: list[list[np.ndarray]] | np.ndarray,
    names: Sequence[str] | None = None,
    inputs: str = "generated",
) -> dict[str, Any]:
    """Every closeness measure of each output against the baseline's (per feed, every output), the
    worst output's figures at the top, and the measure that fits the model. A single array stands
    for one feed of one output."""
    per_feed = [[outputs]] if isinstance(outputs, np.ndarray) else outputs
    reference = [[baseline_outputs]] if isinstance(baseline_outputs, np.ndarray) else baseline_outputs
    if len(per_feed) != len(reference) or any(len(a) != len(b) for a, b in zip(per_feed, reference, strict=False)):
        raise SpeedproofError(
            f"the variant gave {len(per_feed[0]) if per_feed else 0} outputs over {len(per_feed)} feeds, the baseline "
            f"{len(reference[0]) if reference else 0} over {len(reference)}"
        )
    count = len(reference[0]) if reference else 0
    names = list(names or [])[:count] + [f"output_{index}" for index in range(len(names or []), count)]
    sums = [_Closeness([]) for _ in range(count)]
    agreements: list[np.ndarray] = []
    for feed_index, (values, base) in enumerate(zip(per_feed, reference, strict=True)):
        for index, (value, expected) in enumerate(zip(values, base, strict=True)):
            sums[index].add(np.asarray(value), np.asarray(expected), f"at feed {feed_index}")
        first, first_base = np.asarray(values[0]), np.asarray(base[0])
        if first.ndim >= 2 and first.shape[1] >= 2 and first.shape == first_base.shape:  # [batch, 1]: no class axis
            agreements.append((top1(first) == top1(first_base)).reshape(-1))
    figures = [closeness.figures(name) for closeness, name in zip(sums, names, strict=True)]
    comparable = [item for item in figures if "incomparable" not in item]
    measure, why = fitting_measure([np.asarray(value) for value in reference[0]])
    samples = sum(len(np.asarray(values[0])) if np.ndim(values[0]) else 1 for values in reference)
    return {
        "metric": "fidelity",
        "inputs": inputs,
        "top1_agreement": float(np.mean(np.concatenate(agreements))) if agreements else None,
        "mean_cosine": min(item["mean_cosine"] for item in comparable) if comparable else None,
        "snr_db": min(item["snr_db"] for item in comparable) if comparable else None,
        "max_abs_diff": max(item["max_abs_diff"] for item in comparable) if comparable else None,
        "outputs": figures,
        "incomparable": [f"{item['name']}: {item['incomparable']}" for item in figures if "incomparable" in item],
        "worst_channels": _worst_channels_of(comparable),
        "auto_measure": measure,
        "auto_measure_reason": why,
        "samples": samples,
    }
