"""`speedproof report`: render a result record in one of the registered report formats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.options import EXIT_OK
from harness.reports import REPORT_FORMATS, render_report
from harness.reports.output_files import check_derived_output, write_derived_output
from targets.errors import InputError

NAME = "report"
HELP = "render a result record as a table, markdown, self-contained HTML or JUnit XML"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Render a result record (any command's) as: " + "; ".join(
        f"{report.name}: {report.help}" for report in REPORT_FORMATS.values()
    )
    parser.add_argument("record", type=Path, metavar="RECORD.json", help="a record written by speedproof")
    parser.add_argument("--format", choices=tuple(REPORT_FORMATS), default="table")
    parser.add_argument(
        "--output", "-o", type=Path, default=None, metavar="FILE", help="write to FILE instead of stdout"
    )


def run(args: argparse.Namespace) -> int:
    import harness.api as api

    if args.output:
        check_derived_output(args.output, "--output", inputs=(args.record,))
    record = api.load_record(args.record).record
    try:
        text = render_report(record, args.format)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # load_record checks what every record has; a deeper part that is damaged shows up here
        raise InputError(
            f"{args.record}: damaged record: cannot render it as {args.format}: {type(error).__name__}: {error}"
        ) from None
    if args.output:
        written = write_derived_output(args.output, text, "--output")
        print(f"{args.format} report written to {written}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
