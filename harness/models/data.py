"""The interface through which a torch model source hands speedproof its module and, optionally,
its data: training data (for `finetune`), calibration data (for `int8-static`) and labelled test
data (for `accuracy`).

A `package.module:function` source may return an `nn.Module`, a tuple `(module, example_inputs)`,
or a `TorchModel` to provide data too::

    from harness.models.data import LabelledData, TorchModel

    def my_model() -> TorchModel:
        module = build_my_net()
        return TorchModel(
            module=module,
            example_inputs=(torch.zeros(1, 3, 32, 32),),
            train_data=LabelledData(train_images, train_labels),    # numpy arrays
            calibration_data=calibration_images,                    # numpy array, inputs only
            eval_data=LabelledData(test_images, test_labels),
        )

Data arrays hold the model's single input along axis 0 (float32 for images, int64 for token ids);
labels are integer class indices. Models with several inputs can still be measured and
compressed, but not given data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from targets.errors import InputError

if TYPE_CHECKING:
    import torch


DATA_KINDS = ("train_data", "calibration_data", "eval_data")


@dataclass(frozen=True)
class LabelledData:
    """Inputs (first axis: samples) and their integer class labels."""

    inputs: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise InputError(
                f"labelled data has {len(self.inputs)} inputs but {len(self.labels)} labels; they must match"
            )
        if len(self.inputs) == 0:
            raise InputError("labelled data is empty")
        if not np.issubdtype(self.labels.dtype, np.integer):
            raise InputError(f"labels must be integer class indices, got dtype {self.labels.dtype}")

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class TorchModel:
    """A torch module with example inputs (batch axis first) and the data it can provide."""

    module: torch.nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...] | None = None
    train_data: LabelledData | None = None
    calibration_data: np.ndarray | None = None
    eval_data: LabelledData | None = None
    latency_only: bool = False  # random weights: no accuracy claim

    def __post_init__(self) -> None:
        has_data = self.train_data is not None or self.calibration_data is not None or self.eval_data is not None
        if has_data and len(self.example_inputs) != 1:
            raise InputError(
                f"a model with {len(self.example_inputs)} inputs cannot provide data: data arrays feed one input"
            )

    def provided_data(self) -> frozenset[str]:
        """Which of DATA_KINDS this model has (training inputs also serve as calibration data)."""
        present = {
            "train_data": self.train_data,
            "calibration_data": self.calibration_inputs(),
            "eval_data": self.eval_data,
        }
        return frozenset(kind for kind, data in present.items() if data is not None)

    def calibration_inputs(self) -> np.ndarray | None:
        """Representative inputs: calibration data, else the training inputs."""
        if self.calibration_data is not None:
            return self.calibration_data
        return None if self.train_data is None else self.train_data.inputs
