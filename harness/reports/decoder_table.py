"""The verdict table of a generative decoder's record: one column per timed phase (prefill at each prompt
length, time to first token, time per token), the baseline's own times in its row and each variant's speedup
with its interval in the others; the phase the policy judges is marked."""

from __future__ import annotations

from typing import Any

MIB = 2**20


def _interval(speedup: dict[str, Any] | None) -> str:
    if not speedup:
        return "-"
    return f"{speedup['ratio']:.2f}x [{speedup['ci_low']:.2f}, {speedup['ci_high']:.2f}]"


def _baseline_times(record: dict[str, Any]) -> dict[str, str]:
    """Each phase's baseline figure (median, ms or ms/token), from the first variant that measured it."""
    times: dict[str, str] = {}
    for cell in record["cells"]:
        for key, phase in (cell.get("phases") or {}).items():
            if key not in times and phase.get("baseline_ms") is not None:
                times[key] = f"{phase['baseline_ms']:.4g} {phase['unit']}"
    return times


def _megabytes(cell: dict[str, Any], base: dict[str, Any]) -> str:
    size = (cell.get("artifact") or {}).get("bytes")
    base_size = (base.get("artifact") or {}).get("bytes")
    if not size:
        return "-"
    relative = f" ({size / base_size:.2f}x)" if base_size and cell is not base else ""
    return f"{size / 1e6:.1f}{relative}"


def _quality(cell: dict[str, Any], reference: dict[str, Any], random_weights: bool) -> str:
    quality = cell.get("quality") or {}
    if quality.get("error"):
        return "failed"
    parts = []
    if quality.get("perplexity") is not None:
        base = (reference.get("quality") or {}).get("perplexity")
        growth = f" ({quality['perplexity'] / base - 1:+.1%})" if base and cell is not reference else ""
        parts.append(f"ppl {quality['perplexity']:.2f}{growth}")
    if quality.get("top1_agreement") is not None:
        parts.append(f"agree {quality['top1_agreement']:.1%}")
    if quality.get("mean_cosine") is not None:
        parts.append(f"cos {quality['mean_cosine']:.3f}")
    text = " ".join(parts) or ("reference" if cell is reference and quality else "-")
    return f"{text} (not judged)" if random_weights and cell is not reference and parts else text


def decoder_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: model, variant, MB on disk, a column per phase, peak RSS, decision, next step, reasons."""
    decoder = record["decoder"]
    phases: list[str] = decoder["phases"]
    judged = decoder["judged"]
    reference: dict[str, Any] = next((cell for cell in record["cells"] if cell.get("reference")), {})
    baseline_times = _baseline_times(record)
    rows = []
    for cell in record["cells"]:
        verdict = cell.get("verdict") or {}
        memory = (cell.get("memory") or {}).get("peak_rss_bytes")
        if cell.get("reference"):
            columns = [baseline_times.get(key, "-") for key in phases]
            decision, next_step, codes = ("reference" if cell["status"] == "ok" else "FAILED"), "-", ""
            phase_memory = [
                (phase.get("baseline_memory") or {}).get("peak_rss_bytes")
                for other in record["cells"]
                for phase in (other.get("phases") or {}).values()
            ]
            memory = next((value for value in phase_memory if value), None)
        else:
            columns = [_interval(((cell.get("phases") or {}).get(key) or {}).get("speedup")) for key in phases]
            decision = verdict.get("decision", "-")
            next_step = verdict.get("next_step") or "-"
            codes = " ".join(reason["code"] for reason in verdict.get("reasons", []))
        rows.append(
            [
                cell["model"],
                cell["variant"],
                _megabytes(cell, reference),
                *columns,
                _quality(cell, reference, bool((record.get("model_source") or {}).get("latency_only"))),
                f"{memory / MIB:.0f}" if memory else "-",
                decision,
                next_step,
                codes,
            ]
        )
    headers = [
        "model",
        "variant",
        "MB (vs base)",
        *(f"{key}{' *' if key.split('@')[0] == judged else ''}" for key in phases),
        "quality",
        "peak RSS MiB",
        "decision",
        "next",
        "reasons",
    ]
    return headers, rows


def decoder_notes(record: dict[str, Any]) -> list[str]:
    """What the columns are: the baseline's row holds its times, the others speedups; which phase decides."""
    decoder = record["decoder"]
    scenario = decoder.get("scenario") or {}
    return [
        f"decoder phases ({decoder.get('backend')}, greedy, token ids {scenario.get('token_ids', '-')}): the "
        "baseline's row holds its median times (prefill and ttft in ms, decode in ms per token), the variants' rows "
        f"their speedups [interval]; * the phase the policy judges ({decoder.get('judged')}); peak RSS of the "
        "longest prompt's prefill, KV cache included"
    ]
