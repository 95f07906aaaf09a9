"""Built-in model zoo: torchvision architectures with random weights, built offline.

Random weights mean these models are for latency only: no accuracy is claimed for them.
Nothing is downloaded; torchvision is the optional `vision` extra, imported only when needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import SpeedproofError, unknown_choice

if TYPE_CHECKING:
    import torch

ZOO_SEED = 0


@dataclass(frozen=True)
class ZooModel:
    name: str
    description: str
    input_shape: tuple[int, ...]  # at batch 1
    build: Callable[[], torch.nn.Module]
    latency_only: bool = True


def _torchvision(architecture: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        try:
            import torchvision.models
        except ImportError:
            raise SpeedproofError(
                f"zoo model {architecture!r} needs torchvision: pip install 'speedproof[vision]'"
            ) from None
        import torch

        torch.manual_seed(ZOO_SEED)
        builder = getattr(torchvision.models, architecture)
        module: torch.nn.Module = builder(weights=None)
        return module.eval()

    return build


ZOO: dict[str, ZooModel] = {
    model.name: model
    for model in (
        ZooModel("resnet18", "torchvision ResNet-18, random weights", (1, 3, 224, 224), _torchvision("resnet18")),
        ZooModel("resnet50", "torchvision ResNet-50, random weights", (1, 3, 224, 224), _torchvision("resnet50")),
        ZooModel(
            "mobilenet_v2", "torchvision MobileNetV2, random weights", (1, 3, 224, 224), _torchvision("mobilenet_v2")
        ),
        ZooModel(
            "mobilenet_v3_large",
            "torchvision MobileNetV3-Large, random weights",
            (1, 3, 224, 224),
            _torchvision("mobilenet_v3_large"),
        ),
        ZooModel(
            "efficientnet_b0",
            "torchvision EfficientNet-B0, random weights",
            (1, 3, 224, 224),
            _torchvision("efficientnet_b0"),
        ),
    )
}


def zoo_model(name: str) -> ZooModel:
    try:
        return ZOO[name]
    except KeyError:
        raise unknown_choice("zoo model", name, ZOO) from None
