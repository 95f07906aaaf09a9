"""Supervised training of a classifier on LabelledData: the digits models' training and the
`finetune` option's recovery training share this loop, which can also distil from a teacher
(`distill=true`: loss = alpha * KL(teacher/T || student/T) * T^2 + (1 - alpha) * cross-entropy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.models.data import LabelledData

if TYPE_CHECKING:
    import torch

TRAINING_SEED = 0
TRAIN_BATCH = 64
TRAIN_LEARNING_RATE = 3e-3


@dataclass(frozen=True)
class Distillation:
    """A teacher whose softened class scores the student learns beside the labels."""

    teacher: torch.nn.Module
    temperature: float
    alpha: float  # weight of the soft targets; 1 - alpha for the labels' cross-entropy

    def loss(self, student_scores: torch.Tensor, inputs: torch.Tensor, hard_loss: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as functional

        with torch.no_grad():
            teacher_scores = self.teacher(inputs)
        temperature = self.temperature
        soft = functional.kl_div(
            functional.log_softmax(student_scores / temperature, dim=1),
            functional.log_softmax(teacher_scores / temperature, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        return self.alpha * soft * temperature**2 + (1.0 - self.alpha) * hard_loss


def train_classifier(
    module: torch.nn.Module,
    data: LabelledData,
    epochs: int,
    learning_rate: float = TRAIN_LEARNING_RATE,
    seed: int = TRAINING_SEED,
    after_step: Callable[[], None] | None = None,
    distillation: Distillation | None = None,
) -> float:
    """Seeded Adam training with a cosine schedule; returns the last epoch's mean loss.

    `after_step` runs after every optimiser step (fine-tuning uses it to keep pruned weights at zero);
    with `distillation`, the loss is the teacher's (which stays in eval mode, never trained).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    inputs = torch.from_numpy(data.inputs)
    labels = torch.from_numpy(data.labels)
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)
    steps_per_epoch = max(1, -(-len(data) // TRAIN_BATCH))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * steps_per_epoch))
    loss_function = torch.nn.CrossEntropyLoss()
    module.train()
    if distillation is not None:
        distillation.teacher.eval()
    last_loss = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(data), TRAIN_BATCH):
            batch = order[start : start + TRAIN_BATCH]
            optimizer.zero_grad()
            scores = module(inputs[batch])
            loss = loss_function(scores, labels[batch])
            if distillation is not None:
                loss = distillation.loss(scores, inputs[batch], loss)
            loss.backward()
            optimizer.step()
            schedule.step()
            if after_step is not None:
                after_step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        last_loss = total / count
    module.eval()
    return last_loss


def torch_accuracy(module: torch.nn.Module, data: LabelledData) -> float:
    import torch

    module.eval()
    with torch.no_grad():
        predictions = module(torch.from_numpy(data.inputs)).argmax(dim=1).numpy()
    return float(np.mean(predictions == data.labels))
