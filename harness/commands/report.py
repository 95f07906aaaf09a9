"""`speedproof report`: render a result record in one of the registered report formats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.options import EXIT_OK, output_file
from harness.reports import REPORT_FORMATS, render_report, report_file_text
from targets.errors import InputError
from targets.files_out import check_output, write_output

NAME = "report"
HELP = "render a result record as a table, markdown, self-contained HTML or JUnit XML"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Render a result record (any command's) as: " + "; ".join(
        f"{report.name}: {report.help}" for report in REPORT_FORMATS.values()
    )
    parser.add_argument("record", type=Path, metavar="RECORD.json", help="a record written by speedproof")
    parser.add_argument("--format", choices=tuple(REPORT_FORMATS), default="table")
    parser.add_argument(
        "--output", "-o", type=output_file, default=None, metavar="FILE", help="write to FILE instead of stdout"
    )


def run(args: argparse.Namespace) -> int:
    import harness.api as api

    if args.output:
        check_output(args.output, "--output", inputs=(args.record,))
    record = api.load_record(args.record).record
    try:
        text = render_report(record, args.format)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # load_record checks what every record has; a deeper part that is damaged shows up here
        raise InputError(
            f"{args.record}: damaged record: cannot render it as {args.format}: {type(error).__name__}: {error}"
        ) from None
    if args.output:
        written = write_output(args.output, report_file_text(text, args.format), "--output", inputs=(args.record,))
        print(f"{args.format} report written to {written}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
