"""The runner for this host: one-shot cells and live A/B workers in fresh local worker processes
(`python -m targets.runners.worker`), surviving a worker that crashes or hangs.

A one-shot worker gets its request and writes its result as JSON files in a private temporary
folder; its stderr goes to a file there, so a crash can be explained.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from targets.errors import FailureKind
from targets.runners.base import BurstWorker, CellResult, Runner, SharedBurstWorker, WorkerRequest
from targets.runners.live import DEFAULT_LIVE_WORKER_COMMAND, LiveWorker
from targets.runners.processes import python_module_command, run_to_end, signal_name, stderr_tail

if TYPE_CHECKING:
    import numpy as np

    from targets.host.fingerprint import HostFingerprint
    from targets.profiles import BackendSpec, TargetProfile

DEFAULT_WORKER_COMMAND = python_module_command("targets.runners.worker")


class LocalRunner(Runner):
    """Measures on this host, each cell or A/B side in a worker process of its own."""

    shares_this_host = True

    def __init__(
        self,
        worker_command: Sequence[str] = DEFAULT_WORKER_COMMAND,
        live_worker_command: Sequence[str] = DEFAULT_LIVE_WORKER_COMMAND,
        host: HostFingerprint | None = None,
    ) -> None:
        self.worker_command = tuple(worker_command)
        self.live_worker_command = tuple(live_worker_command)
        self._host = host

    def fingerprint(self) -> HostFingerprint:
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> HostFingerprint:
        from targets.host.fingerprint import fingerprint_host

        return self._host or fingerprint_host()

    def can_run(self, profile: TargetProfile) -> list[str]:
        from targets.runners.compatibility import reasons_host_cannot_run

        return reasons_host_cannot_run(profile, self.fingerprint())

    def start_live_worker(self, request: WorkerRequest, label: str) -> BurstWorker:
        return LiveWorker(request, label, command=self.live_worker_command)

    def start_shared_live_worker(self, requests: Sequence[WorkerRequest], label: str) -> SharedBurstWorker:
        first, *companions = requests
        return LiveWorker(first, label, command=self.live_worker_command, companions=companions)

    def outputs(
        self, artifact_path: str, backend: BackendSpec, threads: int, feeds: Sequence[dict[str, np.ndarray]]
    ) -> list[list[np.ndarray]]:
        # on this host, in this process: the runtime is the one the workers use
        from targets.backends import load_runner_class
        from targets.inputs import fed_only

        runner = load_runner_class(backend.name)(artifact_path, threads, backend.options)
        with runner:
            taken = {meta.name for meta in runner.get_input_metadata()}  # a candidate may lack a constant input
            return [runner.outputs_as_numpy(runner.infer(fed_only(feed, taken))) for feed in feeds]

    def run_cell(self, request: WorkerRequest, timeout_s: float) -> CellResult:
        """Return the worker's result, or a failed result saying how the worker died."""
        with tempfile.TemporaryDirectory(prefix="speedproof-cell-") as folder:
            request_path = Path(folder) / "request.json"
            result_path = Path(folder) / "result.json"
            stderr_path = Path(folder) / "stderr.txt"
            request_path.write_text(json.dumps(request.as_dict()))
            returncode = run_to_end([*self.worker_command, str(request_path), str(result_path)], stderr_path, timeout_s)
            if returncode is None:
                return CellResult.failed(
                    f"worker hung: killed after {timeout_s:.0f} s without finishing", FailureKind.HUNG
                )
            if returncode < 0:
                tail = stderr_tail(stderr_path)
                return CellResult.failed(
                    f"worker crashed with {signal_name(returncode)}" + (f"; its last output:\n{tail}" if tail else ""),
                    FailureKind.CRASHED,
                )
            if not result_path.exists():
                tail = stderr_tail(stderr_path)
                return CellResult.failed(
                    f"worker exited with code {returncode} and wrote no result"
                    + (f"; its last output:\n{tail}" if tail else ""),
                    FailureKind.CRASHED,
                )
            try:
                return CellResult.from_dict(json.loads(result_path.read_text()))
            except (json.JSONDecodeError, TypeError, ValueError) as error:
                return CellResult.failed(f"worker wrote an unreadable result: {error}", FailureKind.CRASHED)
