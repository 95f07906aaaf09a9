"""`speedproof targets`: list the target profiles and whether this host can run them, and why not."""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.commands.options import EXIT_OK, add_json_option

NAME = "targets"
HELP = "list target profiles and whether this host can run them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "List the built-in target profiles; for each, whether this host can run it and, if not, why."
    add_json_option(parser, "the list as JSON")


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from targets.profiles import load_all_builtin_profiles
    from targets.runners.local import LocalRunner

    runner = LocalRunner()
    host = runner.fingerprint()
    entries: list[dict[str, Any]] = []
    for profile in load_all_builtin_profiles():
        reasons = runner.can_run(profile)
        entries.append(
            {
                "name": profile.name,
                "description": profile.description,
                "isa": profile.isa,
                "backends": [
                    backend.name + ":" + str(backend.options.get("execution_provider", ""))
                    for backend in profile.backends
                ],
                "batch_sizes": list(profile.batch_sizes),
                "runs_here": not reasons,
                "reasons": reasons,
            }
        )
    if args.json:
        print(json.dumps({"host": host.as_dict(), "targets": entries}))
        return EXIT_OK
    print(
        f"host: {host.cpu_model} ({host.isa}, {host.physical_cores} physical / {host.logical_cores} logical cores"
        + (f", GPUs: {', '.join(gpu.name for gpu in host.gpus)}" if host.gpus else ", no GPU")
        + ")\n"
    )
    rows = [
        [
            entry["name"],
            entry["description"],
            ", ".join(map(str, entry["batch_sizes"])),
            "yes" if entry["runs_here"] else "no: " + "; ".join(entry["reasons"]),
        ]
        for entry in entries
    ]
    print(tabulate(rows, headers=["target", "description", "batch sizes", "runs on this host"], tablefmt="simple"))
    return EXIT_OK
