"""Plain-text tables of result records for the terminal."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

MIB = 1024 * 1024


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def bench_table(record: dict[str, Any]) -> str:
    # with variants, each row also says what the variant's quality is
    with_quality = len(record.get("variants") or []) > 1
    rows = []
    for cell in record["cells"]:
        latency = cell.get("latency_ms") or {}
        memory = cell.get("memory") or {}
        cold = cell.get("cold_start_ms") or {}
        if cell["status"] == "ok":
            status = "ok" + (
                f" ({len(cell['warnings'])} warning{'s' if len(cell['warnings']) > 1 else ''})"
                if cell["warnings"]
                else ""
            )
        else:
            status = "FAILED"
        rows.append(
            [
                cell["model"],
                cell["variant"],
                cell["backend"],
                (cell.get("provider") or "-").replace("ExecutionProvider", ""),
                cell["batch_size"],
                _number(latency.get("p50"), 3),
                _number(latency.get("p90"), 3),
                _number(latency.get("p99"), 3),
                _number(cell["cv"] * 100, 1) if cell.get("cv") is not None else "-",
                _number(cell.get("throughput_per_s"), 1),
                cell.get("iterations") or 0,
                _number(cold.get("session"), 0),
                _number(memory["peak_rss_bytes"] / MIB, 0) if memory else "-",
                *([quality_text(cell.get("quality"))] if with_quality else []),
                status,
            ]
        )
    headers = [
        "model",
        "variant",
        "backend",
        "provider",
        "batch",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "CV %",
        "items/s",
        "iters",
        "load ms",
        "peak RSS MiB",
        *(["quality"] if with_quality else []),
        "status",
    ]
    table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right")
    notes = []
    for cell in record["cells"]:
        where = f"{cell['model']} {cell['variant']} {cell['backend']} batch {cell['batch_size']}"
        if cell["status"] != "ok":
            notes.append(f"FAILED {where}: {cell['error']}")
        for warning in cell.get("warnings", []):
            notes.append(f"warning {where}: {warning}")
    return table + ("\n\n" + "\n".join(notes) if notes else "")


def _scaled_count(value: int | None) -> str:
    if value is None:
        return "-"
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= divisor:
            return f"{value / divisor:.2f}{suffix}"
    return str(value)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def quality_text(quality: dict[str, Any] | None) -> str:
    if not quality:
        return "-"
    if quality.get("reference"):
        return "reference"
    if quality["metric"] == "accuracy":
        return f"acc {quality['accuracy'] * 100:.1f}%"
    return f"agree {quality['top1_agreement'] * 100:.1f}% cos {quality['mean_cosine']:.4f}"


def variants_table(record: dict[str, Any]) -> str:
    """One row per variant: the artifact's facts and quality, and whether it was built."""
    rows = []
    for variant in record["variants"]:
        facts = variant.get("artifact") or {}
        alignment = facts.get("alignment") or {}
        params, nonzero = facts.get("params"), facts.get("nonzero_params")
        rows.append(
            [
                variant["recipe"],
                _number(facts["bytes"] / 1e6, 2) if facts else "-",
                _number(facts["zipped_bytes"] / 1e6, 2) if facts else "-",
                _scaled_count(params),
                _share(nonzero / params) if params else "-",
                _scaled_count(facts.get("macs")),
                f"{_share(alignment.get('multiple_of_8'))} / {_share(alignment.get('multiple_of_16'))}"
                if alignment
                else "-",
                quality_text(variant.get("quality")),
                "ok" if variant["status"] == "ok" else "FAILED",
            ]
        )
    headers = ["recipe", "file MB", "zipped MB", "params", "non-zero", "MACs", "x8 / x16", "quality", "status"]
    table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right")
    notes = []
    for variant in record["variants"]:
        if variant["status"] != "ok":
            notes.append(f"FAILED {variant['recipe']}: {variant['error']}")
        notes.extend(f"warning {variant['recipe']}: {warning}" for warning in variant.get("warnings", []))
    source = record.get("model_source") or {}
    if source.get("latency_only"):
        notes.append(f"{source.get('spec')} has random weights: quality is fidelity to the baseline, not accuracy")
    return table + ("\n\n" + "\n".join(notes) if notes else "")
