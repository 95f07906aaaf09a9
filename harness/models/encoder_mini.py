"""`encoder-mini`: a BERT-mini-sized transformer encoder (4 layers, hidden 256, 4 heads, feed-forward
1024, sequence 128) built from torch.nn with random weights, for latency only.

Attention keeps query, key and value as separate nn.Linear layers and reads its head count from
the layers' widths, so structured pruning can remove whole heads and the module stays consistent.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from harness.models.data import TorchModel

if TYPE_CHECKING:
    import torch

VOCABULARY_SIZE = 30522  # BERT's WordPiece vocabulary
HIDDEN_SIZE = 256
NUM_LAYERS = 4
NUM_HEADS = 4
FEED_FORWARD_SIZE = 1024
SEQUENCE_LENGTH = 128
NUM_LABELS = 2
ENCODER_SEED = 0


def encoder_layer(hidden: int, heads: int, feed_forward: int) -> torch.nn.Module:
    """One post-norm encoder layer (BERT's): self-attention with separate query/key/value linears
    and `num_heads` read back from their widths, then the feed-forward block. Every layer is of
    the same class (what `drop-layers` looks for in a stack)."""
    _, layer_class = _layer_classes()
    return layer_class(hidden, heads, feed_forward)


@functools.cache
def _layer_classes() -> tuple[type, type]:
    from torch import nn

    class SelfAttention(nn.Module):
        def __init__(self, hidden: int, heads: int) -> None:
            super().__init__()
            self.num_heads = heads
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)
            self.output = nn.Linear(hidden, hidden)

        def _heads(self, x: torch.Tensor) -> torch.Tensor:
            batch, length, width = x.shape
            return x.view(batch, length, self.num_heads, width // self.num_heads).transpose(1, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch, length, _ = x.shape
            query, key, value = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
            attended = nn.functional.scaled_dot_product_attention(query, key, value)
            return self.output(attended.transpose(1, 2).reshape(batch, length, -1))

    class EncoderLayer(nn.Module):
        def __init__(self, hidden: int, heads: int, feed_forward: int) -> None:
            super().__init__()
            self.attention = SelfAttention(hidden, heads)
            self.attention_norm = nn.LayerNorm(hidden)
            self.intermediate = nn.Linear(hidden, feed_forward)
            self.activation = nn.GELU()
            self.feed_forward_output = nn.Linear(feed_forward, hidden)
            self.output_norm = nn.LayerNorm(hidden)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.attention_norm(x + self.attention(x))
            return self.output_norm(x + self.feed_forward_output(self.activation(self.intermediate(x))))

    return SelfAttention, EncoderLayer


def build_encoder_mini() -> torch.nn.Module:
    import torch
    from torch import nn

    class EncoderMini(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token_embedding = nn.Embedding(VOCABULARY_SIZE, HIDDEN_SIZE)
            self.position_embedding = nn.Embedding(SEQUENCE_LENGTH, HIDDEN_SIZE)
            self.embedding_norm = nn.LayerNorm(HIDDEN_SIZE)
            self.layers = nn.Sequential(
                *(encoder_layer(HIDDEN_SIZE, NUM_HEADS, FEED_FORWARD_SIZE) for _ in range(NUM_LAYERS))
            )
            self.pooler = nn.Linear(HIDDEN_SIZE, HIDDEN_SIZE)
            self.classifier = nn.Linear(HIDDEN_SIZE, NUM_LABELS)
            self.register_buffer("positions", torch.arange(SEQUENCE_LENGTH).unsqueeze(0), persistent=False)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            positions = self.get_buffer("positions")[:, : input_ids.shape[1]]
            hidden = self.embedding_norm(self.token_embedding(input_ids) + self.position_embedding(positions))
            hidden = self.layers(hidden)
            return self.classifier(torch.tanh(self.pooler(hidden[:, 0])))

    torch.manual_seed(ENCODER_SEED)
    return EncoderMini().eval()


def encoder_mini_model() -> TorchModel:
    import torch

    generator = torch.Generator().manual_seed(ENCODER_SEED)
    token_ids = torch.randint(0, VOCABULARY_SIZE, (2, SEQUENCE_LENGTH), generator=generator)
    return TorchModel(
        module=build_encoder_mini(),
        example_inputs=(token_ids,),
        input_names=("input_ids",),
        latency_only=True,
    )


def attention_modules(module: torch.nn.Module) -> list[Any]:
    """Modules that keep `num_heads` beside separate query/key/value linears (the encoder's)."""
    return [
        child
        for child in module.modules()
        if hasattr(child, "num_heads") and all(hasattr(child, name) for name in ("query", "key", "value"))
    ]
