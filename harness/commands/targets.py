"""`speedproof targets`: list the target profiles and whether this host can run them, and why not."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.commands.options import EXIT_OK, add_json_option, add_tls_options, apply_tls_options
from targets.errors import SpeedproofError

NAME = "targets"
HELP = "list target profiles and whether this host can run them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the built-in target profiles and their backends; for each, whether this host can run it and, if "
        "not, why. The first backend of a target is its default; --backend NAME picks another."
    )
    parser.add_argument(
        "--remote",
        default=None,
        metavar="ssh://[user@]host[:port][?python=PATH]",
        help="ask another machine over SSH instead of this host (see docs/guides/boards.md)",
    )
    parser.add_argument(
        "--ssh-config", type=Path, default=None, metavar="FILE", help="an OpenSSH config file for --remote (ssh -F)"
    )
    parser.add_argument(
        "--cluster",
        default=None,
        metavar="tls://SCHEDULER:PORT",
        help="list a Dask fleet's workers instead: each one's target and device tag, its machine, and whether "
        "it can run its target (each backend asked on the worker itself)",
    )
    add_tls_options(parser)
    add_json_option(parser, "the list as JSON")


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from targets.profiles import load_all_builtin_profiles, with_backend
    from targets.runners.choose import runner_for

    if args.cluster:
        apply_tls_options(args)
        return _list_cluster(args)
    runner = runner_for(args.remote, args.ssh_config)
    host = runner.fingerprint()
    entries: list[dict[str, Any]] = []
    for profile in load_all_builtin_profiles():
        backends = []
        for index, backend in enumerate(profile.backends):
            reasons = runner.can_run(with_backend(profile, backend.name))
            backends.append(
                {
                    "name": backend.name,
                    "default": index == 0,
                    "options": backend.options,
                    "runs_here": not reasons,
                    "reasons": reasons,
                }
            )
        entries.append(
            {
                "name": profile.name,
                "description": profile.description,
                "isa": profile.isa,
                "backends": backends,
                "batch_sizes": list(profile.batch_sizes),
                "runs_here": backends[0]["runs_here"],  # with its default backend
                "reasons": backends[0]["reasons"],
            }
        )
    if args.json:
        print(json.dumps({"host": host.as_dict(), "targets": entries}))
        return EXIT_OK
    where = f"remote host: {host.remote} " if host.remote else "host: "
    cores = f"{host.physical_cores} physical / {host.logical_cores} logical cores"
    gpus = f", GPUs: {', '.join(gpu.name for gpu in host.gpus)}" if host.gpus else ", no GPU"
    print(f"{where}{host.cpu_model} ({host.isa}, {cores}{gpus})\n")
    rows = [
        [
            entry["name"] if backend["default"] else "",
            entry["description"] if backend["default"] else "",
            _backend_text(backend),
            ", ".join(map(str, entry["batch_sizes"])) if backend["default"] else "",
            "yes" if backend["runs_here"] else "no: " + "; ".join(backend["reasons"]),
        ]
        for entry in entries
        for backend in entry["backends"]
    ]
    column = "runs there" if host.remote else "runs on this host"
    headers = ["target", "description", "backend (first: default)", "batch sizes", column]
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    print("\nchoose another backend of a target with --backend NAME")
    return EXIT_OK


def _backend_text(backend: dict[str, Any]) -> str:
    options = backend["options"]
    detail = options.get("execution_provider") or " ".join(
        str(options[key])
        for key in ("device", "mode", "dtype", "performance_hint", "inference_precision")
        if key in options
    )
    return f"{backend['name']} ({detail})" if detail else backend["name"]


def _list_cluster(args: argparse.Namespace) -> int:
    """Every worker of the fleet, asked on the worker itself whether it can run its target."""
    from tabulate import tabulate

    from targets.profiles import load_target, with_backend
    from targets.runners.agent import RemoteError
    from targets.runners.cluster import ClusterAddress, ClusterRunner, cluster_workers, connect, offered
    from targets.runners.cluster_worker import DEVICE_RESOURCE, TARGET_RESOURCE

    address = ClusterAddress.parse(args.cluster)
    workers = []
    for worker, info in sorted(cluster_workers(connect(address.scheduler)).items()):
        resources = info.get("resources") or {}
        devices = offered(resources, DEVICE_RESOURCE)
        entry: dict[str, Any] = {"name": info.get("name"), "address": worker, "devices": devices, "targets": []}
        for target in offered(resources, TARGET_RESOURCE):
            runner = ClusterRunner(address, target, pinned_worker=worker)
            try:
                host = runner.fingerprint()
                entry["host"] = host.as_dict()
                profile = load_target(target)
                backends = {spec.name: runner.can_run(with_backend(profile, spec.name)) for spec in profile.backends}
            except (RemoteError, SpeedproofError) as error:
                backends = {"-": [str(error)]}
            entry["targets"].append({"name": target, "backends": backends})
        workers.append(entry)
    if args.json:
        print(json.dumps({"cluster": address.scheduler, "workers": workers}))
        return EXIT_OK
    rows = [
        [
            entry["name"],
            entry["address"],
            target["name"],
            ", ".join(entry["devices"]) or "-",
            (entry.get("host") or {}).get("cpu_model", "?"),
            "; ".join(
                f"{backend}: " + ("yes" if not reasons else "no: " + "; ".join(reasons))
                for backend, reasons in target["backends"].items()
            ),
        ]
        for entry in workers
        for target in entry["targets"]
    ]
    print(f"cluster {address.scheduler}: {len(workers)} worker(s)\n")
    headers = ["worker", "address", "target", "device", "machine", "runs there (per backend)"]
    print(
        tabulate(rows, headers=headers, tablefmt="simple") if rows else "no workers: start one with speedproof worker"
    )
    return EXIT_OK
