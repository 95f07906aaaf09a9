"""Plain-text tables of result records for the terminal."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

MIB = 1024 * 1024


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def bench_table(record: dict[str, Any]) -> str:
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
