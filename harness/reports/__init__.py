"""Reports of result records, one module per format, registered here: the terminal table, markdown
(pull requests, `$GITHUB_STEP_SUMMARY`), one self-contained HTML page, and JUnit XML. Renderers
are imported when used, so listing the formats costs nothing."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from targets.files_out import OWN_MARK


@dataclass(frozen=True)
class ReportFormat:
    name: str
    help: str
    module: str
    function: str  # takes one record, returns the text
    comment: str = "<!-- {} -->"  # how the format carries a line of its own, for the file's mark

    def render(self, record: dict[str, Any]) -> str:
        renderer = getattr(importlib.import_module(self.module), self.function)
        return str(renderer(record))


REPORT_FORMATS: dict[str, ReportFormat] = {
    report.name: report
    for report in (
        ReportFormat(
            "table", "the terminal table with every reason and note", "harness.reports.table", "record_report", "({})"
        ),
        ReportFormat(
            "md", "markdown, for pull requests and CI summaries", "harness.reports.markdown", "markdown_report"
        ),
        ReportFormat(
            "html", "one self-contained HTML page with the plots embedded", "harness.reports.html", "html_page"
        ),
        ReportFormat("junit", "JUnit XML: one testcase per cell", "harness.reports.junit", "junit_xml"),
    )
}


def render_report(record: dict[str, Any], format_name: str) -> str:
    return REPORT_FORMATS[format_name].render(record)


def report_file_text(text: str, format_name: str) -> str:
    """A report as written to a file: ended by speedproof's mark in the format's own comment, so a
    later run may replace the file (and nothing else: see targets.files_out)."""
    return text.rstrip("\n") + "\n" + REPORT_FORMATS[format_name].comment.format(OWN_MARK) + "\n"
