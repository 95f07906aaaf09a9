"""The child side of decoder quality (`python -m harness.decoders.quality_step REQUEST.json`): each folder's
decoder loaded with ONNX Runtime GenAI, every window of the request's token ids appended to a new generator, and
the logits of every position read back (`get_output("logits")`): the perplexity of each next token, and against
the first folder's logits (kept in memory) the top-1 agreement and the mean cosine similarity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.models.contained import contained_main
from targets.quick_exit import exit_quickly


def _window_logits(model: Any, window: np.ndarray) -> np.ndarray:
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(window) + 1, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(window)
    return np.asarray(generator.get_output("logits"), dtype=np.float32).reshape(len(window), -1)


def _measure(request: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime_genai as og

    ids = np.asarray(request["ids"], dtype=np.int32)
    window = int(request["window"])
    starts = [start for start in range(0, len(ids) - 1, window) if len(ids[start : start + window + 1]) >= 2]
    baseline: list[np.ndarray] = []
    results: list[dict[str, Any] | None] = []
    for index, folder in enumerate(request["folders"]):
        if folder is None:
            results.append(None)
            continue
        try:
            results.append(_folder_quality(og.Model(folder), ids, starts, window, baseline, first=index == 0))
        except Exception as error:  # one folder that cannot run: its quality is the error, the others go on
            results.append({"error": f"{type(error).__name__}: {error}"})
    return {"status": "ok", "folders": results}


def _folder_quality(
    model: Any, ids: np.ndarray, starts: list[int], window: int, baseline: list[np.ndarray], first: bool
) -> dict[str, Any]:
    """Perplexity over the windows, and (not the first) agreement and cosine against `baseline`'s logits; the
    first folder's logits are kept in `baseline`."""
    negative_log_likelihood, counted, agreeing, cosines = 0.0, 0, 0, []
    for number, start in enumerate(starts):
        chunk = ids[start : start + window + 1]
        logits = _window_logits(model, chunk[:-1]).astype(np.float64)
        top = logits.max(axis=-1, keepdims=True)
        log_sum = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
        negative_log_likelihood += float((log_sum - logits[np.arange(len(chunk) - 1), chunk[1:]]).sum())
        counted += len(chunk) - 1
        if first:
            baseline.append(logits.astype(np.float32))
        elif baseline:
            reference = baseline[number].astype(np.float64)
            agreeing += int((logits.argmax(axis=-1) == reference.argmax(axis=-1)).sum())
            norms = np.linalg.norm(logits, axis=-1) * np.linalg.norm(reference, axis=-1)
            cosines.extend(((logits * reference).sum(axis=-1) / np.maximum(norms, 1e-30)).tolist())
    return {
        "perplexity": round(math.exp(negative_log_likelihood / max(counted, 1)), 4),
        "tokens": counted,
        "top1_agreement": round(agreeing / counted, 5) if not first and baseline and counted else None,
        "mean_cosine": round(float(np.mean(cosines)), 6) if cosines else None,
    }


def _out_of_memory(request: dict[str, Any]) -> str:
    return (
        f"measuring quality ran out of memory under the cap of {request['memory_mb']} MB (set "
        "SPEEDPROOF_SOURCE_MEMORY_MB to allow more)"
    )


def main(argv: list[str] | None = None) -> int:
    return contained_main(argv, "harness.decoders.quality_step", _measure, _out_of_memory)


if __name__ == "__main__":
    exit_quickly(main())
