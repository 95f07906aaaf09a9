"""The `speedproof` command line: builds the parser from the registered commands and runs one.

Exit codes: 0 success; 1 a cell or variant failed (the rest still ran and the record was written),
or the record could not be written where asked (it was printed and saved elsewhere); 2 usage,
configuration or input error (nothing measured); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
Interrupted or terminated, a run removes its temporary folders and stops its workers; a process
it started and lost track of (a signal that landed inside `Popen`) is killed as the run ends.

The `speedproof` script ends its process as soon as the command is done (`targets.quick_exit`): the
exit handlers run and the output is flushed, but the interpreter's own teardown is skipped, which
after torch exports took 2-14 s (measured: `demo` printed its report 8-14 s before it exited).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from harness.commands import command_modules
from harness.commands.options import EXIT_CELL_FAILED, EXIT_OK, EXIT_USAGE
from harness.records.store import RecordNotWritten
from harness.reports.text_safety import terminal_safe
from harness.version import __version__
from targets import interrupts
from targets.errors import SpeedproofError
from targets.interrupts import signals_raise
from targets.quick_exit import exit_quickly
from targets.runners.processes import no_child_left
from targets.scratch import run_scratch

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (CI cancellation, `timeout`): unwind like Ctrl-C, so that workers are stopped
    and temporary folders removed."""


__all__ = [
    "EXIT_CELL_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "script_main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speedproof",
        description="Measure whether a (compressed) model really runs faster on the hardware it targets.",
    )
    parser.add_argument("--version", action="version", version=f"speedproof {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        command = commands.add_parser(module.NAME, help=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # before the command started: nothing to stop or keep
        print("interrupted; nothing was measured", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        with signals_raise(on_sigterm=Terminated), run_scratch(), no_child_left():
            code = int(args.run(args))
            interrupts.raise_if_interrupted()  # a signal that was swallowed after the last checkpoint
            return code
    except RecordNotWritten as error:
        _print_unwritten(args, error)
        return EXIT_CELL_FAILED
    except SpeedproofError as error:
        print(f"speedproof {args.command}: error: {terminal_safe(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        interrupts.clear()
        print("terminated; records already written are kept", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        interrupts.clear()
        print("interrupted; records already written are kept", file=sys.stderr)
        return EXIT_INTERRUPTED


def _print_unwritten(args: argparse.Namespace, error: RecordNotWritten) -> None:
    """A measured record that could not be written where asked: print it, and say where it is."""
    from harness.reports.table import record_text

    if getattr(args, "json", False) or error.saved_to is None:
        print(json.dumps(error.record))
    else:
        print(record_text(error.record))
    print(f"speedproof {args.command}: error: {error}", file=sys.stderr)


def script_main() -> NoReturn:
    """The `speedproof` console script and `python -m harness.cli`: main(), then `exit_quickly`."""
    exit_quickly(main())


if __name__ == "__main__":
    script_main()
