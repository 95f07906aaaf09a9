"""A self-contained HTML report of a result record: the tables, the notes and the plots embedded
as base64 PNG, no external files or scripts."""

from __future__ import annotations

import base64
import html
from typing import Any

from tabulate import tabulate

from harness.reports.markdown import host_line, record_title
from harness.reports.table import policy_line, record_tables, search_rows, verdict_summary
from harness.reports.text_safety import xml_safe

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td.ACCEPT { color: #2e7d32; font-weight: bold; } td.REJECT { color: #c62828; font-weight: bold; }
ul.notes li { margin: 0.2em 0; font-size: 0.9em; }
img { max-width: 100%; border: 1px solid #eee; margin: 1em 0; }
.meta { color: #555; font-size: 0.9em; }
ul.summary li { margin: 0.3em 0; font-weight: 500; }
"""


def _image(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _table_html(headers: list[str], rows: list[list[Any]]) -> str:
    out = tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True)
    # colour the decision column
    for decision in ("ACCEPT", "REJECT"):
        out = out.replace(f"<td>{decision}", f'<td class="{decision}">{decision}')
    return out


def record_plots(record: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(caption, PNG) of every plot that suits the record."""
    from harness.reports.plots import (
        batch_curve_figure,
        compare_figure,
        pareto_figure,
        search_figure,
        sensitivity_figure,
        speedup_figure,
    )

    plots = []
    if record.get("command") == "compare":
        plots.append(("speedup against sparsity, beside size and MAC reductions", compare_figure(record)))
    if record.get("command") == "sensitivity":
        plots.append(("accuracy each layer group costs when pruned alone", sensitivity_figure(record)))
    if record.get("command") == "search":
        front = search_figure(record)
        if front is not None:
            plots.append(("the search's timed points: speedup against quality, with the front", front))
    speedups = speedup_figure(record)
    if speedups is not None:
        plots.append(("speedup interval of each variant, beside its size and MAC reductions", speedups))
    curve = batch_curve_figure(record)
    if curve is not None:
        plots.append(("speedup against batch size (verify --batch-sizes)", curve))
    pareto = pareto_figure(record)
    if pareto is not None:
        plots.append(("accuracy against latency, with the Pareto front", pareto))
    return plots


def html_report(records: list[dict[str, Any]], title: str | None = None) -> str:
    """One page for one or more records (the demo puts several models on one page)."""
    sections = []
    for record in records:
        headers, rows, notes = record_tables(record)
        parts = [f"<h2>{html.escape(record_title(record))}</h2>"]
        policy = policy_line(record)
        if policy:
            parts.append(f'<p class="meta">{html.escape(policy)}</p>')
        parts.append(f'<p class="meta">{html.escape(host_line(record))}</p>')
        parts.append(_table_html(headers, rows))
        if record.get("command") == "search":
            parts.append("<h3>every trial of the search</h3>")
            parts.append(_table_html(*search_rows(record)))
        for caption, png in record_plots(record):
            parts.append(_image(png, caption))
        if notes:
            parts.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
        sections.append("\n".join(parts))
    heading = title or (record_title(records[0]) if len(records) == 1 else "speedproof report")
    summary = [line for record in records for line in verdict_summary(record)]
    if summary:
        sections.insert(0, '<ul class="summary">' + "".join(f"<li>{html.escape(s)}</li>" for s in summary) + "</ul>")
    # control characters (from names and error strings) are not allowed in HTML either: shown escaped
    return xml_safe(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(heading)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(heading)}</h1>\n" + "\n<hr>\n".join(sections) + "\n</body></html>\n"
    )


def html_page(record: dict[str, Any]) -> str:
    """The HTML report of one record."""
    return html_report([record])
