"""`digits-cnn`: a small ResNet-style CNN trained on scikit-learn's digits (which ship inside
scikit-learn: nothing is downloaded), the zoo's one model with real accuracy.

Images are upscaled from 8x8 to 32x32; the split (train / validation / test) and the training
are seeded. Trained weights are cached in the user cache folder beside a sha256 checksum and
reused; a cache file that does not match its checksum is retrained (`train_cached`, which
digits-transformer shares).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.models.data import LabelledData, TorchModel
from harness.models.training import torch_accuracy, train_classifier
from targets.errors import SpeedproofError

if TYPE_CHECKING:
    import torch

# bump when the data preparation, architecture or training changes: old caches are then ignored
DIGITS_RECIPE_VERSION = 1
DIGITS_SEED = 0
IMAGE_SIZE = 32
NUM_CLASSES = 10
TRAIN_SHARE = 0.7
VALIDATION_SHARE = 0.1
TRAIN_EPOCHS = 8
CALIBRATION_SAMPLES = 256


@dataclass(frozen=True)
class DigitsSplits:
    train: LabelledData
    validation: LabelledData
    test: LabelledData


def load_digits_splits(seed: int = DIGITS_SEED, image_size: int = IMAGE_SIZE) -> DigitsSplits:
    """The digits images as float32 (N, 1, image_size, image_size), standardised, in a fixed seeded split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SpeedproofError("digits-cnn needs scikit-learn: pip install scikit-learn") from None
    import torch
    import torch.nn.functional as functional

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = functional.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    inputs = ((images - 0.5) / 0.5).numpy()
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    train_end = int(len(order) * TRAIN_SHARE)
    validation_end = train_end + int(len(order) * VALIDATION_SHARE)
    parts = order[:train_end], order[train_end:validation_end], order[validation_end:]
    train, validation, test = (LabelledData(inputs[part], labels[part]) for part in parts)
    return DigitsSplits(train, validation, test)


def build_digits_cnn() -> torch.nn.Module:
    """Stem, three residual stages (16, 32, 64 channels), global pooling, linear classifier."""
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out_channels)
            self.relu = nn.ReLU()
            self.shortcut: nn.Module = nn.Identity()
            if stride != 1 or in_channels != out_channels:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + self.shortcut(x))

    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.stages = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(64, NUM_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(torch.flatten(self.pool(self.stages(self.stem(x))), 1))

    return DigitsCNN()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trained_weights(cache_folder: Path, progress: Callable[[str], None] | None = None) -> tuple[Path, str]:
    """Path and sha256 of the trained weights, training them first when there is no valid cache."""
    return train_cached(
        "digits-cnn",
        f"digits-cnn-v{DIGITS_RECIPE_VERSION}",
        cache_folder,
        build_digits_cnn,
        load_digits_splits,
        TRAIN_EPOCHS,
        DIGITS_SEED,
        progress,
    )


def train_cached(
    name: str,
    stem: str,
    cache_folder: Path,
    build: Callable[[], torch.nn.Module],
    splits: Callable[[], DigitsSplits],
    epochs: int,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, str]:
    """Path and sha256 of the weights of zoo model `name` trained on the digits `splits`, cached as
    `stem`-torch<version>.pt beside a checksum; trained first when there is no valid cache."""
    import torch

    path = cache_folder / f"{stem}-torch{torch.__version__}.pt"
    checksum_path = path.with_suffix(".json")
    if path.exists() and checksum_path.exists():
        try:
            recorded = json.loads(checksum_path.read_text())["sha256"]
        except (ValueError, KeyError):
            recorded = None
        actual = _file_sha256(path)
        if recorded == actual:
            return path, actual
        if progress:
            progress(f"{name}: cached weights {path} do not match their checksum; retraining")
    data = splits()
    torch.manual_seed(seed)
    module = build()
    started = time.monotonic()
    if progress:
        progress(f"{name}: training on {len(data.train)} digits images ({epochs} epochs, once; cached)")
    train_classifier(module, data.train, epochs)
    facts = {
        "validation_accuracy": torch_accuracy(module, data.validation),
        "test_accuracy": torch_accuracy(module, data.test),
        "train_seconds": round(time.monotonic() - started, 1),
        "torch": torch.__version__,
    }
    cache_folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.partial")
    torch.save(module.state_dict(), temporary)
    os.replace(temporary, path)
    digest = _file_sha256(path)
    checksum_path.write_text(json.dumps({"sha256": digest, **facts}, indent=2))
    if progress:
        progress(
            f"{name}: trained in {facts['train_seconds']} s, test accuracy {facts['test_accuracy']:.1%} "
            f"(weights cached in {path})"
        )
    return path, digest


def load_digits_cnn(cache_folder: Path, progress: Callable[[str], None] | None = None) -> TorchModel:
    """The trained model with its training, calibration and test data."""
    path, _ = trained_weights(cache_folder, progress)
    return trained_model(build_digits_cnn, path, load_digits_splits())


def trained_model(
    build: Callable[[], torch.nn.Module],
    weights: Path,
    splits: DigitsSplits,
    input_names: tuple[str, ...] | None = None,
) -> TorchModel:
    """A digits model built and loaded with its cached `weights`, with the training, calibration
    and test data of `splits`."""
    import torch

    module = build()
    module.load_state_dict(torch.load(weights, weights_only=True))
    module.eval()
    return TorchModel(
        module=module,
        example_inputs=(torch.from_numpy(splits.test.inputs[:2]),),
        input_names=input_names,
        train_data=splits.train,
        calibration_data=splits.train.inputs[:CALIBRATION_SAMPLES],
        eval_data=splits.test,
        latency_only=False,
    )
