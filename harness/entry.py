"""The `speedproof` console script's first step. A Ctrl-C that lands while Python imports the
command line (its first second) ends the run as one at any other moment does — one line and exit
130 — instead of a traceback and a death by SIGINT; so this module imports nothing until then."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # harness.cli's, not imported: that import is what may be interrupted


def script_main() -> None:
    try:
        from harness.cli import script_main as run_command_line
    except KeyboardInterrupt:
        print("interrupted; nothing was measured", file=sys.stderr)
        sys.stderr.flush()
        import os

        os._exit(EXIT_INTERRUPTED)
    run_command_line()


if __name__ == "__main__":
    script_main()
