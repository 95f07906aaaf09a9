"""Decoder quality, from each folder's own ONNX decoder run by ONNX Runtime GenAI (not the torch model), in a
contained process: **perplexity** on text (the user's `--data` text file, or pydoc-lm's held-out topics) in
windows of QUALITY_WINDOW tokens, and **fidelity** against the baseline on the same token ids: next-token (top-1)
agreement and the mean cosine similarity of the logits. Without text (a random-weight zoo decoder, a folder with
no --data) the ids are random and only fidelity is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.decoders.sources import DecoderSource
from harness.models.contained import run_contained
from targets.errors import InputError, UsageError
from targets.files_in import read_input_text

QUALITY_WINDOW = 256
RANDOM_PROBE_TOKENS = 512  # the fidelity probe of a decoder without text: two windows of random ids
TEXT_CAP_BYTES = 64 * 2**20
MIN_TEXT_TOKENS = 16


@dataclass(frozen=True)
class QualityText:
    """The token ids quality is measured on, what they are, and whether perplexity means anything on them."""

    ids: list[int]
    what: str
    perplexity: bool

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.what, "tokens": len(self.ids), "on_text": self.perplexity}


def quality_text(source: DecoderSource, data: Path | None) -> QualityText:
    """The user's text (tokenized with the decoder's tokenizer), pydoc-lm's held-out topics, or random ids."""
    from harness.decoders.pydoc_lm import NAME as PYDOC_LM
    from harness.decoders.pydoc_lm import held_out_text

    if data is not None or source.name == PYDOC_LM and source.kind == "zoo":
        text = read_input_text(data, "--data", TEXT_CAP_BYTES) if data is not None else held_out_text()
        what = f"--data {data}" if data is not None else "pydoc-lm's held-out topics"
        ids = _tokenize(source, text, what)
        return QualityText(ids, f"{what} ({len(ids)} tokens)", True)
    rng = np.random.default_rng(0)
    ids = rng.integers(4, max(5, source.vocab_size), size=RANDOM_PROBE_TOKENS).tolist()
    return QualityText([int(token) for token in ids], f"random token ids ({RANDOM_PROBE_TOKENS}, seeded)", False)


def _tokenize(source: DecoderSource, text: str, what: str) -> list[int]:
    tokenizer_file = source.folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise InputError(f"{what}: {source.folder} has no tokenizer.json to tokenize the text with")
    from tokenizers import Tokenizer

    ids = [int(token) for token in Tokenizer.from_file(str(tokenizer_file)).encode(text).ids]
    if len(ids) < MIN_TEXT_TOKENS:
        raise UsageError(f"{what}: {len(ids)} tokens; perplexity needs at least {MIN_TEXT_TOKENS}: give a longer text")
    return ids


def measure_quality(folders: list[Path | None], text: QualityText, who: str) -> list[dict[str, Any] | None]:
    """Each folder's quality (None where the folder is None: a variant that was not built); the first is the
    baseline the others' fidelity is measured against."""
    result = run_contained(
        "harness.decoders.quality_step",
        {
            "folders": [None if folder is None else str(folder.resolve()) for folder in folders],
            "ids": text.ids,
            "window": QUALITY_WINDOW,
        },
        who,
        "measuring its quality with ONNX Runtime GenAI",
    )
    qualities: list[dict[str, Any] | None] = []
    for index, measured in enumerate(result["folders"]):
        if measured is None:
            qualities.append(None)
            continue
        entry: dict[str, Any] = {"metric": "perplexity" if text.perplexity else "fidelity", **text.as_dict()}
        if measured.get("error"):
            qualities.append({**entry, "error": measured["error"]})
            continue
        if text.perplexity:
            entry["perplexity"] = measured["perplexity"]
        if index == 0:
            entry["reference"] = True
        else:
            entry.update(
                top1_agreement=measured["top1_agreement"],
                mean_cosine=measured["mean_cosine"],
                auto_measure="top1",
                auto_measure_reason="a decoder's next token",
            )
        qualities.append(entry)
    return qualities
