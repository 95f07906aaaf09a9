"""The commands of the `speedproof` CLI, one module each, registered here in the order `--help`
lists them. A command module has NAME, HELP, `add_arguments(parser)` and `run(args) -> exit code`;
it parses and prints, and leaves the work to the stages below it. Commands never import each
other; what they share is in `harness.commands.options`."""

from __future__ import annotations

import importlib
from types import ModuleType

COMMAND_MODULES = (
    "bench",
    "variants",
    "verify",
    "targets",
    "gate",
    "compare",
    "search",
    "sensitivity",
    "report",
    "demo",
    "worker",
    "cluster",
)


def command_modules() -> list[ModuleType]:
    return [importlib.import_module(f"harness.commands.{name}") for name in COMMAND_MODULES]
