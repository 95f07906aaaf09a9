"""`pydoc-lm`: a small LLaMA-architecture decoder trained here, once, on the English text that ships with every
CPython (`pydoc_data.topics`, ~465k characters in 79 topics), so that decoder compressions can be judged on
perplexity without downloading anything. Topics are split by a fixed rule (every 8th by name is held out);
a byte-level BPE tokenizer (1024 tokens) and the model are trained on the rest, seeded, and cached under
~/.cache/speedproof/decoders with the weights' sha256 (a mismatching cache is trained again). Training takes
about 50 s on 2 cores; its held-out perplexity is in the cache's facts (`pydoc-lm.json`) and the record.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.cache_files import file_sha256, speedproof_cache

NAME = "pydoc-lm"
VERSION = 1
VOCAB = 1024
SEQUENCE = 128
BATCH = 16
STEPS = 300
LEARNING_RATE = 3e-3
SEED = 0
HELD_OUT_EVERY = 8  # topic i (sorted by name) is held out when i % 8 == 7
SIZES: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}


def split_topics() -> tuple[list[str], list[str]]:
    """(training texts, held-out texts) of pydoc_data.topics, by the fixed rule."""
    import pydoc_data.topics

    topics = sorted(pydoc_data.topics.topics.items())
    held_out = [text for index, (_, text) in enumerate(topics) if index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    training = [text for index, (_, text) in enumerate(topics) if index % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return training, held_out


def held_out_text() -> str:
    """The held-out topics, one after another (what pydoc-lm's perplexity is measured on)."""
    return "\n\n".join(split_topics()[1])


def pydoc_lm_folder(progress: Callable[[str], None] | None = None, steps: int = STEPS) -> Path:
    """The trained model's Hugging Face folder; trained first when there is no valid cache."""
    from harness.decoders.zoo import CACHE_VARIABLE

    folder = speedproof_cache("decoders", CACHE_VARIABLE) / f"{NAME}-v{VERSION}-{steps}"
    facts_path = folder / f"{NAME}.json"
    if facts_path.is_file() and (folder / "model.safetensors").is_file():
        try:
            recorded = json.loads(facts_path.read_text())["sha256"]
        except (ValueError, KeyError):
            recorded = None
        if recorded == file_sha256(folder / "model.safetensors"):
            return folder
        if progress:
            progress(f"{NAME}: cached weights in {folder} do not match their checksum; training again")
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=folder.parent))
    try:
        if progress:
            progress(f"{NAME}: training on pydoc_data.topics ({steps} steps, once; cached)")
        facts = train_pydoc_lm(staging, steps)
        facts["sha256"] = file_sha256(staging / "model.safetensors")
        (staging / f"{NAME}.json").write_text(json.dumps(facts, indent=2))
        try:
            os.rename(staging, folder)
        except OSError:  # another run trained it meanwhile
            if not facts_path.is_file():
                raise
        if progress:
            progress(
                f"{NAME}: trained in {facts['train_seconds']} s; held-out perplexity "
                f"{facts['held_out_perplexity']:.1f} (a uniform guess: {facts['uniform_perplexity']})"
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def pydoc_lm_facts(folder: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((folder / f"{NAME}.json").read_text())
    return facts


def train_pydoc_lm(folder: Path, steps: int = STEPS) -> dict[str, Any]:
    """Train the tokenizer and the model into `folder` (a Hugging Face folder); their facts."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging

    from harness.decoders.zoo import save_pydoc_tokenizer

    logging.disable_progress_bar()
    training, held_out = split_topics()
    save_pydoc_tokenizer(folder, VOCAB, texts=training)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    eos = int(tokenizer.eos_token_id)

    def token_ids(texts: list[str]) -> torch.Tensor:
        ids: list[int] = []
        for text in texts:
            ids += [*tokenizer(text).input_ids, eos]
        return torch.tensor(ids)

    train_ids, held_ids = token_ids(training), token_ids(held_out)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer), **SIZES, tie_word_embeddings=True, bos_token_id=0, eos_token_id=eos, pad_token_id=eos
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE, total_steps=max(steps, 1))
    generator = torch.Generator().manual_seed(SEED)
    started = time.monotonic()
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(train_ids) - SEQUENCE - 1, (BATCH,), generator=generator)
        batch = torch.stack([train_ids[int(start) : int(start) + SEQUENCE] for start in starts])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    train_seconds = round(time.monotonic() - started, 1)
    model.eval()
    negative_log_likelihood, counted = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(held_ids) - 1, SEQUENCE):
            window = held_ids[start : start + SEQUENCE + 1]
            if len(window) < 2:
                break
            logits = model(input_ids=window[None, :-1]).logits[0]
            log_probabilities = torch.log_softmax(logits.float(), dim=-1)
            negative_log_likelihood -= float(log_probabilities[torch.arange(len(window) - 1), window[1:]].sum())
            counted += len(window) - 1
    model.save_pretrained(str(folder))
    return {
        "train_seconds": train_seconds,
        "steps": steps,
        "training_tokens": len(train_ids),
        "held_out_tokens": len(held_ids),
        "held_out_perplexity": round(math.exp(negative_log_likelihood / max(counted, 1)), 2),
        "uniform_perplexity": len(tokenizer),
        "torch": torch.__version__,
    }
