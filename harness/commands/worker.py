"""`speedproof worker`: serve this device to a Dask fleet. Checks that this host can run the target,
then joins the scheduler as a one-thread worker offering `target:NAME` (and `device:TAG`), and
measures what `--cluster` runs send it until the scheduler goes away or it is stopped."""

from __future__ import annotations

import argparse
import sys

from harness.commands.options import EXIT_OK, add_tls_options, apply_tls_options, output_folder, print_whole_line
from targets.errors import SpeedproofError

NAME = "worker"
HELP = "serve this device to a Dask cluster (for --cluster runs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Join a Dask scheduler as this device's measuring worker. The worker runs one measurement at a "
        "time (one thread, resources target:NAME=1 and device:TAG=1); `speedproof bench|verify|gate --cluster "
        "ADDR --target NAME [--device TAG]` sends it cells and A/B pairs. Artifacts arrive by content hash and "
        "are kept in its cache. It checks first that this host can run the target, as `speedproof targets` does."
    )
    parser.add_argument(
        "--scheduler",
        required=True,
        metavar="ADDR",
        help="the scheduler, e.g. tls://10.0.0.2:8786 (with the TLS files) or tcp://127.0.0.1:8786",
    )
    parser.add_argument("--target", required=True, help="the target profile this device measures (name or .toml)")
    parser.add_argument(
        "--device",
        default=None,
        metavar="TAG",
        help="a device tag (h100, rpi5, ...): runs with --device TAG go only to workers with it",
    )
    parser.add_argument("--name", default=None, help="the worker's name in the cluster (default: TAG@hostname)")
    parser.add_argument(
        "--host",
        default=None,
        metavar="IP",
        help="the address to listen on and be reached at (default: every interface, which needs TLS or "
        "--insecure-plaintext; 127.0.0.1 for a local try)",
    )
    parser.add_argument(
        "--insecure-plaintext",
        action="store_true",
        help="listen in plaintext on an address other than loopback (refused otherwise): only on a network that "
        "only your own hosts reach; anyone who reaches the worker can run code as this user",
    )
    add_tls_options(parser)
    parser.add_argument(
        "--cache",
        type=output_folder,
        default=None,
        metavar="DIR",
        help="where artifacts are kept by content hash (default: ~/.cache/speedproof/board-artifacts, or "
        "$SPEEDPROOF_BOARD_CACHE)",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from targets.profiles import load_target
    from targets.runners.cluster import ClusterAddress, dask_installed
    from targets.runners.cluster_worker import quiet_dask_logs, serve, set_artifact_cache, worker_resources
    from targets.runners.fleet_probe import connection_problem, probe_scheduler
    from targets.runners.fleet_security import check_bindable, check_listening, check_tls_for
    from targets.runners.local import LocalRunner

    dask_installed()
    quiet_dask_logs()
    scheduler = ClusterAddress.parse(args.scheduler).scheduler
    apply_tls_options(args)
    scheme = scheduler.partition("://")[0]
    check_tls_for(scheme, "worker", "speedproof worker")
    check_listening(args.host, scheme == "tls", args.insecure_plaintext, "speedproof worker")
    check_bindable(args.host, "speedproof worker")
    profile = load_target(args.target)
    reasons = LocalRunner().can_run(profile)
    if reasons:
        raise SpeedproofError(f"this host cannot run target {profile.name}: {'; '.join(reasons)}")
    set_artifact_cache(args.cache)
    offered = ", ".join(worker_resources(profile.name, args.device))
    probe_scheduler(scheduler, "worker")  # a certificate refused, plaintext to TLS: said now, not retried forever

    def ready(address: str) -> None:
        print_whole_line(f"worker at {address} joined {scheduler}, offering {offered}")

    try:
        asyncio.run(serve(scheduler, profile.name, args.device, args.name, args.host, on_ready=ready))
    except (OSError, TimeoutError, RuntimeError) as error:  # RuntimeError: Dask's "failed to start" (a bind)
        raise SpeedproofError(
            f"cannot join the scheduler at {scheduler}: {connection_problem(error, scheduler)}"
            + (f" (listening on --host {args.host})" if args.host else "")
        ) from None
    print("worker stopped: the scheduler closed or the worker was asked to leave", file=sys.stderr)
    return EXIT_OK
