"""Built-in model zoo, built offline: `digits-cnn` and `digits-transformer` (trained on
scikit-learn's digits, real accuracy), torchvision architectures and `encoder-mini` with random weights (latency only:
no accuracy is claimed for them).

Nothing is downloaded; torchvision is the optional `vision` extra, imported only when needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.models.data import DATA_KINDS, TorchModel
from harness.progress import ProgressCallback
from targets.errors import UsageError, unknown_choice

ZOO_SEED = 0
RANDOM_WEIGHTS_KEY = f"random-seed{ZOO_SEED}"


@dataclass(frozen=True)
class ZooModel:
    name: str
    description: str
    input_shape: tuple[int, ...]  # at batch 1
    # cache folder, progress -> the model with its data
    load: Callable[[Path, ProgressCallback], TorchModel]
    # cache folder, progress -> a key that changes whenever the weights do (names cached exports)
    weights_key: Callable[[Path, ProgressCallback], str]
    latency_only: bool = True
    provides: frozenset[str] = frozenset()  # of DATA_KINDS, known without loading the model


def _random_weights_key(cache_folder: Path, progress: ProgressCallback) -> str:
    return RANDOM_WEIGHTS_KEY


def _torchvision(architecture: str) -> Callable[[Path, ProgressCallback], TorchModel]:
    def load(cache_folder: Path, progress: ProgressCallback) -> TorchModel:
        try:
            import torchvision.models
        except ImportError:
            raise UsageError(
                f"zoo model {architecture!r} needs torchvision: pip install 'speedproof[vision]'"
            ) from None
        import torch

        torch.manual_seed(ZOO_SEED)
        module: torch.nn.Module = getattr(torchvision.models, architecture)(weights=None).eval()
        generator = torch.Generator().manual_seed(ZOO_SEED)
        # a batch of 2: a batch of 1 would let the exporter specialise the batch axis to 1
        example = torch.randn((2, 3, 224, 224), generator=generator)
        return TorchModel(module=module, example_inputs=(example,), latency_only=True)

    return load


def _load_digits(cache_folder: Path, progress: ProgressCallback) -> TorchModel:
    from harness.models.digits import load_digits_cnn

    return load_digits_cnn(cache_folder, progress)


def _digits_weights_key(cache_folder: Path, progress: ProgressCallback) -> str:
    from harness.models.digits import trained_weights

    _, digest = trained_weights(cache_folder, progress)
    return f"weights-{digest[:12]}"


def _load_digits_transformer(cache_folder: Path, progress: ProgressCallback) -> TorchModel:
    from harness.models.digits_transformer import load_digits_transformer

    return load_digits_transformer(cache_folder, progress)


def _digits_transformer_weights_key(cache_folder: Path, progress: ProgressCallback) -> str:
    from harness.models.digits_transformer import trained_transformer_weights

    _, digest = trained_transformer_weights(cache_folder, progress)
    return f"weights-{digest[:12]}"


def _load_encoder(cache_folder: Path, progress: ProgressCallback) -> TorchModel:
    from harness.models.encoder_mini import encoder_mini_model

    return encoder_mini_model()


def _torchvision_entry(name: str, title: str) -> ZooModel:
    return ZooModel(
        name, f"torchvision {title}, random weights", (1, 3, 224, 224), _torchvision(name), _random_weights_key
    )


ZOO: dict[str, ZooModel] = {
    model.name: model
    for model in (
        ZooModel(
            "digits-cnn",
            "ResNet-style CNN trained on scikit-learn digits (32x32), real accuracy",
            (1, 1, 32, 32),
            _load_digits,
            _digits_weights_key,
            latency_only=False,
            provides=frozenset(DATA_KINDS),
        ),
        ZooModel(
            "digits-transformer",
            "4-layer transformer encoder (d=64, 4 heads) trained on scikit-learn digits as 16 patch tokens, "
            "real accuracy",
            (1, 16, 16),
            _load_digits_transformer,
            _digits_transformer_weights_key,
            latency_only=False,
            provides=frozenset(DATA_KINDS),
        ),
        _torchvision_entry("resnet18", "ResNet-18"),
        _torchvision_entry("resnet50", "ResNet-50"),
        _torchvision_entry("mobilenet_v2", "MobileNetV2"),
        _torchvision_entry("mobilenet_v3_large", "MobileNetV3-Large"),
        _torchvision_entry("efficientnet_b0", "EfficientNet-B0"),
        ZooModel(
            "encoder-mini",
            "BERT-mini-sized transformer encoder (4 layers, d=256, 4 heads, seq 128), random weights",
            (1, 128),
            _load_encoder,
            _random_weights_key,
        ),
    )
}


def zoo_model(name: str) -> ZooModel:
    try:
        return ZOO[name]
    except KeyError:
        raise unknown_choice("zoo model", name, ZOO) from None
