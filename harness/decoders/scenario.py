"""The decoder scenario: which phases of greedy generation are timed, at which prompt lengths, and the token ids
they use (random, seeded, the same for both sides of a pair; or the user's prompt, tokenized here, outside any
timing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.schedule import DECODER_METRICS
from targets.errors import InputError, UsageError
from targets.files_in import read_input_text

DEFAULT_PROMPT_TOKENS = (128, 512)
DEFAULT_DECODE_TOKENS = 16
PROMPT_CAP_BYTES = 16 * 2**20
PHASE_UNITS = {"prefill": "ms", "ttft": "ms", "decode": "ms/token"}


@dataclass(frozen=True)
class Phase:
    """One timed phase: prefill or time to first token of a prompt, or decoding after it."""

    kind: str  # "prefill", "ttft" or "decode"
    prompt_tokens: int

    @property
    def key(self) -> str:
        return f"{self.kind}@{self.prompt_tokens}"

    @property
    def metric(self) -> str:
        return next(metric for metric, kind in DECODER_METRICS.items() if kind == self.kind)

    @property
    def unit(self) -> str:
        return PHASE_UNITS[self.kind]


@dataclass(frozen=True)
class DecoderScenario:
    """Prompt lengths (prefill at each; time to first token and decoding after the first), tokens per decode
    iteration, and the user's prompt file (None: random token ids)."""

    prompt_tokens: tuple[int, ...] = DEFAULT_PROMPT_TOKENS
    decode_tokens: int = DEFAULT_DECODE_TOKENS
    prompts: Path | None = None

    def __post_init__(self) -> None:
        if not self.prompt_tokens or any(length < 1 for length in self.prompt_tokens):
            raise UsageError(f"--prompt-tokens {self.prompt_tokens}: give one or more lengths of at least 1 token")
        if len(set(self.prompt_tokens)) != len(self.prompt_tokens):
            raise UsageError(f"--prompt-tokens {','.join(map(str, self.prompt_tokens))}: a length is listed twice")
        if self.decode_tokens < 2:
            raise UsageError(f"--decode-tokens {self.decode_tokens}: at least 2 (one timed step after the prompt)")

    def phases(self) -> list[Phase]:
        first = self.prompt_tokens[0]
        return [
            *(Phase("prefill", length) for length in self.prompt_tokens),
            Phase("ttft", first),
            Phase("decode", first),
        ]

    def longest(self) -> int:
        """The longest sequence a phase makes: a prompt and its first token, or the decode window."""
        return max(max(self.prompt_tokens) + 1, self.prompt_tokens[0] + self.decode_tokens)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": list(self.prompt_tokens),
            "decode_tokens": self.decode_tokens,
            "decode_context_tokens": self.prompt_tokens[0],
            "prompts": None if self.prompts is None else str(self.prompts),
            "token_ids": "the prompt file's, tokenized before timing" if self.prompts else "random, seeded",
            "search": "greedy; min length = max length",
            "timed": "the model's phase; tokenization never; the greedy pick inside each decode step and the "
            "first token",
        }


def prompt_token_ids(scenario: DecoderScenario, tokenizer_folder: Path) -> list[int] | None:
    """The user's prompt as token ids (the folder's tokenizer), long enough for the longest prompt length; None
    without a prompt file."""
    if scenario.prompts is None:
        return None
    text = read_input_text(scenario.prompts, "--prompts", PROMPT_CAP_BYTES)
    tokenizer_file = tokenizer_folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise InputError(
            f"--prompts {scenario.prompts}: {tokenizer_folder} has no tokenizer.json to tokenize it with; give "
            "random ids (leave --prompts out) or a folder with its tokenizer"
        )
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_file)).encode(text).ids
    longest = max(scenario.prompt_tokens)
    if len(ids) < longest:
        raise UsageError(
            f"--prompts {scenario.prompts}: {len(ids)} tokens, fewer than the longest --prompt-tokens ({longest}); "
            "give a longer text or shorter lengths"
        )
    return [int(token) for token in ids[:longest]]
