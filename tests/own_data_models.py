"""Models made the way users make them, outside speedproof, for the tests and for
scripts/own_data_walkthrough.py: a digits teacher CNN trained on labels and a far smaller student
trained only on the teacher's soft targets (knowledge distillation), both exported to ONNX beside
an npz of the test split; an LSTM whose states carry the batch on dim 1 with a scalar sample-rate
input, and an npz of its inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

DISTILLATION_TEMPERATURE = 2.0


def train(module: nn.Module, inputs: np.ndarray, targets: np.ndarray, epochs: int, soft: bool) -> None:
    """Cross-entropy on integer labels, or (soft) KL divergence to a teacher's softened logits."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    module.train()
    for _ in range(epochs):
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            logits = module(x[start : start + 64])
            if soft:
                loss = nn.functional.kl_div(
                    torch.log_softmax(logits / DISTILLATION_TEMPERATURE, dim=1),
                    torch.softmax(y[start : start + 64] / DISTILLATION_TEMPERATURE, dim=1),
                    reduction="batchmean",
                )
            else:
                loss = nn.functional.cross_entropy(logits, y[start : start + 64])
            loss.backward()
            optimizer.step()
    module.eval()


def write_distilled_pair(folder: Path) -> tuple[Path, Path, Path]:
    """teacher.onnx, student.onnx and digits_test.npz (the test split: `input`, `labels`) in `folder`."""
    from exporters.torch_to_onnx import export_to_onnx
    from harness.models.digits import load_digits_splits

    splits = load_digits_splits()
    torch.manual_seed(0)
    teacher = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64 * 16, 10),
    )
    train(teacher, splits.train.inputs, splits.train.labels, epochs=4, soft=False)
    with torch.no_grad():
        soft_targets = teacher(torch.from_numpy(splits.train.inputs)).numpy()
    student = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    train(student, splits.train.inputs, soft_targets, epochs=30, soft=True)
    example = [torch.from_numpy(splits.test.inputs[:2])]
    paths = folder / "teacher.onnx", folder / "student.onnx", folder / "digits_test.npz"
    export_to_onnx(teacher, example, paths[0], input_names=["input"])
    export_to_onnx(student, example, paths[1], input_names=["input"])
    np.savez(paths[2], input=splits.test.inputs, labels=splits.test.labels)
    return paths


class GatedLSTM(nn.Module):
    """x [batch, seq, 16], h0 and c0 [1, batch, 32], sr [] (int64): the LSTM's last output, used only
    when the sample rate is the one it was trained for (as voice-activity models check)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x, (h0, c0))
        return self.head(out[:, -1]) * (sr == 16000).to(x.dtype)


def write_lstm(folder: Path, hidden: int = 32, name: str = "lstm") -> tuple[Path, Path]:
    """NAME.onnx (dynamic batch on dim 0 of x and dim 1 of the states, dynamic sequence) and NAME.npz."""
    torch.manual_seed(0)
    module = GatedLSTM(hidden).eval()
    x, h0, c0 = torch.randn(2, 10, 16), torch.zeros(1, 2, hidden), torch.zeros(1, 2, hidden)
    sr = torch.tensor(16000, dtype=torch.int64)
    path = folder / f"{name}.onnx"
    with warnings.catch_warnings():  # torch warns of batch sizes with LSTMs: the states are inputs here, as it advises
        warnings.simplefilter("ignore")  # and of tracing its size checks
        _export_lstm(module, (x, h0, c0, sr), path)
    rng = np.random.default_rng(0)
    data = folder / f"{name}.npz"
    np.savez(
        data,
        x=rng.standard_normal((32, 20, 16)).astype(np.float32),
        h0=np.zeros((32, 1, hidden), np.float32),
        c0=np.zeros((32, 1, hidden), np.float32),
        sr=np.array(16000),
    )
    return path, data


def _export_lstm(module: nn.Module, examples: tuple[torch.Tensor, ...], path: Path) -> None:
    torch.onnx.export(
        module,
        examples,
        str(path),
        input_names=["x", "h0", "c0", "sr"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch", 1: "seq"}, "h0": {1: "batch"}, "c0": {1: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
