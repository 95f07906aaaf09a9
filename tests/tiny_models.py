"""Tiny torch model sources built at test time, importable as `tests.tiny_models:NAME` model sources.

`tiny_cnn` is a residual CNN with awkward widths (so pruning and alignment have something to do)
and a little labelled data, `tiny_cnn_self_labelled` the same with its own predictions as test
labels, `tiny_cnn_without_data` the same module without data, `tiny_encoder`
a two-layer transformer encoder with the zoo encoder's attention (prunable heads),
`tiny_torch_transformer` one built from torch's nn.TransformerEncoder, `dropout_cnn_in_training_mode`
a net with dropout and batch norm returned in training mode (as torchvision builds its models).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.models.data import LabelledData, TorchModel

IMAGE_SHAPE = (3, 16, 16)
NUM_CLASSES = 4


class TinyResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.conv1 = nn.Conv2d(24, 24, 3, padding=1)
        self.conv2 = nn.Conv2d(24, 24, 3, padding=1)
        self.expand = nn.Conv2d(24, 40, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(40, 48), nn.ReLU())
        self.classifier = nn.Linear(48, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.conv2(torch.relu(self.conv1(x))))
        return self.classifier(self.head(torch.relu(self.expand(x))))


def _data(samples: int, seed: int) -> LabelledData:
    """Labels that depend on the input (the mean of one channel's quadrant), so training can learn."""
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((samples, *IMAGE_SHAPE)).astype(np.float32)
    quadrants = inputs[:, 0].reshape(samples, 2, 8, 2, 8).mean(axis=(2, 4)).reshape(samples, 4)
    return LabelledData(inputs, quadrants.argmax(axis=1).astype(np.int64))


def tiny_cnn() -> TorchModel:
    torch.manual_seed(0)
    return TorchModel(
        module=TinyResidualCNN().eval(),
        example_inputs=(torch.randn(2, *IMAGE_SHAPE),),
        train_data=_data(128, seed=1),
        calibration_data=_data(16, seed=2).inputs,
        eval_data=_data(64, seed=3),
    )


def tiny_cnn_self_labelled() -> TorchModel:
    """`tiny_cnn`, trained a little (so its classes vary with the input), whose test labels are its
    own predictions: the baseline scores 100%, so any change to its outputs' classes is an accuracy
    drop (what a search's quality cut and per-layer sensitivity need to be certain)."""
    from harness.models.training import train_classifier

    model = tiny_cnn()
    assert model.eval_data is not None and model.train_data is not None
    train_classifier(model.module, model.train_data, epochs=4)
    model.module.eval()
    with torch.no_grad():
        predicted = model.module(torch.from_numpy(model.eval_data.inputs)).argmax(dim=1).numpy().astype(np.int64)
    return TorchModel(
        module=model.module,
        example_inputs=model.example_inputs,
        train_data=model.train_data,
        calibration_data=model.calibration_data,
        eval_data=LabelledData(model.eval_data.inputs, predicted),
    )


def tiny_cnn_without_data() -> TorchModel:
    torch.manual_seed(0)
    return TorchModel(module=TinyResidualCNN().eval(), example_inputs=(torch.randn(2, *IMAGE_SHAPE),))


def tiny_encoder() -> TorchModel:
    from harness.models import encoder_mini

    torch.manual_seed(0)
    module = encoder_mini.build_encoder_mini()
    # two of its four layers keep the test fast; attention, heads and widths stay as in the zoo model
    module.layers = module.layers[:2]
    tokens = torch.randint(0, 1000, (2, 32))
    return TorchModel(module=module.eval(), example_inputs=(tokens,), input_names=("input_ids",), latency_only=True)


class TinyTorchTransformer(nn.Module):
    """Built from torch's own nn.TransformerEncoder, whose layers read their linears' weights directly."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(32, 64)
        layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.classifier = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(self.project(x))[:, 0])


def tiny_torch_transformer() -> TorchModel:
    torch.manual_seed(0)
    return TorchModel(module=TinyTorchTransformer().eval(), example_inputs=(torch.randn(2, 10, 32),))


def dropout_cnn_in_training_mode() -> TorchModel:
    """Squeezenet's shape of trouble: dropout before the classifier, and the module left in training
    mode, as torchvision.models.squeezenet1_1() returns it."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Conv2d(16, NUM_CLASSES, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return TorchModel(module=module.train(), example_inputs=(torch.randn(2, *IMAGE_SHAPE),))
