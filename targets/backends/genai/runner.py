"""ONNX Runtime GenAI backend: a generative decoder (an ONNX Runtime GenAI folder: `genai_config.json`,
`model.onnx` with its KV cache inputs, tokenizer files) loaded with `og.Model`, and timed one *phase* of
generation per iteration with greedy search, as users feel them:

- `prefill`: a fresh generator takes the prompt (`append_tokens` of `prompt_tokens` ids): the model's forward
  over the whole prompt, compute-bound;
- `decode`: after a prompt of `prompt_tokens` ids (untimed, once), each iteration rewinds the KV cache to the
  prompt and generates `decode_tokens` tokens one at a time (each one forward of one token against the cache and
  a greedy pick); the figure is the time per token, bound by reading the weights;
- `ttft`: time to first token: a new generator (its KV cache allocated), the prompt, and the first token picked.

The clock is the runner's own around the phase (`TimingKind.PHASE`): token ids are made before timing (random,
seeded, or the user's prompts already tokenized by the job), so tokenization is never timed; the greedy pick
(an argmax over the vocabulary inside ONNX Runtime GenAI) is part of each decode step and of the first token,
as it is of every real generation, and is reported on its own (`runtime_facts`: `pick_ms`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime_genai as og

from targets.backends.base import BackendRunner, TensorMetadata, TimingKind
from targets.errors import SpeedproofError

PHASES = ("prefill", "decode", "ttft")
DEFAULT_PROMPT_TOKENS = 128
DEFAULT_DECODE_TOKENS = 16
# token ids drawn at random stay clear of the first ids, where tokenizers keep their special tokens
FIRST_ORDINARY_ID = 4


def genai_version() -> str:
    return str(getattr(og, "__version__", "unknown"))


def read_genai_config(folder: Path) -> dict[str, Any]:
    """The folder's genai_config.json (already checked by the job that named it)."""
    config: dict[str, Any] = json.loads((folder / "genai_config.json").read_text())
    return config


class GenaiRunner(BackendRunner):
    name = "onnxruntime-genai"
    timing = TimingKind.PHASE

    def __init__(self, artifact_path: str, threads: int, options: Mapping[str, Any]) -> None:
        super().__init__(artifact_path, threads, options)
        self.phase = str(self.options.get("phase", "decode"))
        if self.phase not in PHASES:
            raise SpeedproofError(f"onnxruntime-genai: phase {self.phase!r} is not one of {', '.join(PHASES)}")
        self.prompt_tokens = int(self.options.get("prompt_tokens", DEFAULT_PROMPT_TOKENS))
        self.decode_tokens = int(self.options.get("decode_tokens", DEFAULT_DECODE_TOKENS))
        self.prompt_ids: np.ndarray | None = None
        self._elapsed_ns = 0
        self._generator: Any = None
        self._pick_ns: list[int] = []

    @classmethod
    def unavailable_reason(cls, options: Mapping[str, Any]) -> str | None:
        return None

    # lifecycle -------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        folder = Path(self.artifact_path)
        config = read_genai_config(folder)["model"]
        self.vocab_size = int(config["vocab_size"])
        self.context_length = int(config["context_length"])
        if self.decode_tokens < 2:
            raise SpeedproofError(f"onnxruntime-genai: decode_tokens = {self.decode_tokens}; at least 2")
        longest = self.prompt_tokens + (self.decode_tokens if self.phase == "decode" else 1)
        if longest > self.context_length:
            raise SpeedproofError(
                f"{folder}: a prompt of {self.prompt_tokens} tokens and its new tokens ({longest} in all) do not fit "
                f"the model's context of {self.context_length} tokens (genai_config.json: model.context_length); "
                "use shorter prompts"
            )
        og_config = og.Config(str(folder))
        og_config.clear_providers()  # the CPU: ONNX Runtime GenAI's default when no provider is named
        if self.threads:
            og_config.overlay(
                json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": self.threads}}}})
            )
        self.model = og.Model(og_config)
        prompt = self.options.get("prompt_ids")
        if prompt is not None:
            self.prompt_ids = np.asarray(prompt, dtype=np.int32)[: self.prompt_tokens]
        else:
            rng = np.random.default_rng(int(self.options.get("seed", 0)))
            high = max(FIRST_ORDINARY_ID + 1, self.vocab_size)
            self.prompt_ids = rng.integers(FIRST_ORDINARY_ID, high, size=self.prompt_tokens).astype(np.int32)
        if len(self.prompt_ids) != self.prompt_tokens:
            raise SpeedproofError(
                f"onnxruntime-genai: the prompt has {len(self.prompt_ids)} tokens, {self.prompt_tokens} were asked"
            )

    def get_input_metadata_impl(self) -> list[TensorMetadata]:
        return []  # the runner makes its own token ids: the plan feeds nothing

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> Any:
        if self.phase == "prefill":
            generator = self._new_generator(self.prompt_tokens + 1)
            start = time.perf_counter_ns()
            generator.append_tokens(self.prompt_ids)
            self._elapsed_ns = time.perf_counter_ns() - start
        elif self.phase == "ttft":
            start = time.perf_counter_ns()
            generator = self._new_generator(self.prompt_tokens + 1)
            generator.append_tokens(self.prompt_ids)
            picked = time.perf_counter_ns()
            generator.generate_next_token()
            token = generator.get_next_tokens()
            end = time.perf_counter_ns()
            self._elapsed_ns = end - start
            self._pick_ns.append(end - picked)
            return token
        else:
            self._elapsed_ns = self._decode_window()
        return None

    def _new_generator(self, max_length: int) -> Any:
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_length, min_length=max_length, do_sample=False)
        return og.Generator(self.model, params)

    def _decode_window(self) -> int:
        """Time per token of `decode_tokens - 1` new tokens after the prompt: the cache is rewound to the prompt
        less its last token, which is fed again (one forward of one token), then each later step runs the
        forward of the token picked before and picks the next. Every step is one forward and one pick."""
        assert self.prompt_ids is not None
        if self._generator is None:
            self._generator = self._new_generator(self.prompt_tokens + self.decode_tokens)
            self._generator.append_tokens(self.prompt_ids)
        generator = self._generator
        last = self.prompt_ids[-1:]
        new_tokens = self.decode_tokens - 1
        start = time.perf_counter_ns()
        generator.rewind_to(self.prompt_tokens - 1)
        generator.append_tokens(last)
        for _ in range(new_tokens):
            generator.generate_next_token()
        return (time.perf_counter_ns() - start) // new_tokens

    def device_elapsed_ns(self) -> int:
        """The phase's own time of the last iteration (ns; per token for decode)."""
        return self._elapsed_ns

    def runtime_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "onnxruntime_genai": genai_version(),
            "phase": self.phase,
            "prompt_tokens": self.prompt_tokens,
            "context_length": self.context_length,
        }
        if self.phase == "decode":
            facts["decode_tokens"] = self.decode_tokens
        if self._pick_ns:
            facts["pick_ms"] = round(float(np.median(self._pick_ns)) / 1e6, 4)
        return facts

    def deactivate_impl(self) -> None:
        self._generator = None
        self.model = None

    def actual_provider_impl(self) -> str:
        return "cpu"
