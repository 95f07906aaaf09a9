"""What one board-agent step costs over SSH, with a fresh connection per step and on the shared one.

Alternates the same cheap step (`has` of a hash the board does not hold: the agent starts, answers,
exits) with a fresh connection (multiplexing off) and on this process's shared connection
(OpenSSH ControlMaster, what `--remote ssh://` uses), ROUNDS times each, and prints each side's
median wall time per step and their ratio. A verify or gate run makes a few steps per artifact and
batch size (has/put, cell, live workers, outputs), so the difference times that count is what
sharing saves per run.

    python scripts/ssh_step_overhead.py --remote ssh://user@board [--ssh-config FILE] [--rounds 20]
    python scripts/ssh_step_overhead.py --loopback      # a throwaway sshd on 127.0.0.1 (tests/ssh_board.py)

Figures come from one run; the host is shared.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from targets.runners.ssh import SshAddress, SshRunner, stop_masters

ABSENT = "0" * 64


def _step_s(runner: SshRunner) -> float:
    started = time.perf_counter()
    runner.json_step(["has", ABSENT, "probe.onnx"], {})
    return time.perf_counter() - started


class _FreshConnections(SshRunner):
    def _control_options(self) -> list[str]:
        return []


def measure(address: SshAddress, ssh_config: Path | None, rounds: int) -> list[list[object]]:
    fresh, shared = _FreshConnections(address, ssh_config), SshRunner(address, ssh_config)
    first_shared = _step_s(shared)  # authenticates and leaves the master behind
    _step_s(fresh)
    fresh_s, shared_s = [], []
    for _ in range(rounds):
        fresh_s.append(_step_s(fresh))
        shared_s.append(_step_s(shared))
    fresh_ms, shared_ms = statistics.median(fresh_s) * 1e3, statistics.median(shared_s) * 1e3
    return [
        ["fresh connection per step", rounds, f"{fresh_ms:.0f}", ""],
        ["shared connection (ControlMaster)", rounds, f"{shared_ms:.0f}", f"{shared_ms / fresh_ms:.2f}"],
        ["first step (opens the shared one)", 1, f"{first_shared * 1e3:.0f}", ""],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--remote", help="ssh://[user@]host[:port][?python=PATH] of a board with speedproof")
    where.add_argument("--loopback", action="store_true", help="start a throwaway sshd on 127.0.0.1 (needs sshd)")
    parser.add_argument("--ssh-config", type=Path, help="ssh -F FILE")
    parser.add_argument("--rounds", type=int, default=20, help="steps per side (default 20)")
    args = parser.parse_args()
    board = None
    if args.loopback:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.ssh_board import MISSING, start_board

        if MISSING:
            parser.error(f"--loopback {MISSING}")
        board = start_board(Path(tempfile.mkdtemp(prefix="speedproof-ssh-board-")))
        address, ssh_config = SshAddress.parse(board.url(sys.executable)), board.config
    else:
        address, ssh_config = SshAddress.parse(args.remote), args.ssh_config
    try:
        rows = measure(address, ssh_config, args.rounds)
    finally:
        stop_masters()
        if board is not None:
            board.stop()
            shutil.rmtree(board.folder.parent, ignore_errors=True)
    print(f"one agent step on {address}, median of {args.rounds} alternating rounds:")
    print(tabulate(rows, headers=["transport", "steps", "ms/step", "ratio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
