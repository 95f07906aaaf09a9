"""The `speedproof` command line: builds the parser from the registered commands and runs one.

Exit codes: 0 success; 1 a cell or variant failed (the rest still ran and the record was written);
2 usage, configuration or input error (nothing measured).
"""

from __future__ import annotations

import argparse
import sys

from harness import __version__
from harness.commands import command_modules
from harness.commands.options import EXIT_CELL_FAILED, EXIT_OK, EXIT_USAGE
from targets.errors import SpeedproofError

__all__ = ["EXIT_CELL_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except SpeedproofError as error:
        print(f"speedproof {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; records already written are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
