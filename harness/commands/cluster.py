"""`speedproof cluster --local`: a Dask scheduler on this host and one `speedproof worker` per target
this host can run, to try fleets out. It prints the scheduler's address for `--cluster` and runs until
Ctrl-C or SIGTERM, which stop the workers too. A real lab starts `dask scheduler` on one machine and
`speedproof worker` on each device (README: Fleets)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from harness.commands.options import EXIT_OK
from targets.errors import SpeedproofError

NAME = "cluster"
HELP = "start a local Dask scheduler and a worker per target this host can run"
WORKER_JOIN_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start a Dask scheduler here and one measuring worker (`speedproof worker`) for every target "
        "profile this host can run; print the address to pass as --cluster; run until stopped. For a "
        "lab of devices, see the README's Fleets (dask scheduler + speedproof worker on each device, or "
        "Dask's SSHCluster)."
    )
    parser.add_argument(
        "--local", action="store_true", required=True, help="everything on this host (the only mode for now)"
    )
    parser.add_argument("--host", default="127.0.0.1", metavar="IP", help="listen address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8786, help="the scheduler's port (default: 8786; 0: any free)")
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

    dask_installed()
    quiet_dask_logs()
    targets = _runnable_targets(args.targets)
    try:
        asyncio.run(_serve(args.host, args.port, targets))
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


async def _serve(host: str, port: int, targets: list[str]) -> None:
    import asyncio
    import signal

    from distributed import Scheduler

    async with Scheduler(host=host, port=port, dashboard=False, dashboard_address=f"{host}:0") as scheduler:
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):  # stop cleanly: workers first, then the scheduler
            loop.add_signal_handler(stop_signal, lambda: asyncio.ensure_future(scheduler.close()))
        address = str(scheduler.address)
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "harness.cli", "worker"]
                + ["--scheduler", address, "--target", name, "--host", host]
            )
            for name in targets
        ]
        try:
            await _wait_for_workers(scheduler, len(workers), workers)
            print(f"scheduler at {address} with workers for {', '.join(targets)}", flush=True)
            print(f"use: speedproof verify MODEL --recipes ... --cluster {address} --target {targets[0]}", flush=True)
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
