"""The decoder zoo: LLaMA-architecture decoders with random weights in the shapes of real small language models
(latency only: their text means nothing), made here with `transformers` as Hugging Face folders, once, and
cached under ~/.cache/speedproof/decoders ($SPEEDPROOF_DECODER_CACHE). Nothing is downloaded: the tokenizer is
a byte-level BPE trained on the English text that ships with CPython (`pydoc_data.topics`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from targets.cache_files import speedproof_cache

CACHE_VARIABLE = "SPEEDPROOF_DECODER_CACHE"
# bump when what a zoo folder holds changes: older cached folders are then made again
ZOO_VERSION = 1
TOKENIZER_VOCAB = 512
SEED = 0


@dataclass(frozen=True)
class LlamaShape:
    """The sizes of a LLaMA-architecture decoder."""

    help: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    tie_word_embeddings: bool = True


DECODER_ZOO: dict[str, LlamaShape] = {
    "smollm-135m-shape": LlamaShape(
        "SmolLM-135M's shape (30 layers, hidden 576, 9 heads over 3 KV heads, vocabulary 49152; 135M parameters, "
        "540 MB in fp32), random weights: latency only",
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
    ),
    "llama-tiny-shape": LlamaShape(
        "a 4-layer LLaMA, hidden 64 (0.1M parameters): for trying the decoder scenario in seconds, latency only",
        vocab_size=TOKENIZER_VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    ),
}


def zoo_decoder_folder(name: str) -> Path:
    """The zoo decoder's Hugging Face folder, made on first use (written beside, then renamed into place)."""
    shape = DECODER_ZOO[name]
    folder = speedproof_cache("decoders", CACHE_VARIABLE) / f"{name}-v{ZOO_VERSION}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        save_random_llama(shape, staging)
        save_pydoc_tokenizer(staging)
        try:
            os.rename(staging, folder)
        except OSError:  # another run made it meanwhile
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def save_random_llama(shape: LlamaShape, folder: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    sizes = {key: value for key, value in asdict(shape).items() if key != "help"}
    config = LlamaConfig(**sizes, bos_token_id=0, eos_token_id=1, pad_token_id=1, rms_norm_eps=1e-5)
    torch.manual_seed(SEED)
    with torch.no_grad():
        model = LlamaForCausalLM(config)
    model.save_pretrained(str(folder))


def save_pydoc_tokenizer(folder: Path, vocab_size: int = TOKENIZER_VOCAB, texts: list[str] | None = None) -> None:
    """A byte-level BPE trained on pydoc_data.topics (or `texts`), saved as tokenizer.json with its config."""
    import pydoc_data.topics

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts if texts is not None else sorted(pydoc_data.topics.topics.values()), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="</s>")
    fast.save_pretrained(str(folder))
