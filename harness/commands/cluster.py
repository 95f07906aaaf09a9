"""`speedproof cluster --local`: a Dask scheduler on this host and one `speedproof worker` per target
this host can run, to try fleets out. It prints the scheduler's address for `--cluster` and runs until
Ctrl-C or SIGTERM, which stop the workers too. A real lab starts `dask scheduler` on one machine and
`speedproof worker` on each device (docs/guides/fleets.md)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from harness.commands.options import EXIT_OK, add_tls_options, output_folder, port_number, print_whole_line
from targets.errors import SpeedproofError
from targets.runners.fleet_security import FleetTLS, is_loopback

NAME = "cluster"
HELP = "start a local Dask scheduler and a worker per target this host can run"
WORKER_JOIN_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start a Dask scheduler here and one measuring worker (`speedproof worker`) for every target "
        "profile this host can run; print the address to pass as --cluster; run until stopped. For a "
        "lab of devices, see docs/guides/fleets.md (dask scheduler + speedproof worker on each device, or "
        "Dask's SSHCluster)."
    )
    parser.add_argument(
        "--local", action="store_true", required=True, help="everything on this host (the only mode for now)"
    )
    parser.add_argument("--host", default="127.0.0.1", metavar="IP", help="listen address (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=8786, help="the scheduler's port (default: 8786; 0: any free)"
    )
    parser.add_argument(
        "--tls",
        type=output_folder,
        default=None,
        metavar="DIR",
        help="TLS with mutual authentication: use (or first make) the fleet's CA and certificate in DIR (ca.pem, "
        "fleet.pem, fleet-key.pem); the scheduler is then tls:// and every client needs those files",
    )
    add_tls_options(parser)
    parser.add_argument(
        "--insecure-plaintext",
        action="store_true",
        help="listen in plaintext on an address other than loopback (refused otherwise)",
    )
    parser.add_argument(
        "--targets",
        default=None,
        metavar="NAME[,NAME...]",
        help="start workers for these targets only (default: every built-in profile this host can run)",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from targets.runners.cluster import dask_installed
    from targets.runners.cluster_worker import quiet_dask_logs
    from targets.runners.fleet_certificates import ensure_certificates
    from targets.runners.fleet_security import FleetTLS, check_listening

    dask_installed()
    quiet_dask_logs()
    tls = FleetTLS(args.tls_ca_file, args.tls_cert, args.tls_key)
    if args.tls is not None:
        if tls.given:
            raise SpeedproofError(
                "--tls DIR makes or uses the files in DIR; give it or --tls-ca-file/--tls-cert/--tls-key"
            )
        made = ensure_certificates(args.tls)
        tls = FleetTLS(made.ca_file, made.cert, made.key)
    tls.apply()
    check_listening(args.host, tls.given, args.insecure_plaintext, "speedproof cluster")
    targets = _runnable_targets(args.targets)
    try:
        asyncio.run(_serve(args.host, args.port, targets, tls))
    except OSError as error:
        raise SpeedproofError(f"cannot start a scheduler on {args.host}:{args.port}: {error}") from None
    return EXIT_OK


def _runnable_targets(names: str | None) -> list[str]:
    from targets.profiles import load_all_builtin_profiles, load_target
    from targets.runners.local import LocalRunner

    runner = LocalRunner()
    profiles = (
        [load_target(name.strip()) for name in names.split(",") if name.strip()]
        if names
        else load_all_builtin_profiles()
    )
    runnable = []
    for profile in profiles:
        reasons = runner.can_run(profile)
        if reasons:
            print(f"no worker for {profile.name}: {'; '.join(reasons)}", file=sys.stderr)
        else:
            runnable.append(profile.name)
    if not runnable:
        raise SpeedproofError("this host can run none of the targets, so there is nothing to serve")
    return runnable


async def _serve(host: str, port: int, targets: list[str], tls: FleetTLS) -> None:
    import asyncio
    import signal

    from distributed import Scheduler

    protocol = "tls" if tls.given else "tcp"
    tls_flags = (
        ["--tls-ca-file", str(tls.ca_file), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)] if tls.given else []
    )
    async with Scheduler(
        host=host, port=port, protocol=protocol, dashboard=False, dashboard_address=f"{host}:0"
    ) as scheduler:
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):  # stop cleanly: workers first, then the scheduler
            loop.add_signal_handler(stop_signal, lambda: asyncio.ensure_future(scheduler.close()))
        address = str(scheduler.address)
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "harness.cli", "worker"]
                + ["--scheduler", address, "--target", name, "--host", host, *tls_flags]
                + (["--insecure-plaintext"] if not tls.given and not is_loopback(host) else [])
            )
            for name in targets
        ]
        try:
            await _wait_for_workers(scheduler, len(workers), workers)
            print_whole_line(f"scheduler at {address} with workers for {', '.join(targets)}")
            print_whole_line(
                f"use: speedproof verify MODEL --recipes ... --cluster {address} --target {targets[0]}"
                + ("" if not tls.given else " " + " ".join(tls_flags))
            )
            await scheduler.finished()
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()


async def _wait_for_workers(scheduler: object, count: int, workers: list[subprocess.Popen[bytes]]) -> None:
    import asyncio

    deadline = time.monotonic() + WORKER_JOIN_TIMEOUT_S
    while len(scheduler.workers) < count:  # type: ignore[attr-defined]
        ended = [worker for worker in workers if worker.poll() is not None]
        if ended:
            raise SpeedproofError(f"a worker exited with code {ended[0].returncode} before joining (see above)")
        if time.monotonic() > deadline:
            raise SpeedproofError(f"the workers did not join within {WORKER_JOIN_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.2)
