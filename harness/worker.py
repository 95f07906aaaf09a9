"""The worker process that measures one cell: `python -m harness.worker REQUEST.json RESULT.json`.

Pins itself to the profile's CPUs, loads the artifact on its backend, checks what really ran,
times cold start, warm-up and the timed iterations, and writes one JSON result. Running each cell
in its own process keeps caches, thread pools and memory peaks of one cell out of the next, and
lets the parent survive a runtime that crashes or hangs.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUSY_CPU_TIME_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process.

    On Linux VmHWM is read, not ru_maxrss: ru_maxrss survives exec and so would report the
    parent's (torch-sized) peak for a freshly started worker.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def _system_busy_s() -> float:
    import psutil

    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in BUSY_CPU_TIME_FIELDS)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LoadedSession:
    """An artifact loaded on its backend, checked against the input plan, with its feed ready."""

    runner: Any
    run_once: Callable[[], object]
    session_ms: float
    first_inference_ms: float
    rss_before_load_bytes: int

    @property
    def provider(self) -> str:
        return str(self.runner.actual_provider)

    def close(self) -> None:
        self.runner.deactivate()


def pin_to_cpus(request: dict[str, Any]) -> None:
    """Pin this process to the request's CPUs; call before the runtime is imported, so its thread
    pools start on the pinned CPUs."""
    affinity = request.get("cpu_affinity")
    if affinity and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(affinity))


def load_session(request: dict[str, Any]) -> LoadedSession:
    """Load the request's artifact on its backend, check its inputs, run the first inference."""
    import psutil

    from harness.errors import SpeedproofError
    from harness.inputs import InputSpec, generate_feed
    from targets.backends import load_runner_class

    specs = [InputSpec.from_dict(item) for item in request["inputs"]]
    runner_class = load_runner_class(request["backend"])
    rss_before_load = psutil.Process().memory_info().rss

    runner = runner_class(request["artifact_path"], int(request["threads"]), request.get("options", {}))
    load_start = time.perf_counter_ns()
    runner.activate()
    try:
        session_ms = (time.perf_counter_ns() - load_start) / 1e6
        declared = {meta.name: meta for meta in runner.get_input_metadata()}
        wanted = {spec.name for spec in specs}
        if set(declared) != wanted:
            raise SpeedproofError(f"the runtime sees inputs {sorted(declared)}, the plan has {sorted(wanted)}")
        feed = generate_feed(specs, seed=int(request.get("seed", 0)))
        infer = runner.infer

        def run_once() -> object:
            return infer(feed)

        first_start = time.perf_counter_ns()
        run_once()
        first_inference_ms = (time.perf_counter_ns() - first_start) / 1e6
    except BaseException:
        runner.deactivate()
        raise
    return LoadedSession(runner, run_once, session_ms, first_inference_ms, rss_before_load)


def memory_entry(session: LoadedSession) -> dict[str, int]:
    peak_rss = peak_rss_bytes()
    return {"peak_rss_bytes": peak_rss, "rss_increase_bytes": max(0, peak_rss - session.rss_before_load_bytes)}


def failure_result(error: BaseException) -> dict[str, Any]:
    """A failed result; `kind` says whether the backend fell back (a verdict reason of its own)."""
    from harness.errors import BackendFellBack, SpeedproofError

    message = str(error) if isinstance(error, SpeedproofError) else f"{type(error).__name__}: {error}"
    return {"status": "failed", "error": message, "kind": "fell_back" if isinstance(error, BackendFellBack) else None}


def measure_cell(request: dict[str, Any]) -> dict[str, Any]:
    """Run the request's cell in this process and return the result document."""
    pin_to_cpus(request)
    from harness.measure import time_iterations, warm_up
    from harness.protocol import MeasurementProtocol

    protocol = MeasurementProtocol.from_dict(request["protocol"])
    session = load_session(request)
    try:
        warmup_iterations = warm_up(session.run_once, protocol)
        busy_before_s, own_before_s, wall_before = _system_busy_s(), _own_cpu_s(), time.monotonic()
        timed = time_iterations(session.run_once, protocol)
        busy_s = _system_busy_s() - busy_before_s
        own_s = _own_cpu_s() - own_before_s
        wall_s = time.monotonic() - wall_before
        total_cpus = os.cpu_count() or 1
        other_busy_share = max(0.0, busy_s - own_s) / (wall_s * total_cpus) if wall_s > 0 else 0.0
        provider = session.provider
    finally:
        session.close()
    return {
        "status": "ok",
        "error": None,
        "provider": provider,
        "latencies_ns": timed.latencies_ns,
        "duration_s": timed.duration_s,
        "stopped_by": timed.stopped_by,
        "warmup_iterations": warmup_iterations,
        "cold_start_ms": {"session": session.session_ms, "first_inference": session.first_inference_ms},
        "memory": memory_entry(session),
        "other_processes_cpu_share": round(other_busy_share, 4),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m harness.worker REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    request_path, result_path = Path(args[0]), Path(args[1])
    request = json.loads(request_path.read_text())
    try:
        result = measure_cell(request)
    except Exception as error:  # any failure becomes a failed cell; the parent carries on
        traceback.print_exc(file=sys.stderr)
        result = failure_result(error)
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
