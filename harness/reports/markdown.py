"""Markdown summary of a result record (for pull requests and `$GITHUB_STEP_SUMMARY`)."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from harness.reports.table import judged_per_runtime, policy_line, record_tables, runtime_lines
from harness.reports.text_safety import markdown_safe


def _escape_cell(value: Any) -> str:
    return markdown_safe(str(value))


def record_title(record: dict[str, Any]) -> str:
    command = record.get("command", "run")
    target = (record.get("target") or {}).get("name")
    source = (record.get("model_source") or {}).get("spec")
    what = source or ", ".join(sorted({cell["model"] for cell in record.get("cells", [])}))
    return f"speedproof {command}: {what}" + (f" on {target}" if target and command != "gate" else "")


def host_line(record: dict[str, Any]) -> str:
    host = record.get("host") or {}
    gpus = ", ".join(gpu["name"] for gpu in host.get("gpus", []))
    return (
        f"host: {host.get('cpu_model', '?')} ({host.get('logical_cores', '?')} CPUs"
        + (f", {gpus}" if gpus else "")
        + f"); run {str(record.get('run_id', ''))[:8]} at {record.get('created_at', '?')}"
    )


def markdown_report(record: dict[str, Any], extra_lines: list[str] | None = None) -> str:
    headers, rows, notes = record_tables(record)
    lines = [f"## {markdown_safe(record_title(record))}", ""]
    lines.extend(markdown_safe(line) for line in extra_lines or [])
    if extra_lines:
        lines.append("")
    policy = policy_line(record)
    if policy:
        lines += [policy, ""]
    lines.append(markdown_safe(host_line(record)))
    lines.append("")
    lines.append(
        tabulate(
            [[_escape_cell(value) for value in row] for row in rows],
            headers=headers,
            tablefmt="github",
            disable_numparse=True,
        )
    )
    if judged_per_runtime(record):
        where, *per_variant = runtime_lines(record)
        lines += ["", markdown_safe(where), "", *(f"- {_escape_cell(line.strip())}" for line in per_variant)]
    if notes:
        lines.append("")
        lines.extend(f"- {_escape_cell(note)}" for note in notes)
    return "\n".join(lines) + "\n"
