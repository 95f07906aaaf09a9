"""`digits-transformer`: a 4-layer transformer encoder classifier (ViT-style) trained on
scikit-learn's digits, the zoo's transformer with real accuracy, so that layer dropping, head
pruning, distillation and int4 weights are judged on real top-1 accuracy.

Each image is upscaled to 16x16 and cut into 16 patches of 4x4 pixels: a sequence of 16 tokens of
16 values, embedded to width 64, plus learned positions; 4 encoder layers (4 heads, feed-forward
128, post-norm like BERT: encoder-mini's layers), mean-pooled, one linear classifier. Attention keeps
query, key and value as separate nn.Linear layers, so structured pruning can remove whole heads;
the layers sit in `layers`, so `drop-layers` finds them. Trained once, seeded, and cached beside a
checksum like digits-cnn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.models.data import LabelledData, TorchModel
from harness.models.digits import DigitsSplits, load_digits_splits, train_cached, trained_model
from harness.models.encoder_mini import encoder_layer

if TYPE_CHECKING:
    import torch

# bump when the data preparation, architecture or training changes: old caches are then ignored
TRANSFORMER_RECIPE_VERSION = 1
TRANSFORMER_SEED = 0
IMAGE_SIZE = 16
PATCH_SIZE = 4
TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
TOKEN_SIZE = PATCH_SIZE * PATCH_SIZE
HIDDEN_SIZE = 64
NUM_LAYERS = 4
NUM_HEADS = 4
FEED_FORWARD_SIZE = 128
NUM_CLASSES = 10
TRAIN_EPOCHS = 30


def build_digits_transformer() -> torch.nn.Module:
    """Patch tokens in (batch, 16, 16), class scores out (batch, 10)."""
    import torch
    from torch import nn

    class DigitsTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch_embedding = nn.Linear(TOKEN_SIZE, HIDDEN_SIZE)
            self.position_embedding = nn.Parameter(torch.zeros(1, TOKENS, HIDDEN_SIZE))
            self.layers = nn.Sequential(
                *(encoder_layer(HIDDEN_SIZE, NUM_HEADS, FEED_FORWARD_SIZE) for _ in range(NUM_LAYERS))
            )
            self.norm = nn.LayerNorm(HIDDEN_SIZE)
            self.classifier = nn.Linear(HIDDEN_SIZE, NUM_CLASSES)

        def forward(self, patches: torch.Tensor) -> torch.Tensor:
            hidden = self.layers(self.patch_embedding(patches) + self.position_embedding)
            return self.classifier(self.norm(hidden.mean(dim=1)))

    return DigitsTransformer()


def patches_of(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 16, 16) images -> (N, 16, 16) tokens: 4x4 patches, row by row."""
    grid = IMAGE_SIZE // PATCH_SIZE
    batch = images.shape[0]
    tiles = images.reshape(batch, grid, PATCH_SIZE, grid, PATCH_SIZE).permute(0, 1, 3, 2, 4)
    return tiles.reshape(batch, TOKENS, TOKEN_SIZE)


def token_splits() -> DigitsSplits:
    """The digits split of digits-cnn (same seed, same images), as patch tokens."""
    import torch

    splits = load_digits_splits(image_size=IMAGE_SIZE)

    def tokens(part: LabelledData) -> LabelledData:
        return LabelledData(patches_of(torch.from_numpy(part.inputs)).numpy(), part.labels)

    return DigitsSplits(tokens(splits.train), tokens(splits.validation), tokens(splits.test))


def trained_transformer_weights(cache_folder: Path, progress: Callable[[str], None] | None = None) -> tuple[Path, str]:
    """Path and sha256 of the trained weights, training them first when there is no valid cache."""
    return train_cached(
        "digits-transformer",
        f"digits-transformer-v{TRANSFORMER_RECIPE_VERSION}",
        cache_folder,
        build_digits_transformer,
        token_splits,
        TRAIN_EPOCHS,
        TRANSFORMER_SEED,
        progress,
    )


def load_digits_transformer(cache_folder: Path, progress: Callable[[str], None] | None = None) -> TorchModel:
    """The trained model with its training, calibration and test data."""
    path, _ = trained_transformer_weights(cache_folder, progress)
    return trained_model(build_digits_transformer, path, token_splits(), input_names=("patches",))
