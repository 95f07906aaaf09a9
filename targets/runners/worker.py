"""The worker process that runs where the measurement happens. Two modes:

- one cell: `python -m targets.runners.worker REQUEST.json RESULT.json` pins itself to the
  profile's CPUs, loads the artifact on its backend, checks what really ran, times cold start,
  warm-up and the timed iterations, and writes one JSON `CellResult`;
- live: `python -m targets.runners.worker --live REQUEST.json` loads and warms up, writes
  `{"status": "ready", ...}`, then answers each `{"burst_s": S}` read from stdin with
  `{"status": "ok", "latencies_ns": [...], "duration_s": ...}` (one JSON document per line) until
  `{"stop": true}`, when it writes its peak memory and exits. The A/B comparison keeps one per side;
  `--live REQUEST.json COMPANION.json` loads both sides in one process, and `{"burst_s": S, "side": 1}`
  times the companion (a fast model's pair then shares one process's speed offset).

A failure at any point becomes `{"status": "failed", "error": ..., "kind": ...}`. Running each
cell in its own process keeps caches, thread pools and memory peaks of one out of the next, and
lets the parent survive a runtime that crashes or hangs. In live mode the protocol runs on a
private copy of stdout; the real stdout points at stderr, so a runtime printing to stdout cannot
corrupt it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from targets.backends.base import TimingKind
from targets.errors import BackendFellBack, FailureKind, SpeedproofError
from targets.host.cpu_conditions import CpuConditions, available_cpus_here, condition_warnings, read_conditions
from targets.host.fingerprint import normalize_isa
from targets.host.gpu_telemetry import GpuSample, GpuSampler, GpuTelemetry, nvml_reader, slowdown_warning
from targets.quick_exit import exit_quickly
from targets.runners.base import CellResult, WorkerRequest
from targets.runners.memory_cap import MemoryExceeded, MemoryWatchdog, peak_rss_bytes
from targets.runners.protocol import MeasurementProtocol, burst_cap_s
from targets.runners.timing import TimedRun, launch_bound_figures, launch_bound_text, time_iterations, warm_up

BUSY_CPU_TIME_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")
USAGE = "usage: python -m targets.runners.worker REQUEST.json RESULT.json | --live REQUEST.json [COMPANION.json ...]"


def _system_busy_s() -> float:
    import psutil

    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in BUSY_CPU_TIME_FIELDS)


class OtherProcessesCpu:
    """Share of the host's CPU time that other processes used while the block ran (0..1)."""

    share: float = 0.0

    def __enter__(self) -> OtherProcessesCpu:
        self._busy, self._own, self._wall = _system_busy_s(), _own_cpu_s(), time.monotonic()
        return self

    def __exit__(self, *exc_info: object) -> None:
        busy_s = _system_busy_s() - self._busy
        own_s = _own_cpu_s() - self._own
        wall_s = time.monotonic() - self._wall
        total_cpus = os.cpu_count() or 1
        # the kernel counts CPU time in ticks (10 ms): over a block of tens of ms the difference can pass the wall
        # time (1.16 measured over a short cell); a share is at most the whole host
        share = max(0.0, busy_s - own_s) / (wall_s * total_cpus) if wall_s > 0 else 0.0
        self.share = round(min(1.0, share), 4)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LoadedSession:
    """An artifact loaded on its backend, checked against the input plan, with its feed ready."""

    runner: Any
    run_once: Callable[[], object]
    device_elapsed: Callable[[], int] | None  # the runner's device clock, when it times on the device
    host_enqueue: Callable[[], int] | None  # the host's share of each device iteration (launches)
    session_ms: float
    first_inference_ms: float
    rss_before_load_bytes: int
    gpu_read: Callable[[], GpuSample] | None = None  # NVML's reader, for a runner on a CUDA device
    gpu_telemetry_unavailable: str | None = None  # why a runner on a CUDA device has no NVML reader
    gpu_telemetry: GpuTelemetry = field(default_factory=GpuTelemetry)
    # every timed iteration's enqueue and device time, for the launch-bound check (device runners only)
    enqueue_ns: list[int] = field(default_factory=list)
    device_ns: list[int] = field(default_factory=list)
    # the pinned CPUs' governor and clocks and the thermal zones when timing began and when it last ended
    cpus: tuple[int, ...] = ()
    cpu_start: CpuConditions | None = None
    cpu_end: CpuConditions | None = None

    def time(self, protocol: MeasurementProtocol) -> TimedRun:
        """One timed stretch, with the GPU sampled around it, enqueue times kept and the CPU's
        conditions read at both ends."""
        if self.cpu_start is None:
            self.cpu_start = read_conditions(self.cpus)
        with self.sampling_gpu():
            timed = time_iterations(self.run_once, protocol, self.device_elapsed, self.host_enqueue)
        self.cpu_end = read_conditions(self.cpus)
        if timed.enqueue_ns:
            self.enqueue_ns.extend(timed.enqueue_ns)
            self.device_ns.extend(timed.latencies_ns)
        return timed

    @property
    def provider(self) -> str:
        return str(self.runner.actual_provider)

    def sampling_gpu(self) -> contextlib.AbstractContextManager[object]:
        """Sample the GPU's memory and clocks around timed work (adds to `gpu_telemetry`)."""
        if self.gpu_read is None:
            return contextlib.nullcontext()
        return GpuSampler(self.gpu_read, self.gpu_telemetry)

    def launch_bound(self) -> dict[str, float] | None:
        return launch_bound_figures(self.enqueue_ns, self.device_ns)

    def worker_warnings(self) -> list[str]:
        """What the worker saw while timing: a hot or clocked-down CPU, GPU clocks held down, a
        launch-bound device, no GPU telemetry."""
        warnings = []
        if self.cpu_start is not None and self.cpu_end is not None:
            on_arm = normalize_isa(platform.machine()) == "aarch64"
            warnings.extend(condition_warnings(self.cpu_start, self.cpu_end, check_clocks=on_arm))
        launch_bound = self.launch_bound()
        if launch_bound:
            warnings.append(launch_bound_text(launch_bound))
        slowed = slowdown_warning(self.gpu_telemetry.slowdowns)
        if slowed:
            warnings.append(slowed)
        if self.gpu_telemetry_unavailable:
            warnings.append(
                f"gpu telemetry: {self.gpu_telemetry_unavailable}; device memory is torch's peak allocation only "
                "and clock slowdowns during the cell are not seen"
            )
        return warnings

    def close(self) -> None:
        self.runner.deactivate()


def pin_to_cpus(request: WorkerRequest) -> None:
    """Pin this process to the request's CPUs; call before the runtime is imported, so its thread
    pools start on the pinned CPUs."""
    if request.cpu_affinity and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(request.cpu_affinity))


def load_session(request: WorkerRequest) -> LoadedSession:
    """Load the request's artifact on its backend, check its inputs, run the first inference."""
    import psutil

    from targets.backends import load_runner_class
    from targets.inputs import generate_feed

    runner_class = load_runner_class(request.backend)
    rss_before_load = psutil.Process().memory_info().rss

    runner = runner_class(request.artifact_path, request.threads, request.options)
    load_start = time.perf_counter_ns()
    runner.activate()
    try:
        session_ms = (time.perf_counter_ns() - load_start) / 1e6
        declared = {meta.name: meta for meta in runner.get_input_metadata()}
        wanted = {spec.name for spec in request.inputs}
        # a constant input (--input-value) the artifact does not take is not fed: a candidate made for
        # that value only (a 16 kHz-only model without its `sr`) is measured on the same feed otherwise
        dropped = {spec.name for spec in request.inputs if spec.name not in declared and spec.fill is not None}
        if set(declared) != wanted - dropped:
            raise SpeedproofError(f"the runtime sees inputs {sorted(declared)}, the plan has {sorted(wanted)}")
        feed = generate_feed([spec for spec in request.inputs if spec.name not in dropped], seed=request.seed)
        infer = runner.infer
        if runner.needs_synchronize:
            synchronize = runner.synchronize

            def run_once() -> object:
                outputs = infer(feed)
                synchronize()
                return outputs

        else:

            def run_once() -> object:
                return infer(feed)

        first_start = time.perf_counter_ns()
        run_once()
        first_inference_ms = (time.perf_counter_ns() - first_start) / 1e6
    except BaseException:
        runner.deactivate()
        raise
    device_elapsed = runner.device_elapsed_ns if runner.timing != TimingKind.HOST else None
    host_enqueue = None
    if device_elapsed is not None and runner.host_enqueue_ns() is not None:
        enqueue_of = runner.host_enqueue_ns

        def host_enqueue() -> int:
            return enqueue_of() or 0

    session = LoadedSession(
        runner, run_once, device_elapsed, host_enqueue, session_ms, first_inference_ms, rss_before_load
    )
    session.cpus = tuple(request.cpu_affinity) or tuple(sorted(available_cpus_here()))
    if runner.uses_gpu:
        session.gpu_read, session.gpu_telemetry_unavailable = nvml_reader(runner.cuda_device_uuid())
    return session


def memory_entry(session: LoadedSession, device_memory: dict[str, int]) -> dict[str, int]:
    peak_rss = peak_rss_bytes()
    return {
        "peak_rss_bytes": peak_rss,
        "rss_increase_bytes": max(0, peak_rss - session.rss_before_load_bytes),
        **device_memory,
        **session.gpu_telemetry.memory_entry(),
    }


def failure_result(error: BaseException) -> dict[str, Any]:
    """A failed result; `kind` says whether the backend fell back or the model did not fit the
    memory cap (verdict reasons of their own)."""
    if isinstance(error, MemoryExceeded):
        exceeded = CellResult.failed(str(error), FailureKind.MEMORY_EXCEEDED)
        return replace(exceeded, memory={"peak_rss_bytes": error.peak_bytes}).as_dict()
    message = str(error) if isinstance(error, SpeedproofError) else f"{type(error).__name__}: {error}"
    kind = FailureKind.FELL_BACK if isinstance(error, BackendFellBack) else FailureKind.ERROR
    return CellResult.failed(message, kind).as_dict()


def watch_memory(request: WorkerRequest, answer: Callable[[dict[str, Any]], None]) -> MemoryWatchdog | None:
    """Start the memory cap's watchdog for a request that has a cap: past it, `answer` gets the failed
    result and the worker ends at once (exit status 0: the answer is the result)."""
    cap = request.memory_cap_bytes
    if not cap:
        return None

    def exceeded(peak: int) -> None:
        answer(failure_result(MemoryExceeded(peak, cap)))
        os._exit(0)

    return MemoryWatchdog(cap, exceeded).start()


def finish_watching(watchdog: MemoryWatchdog | None) -> None:
    """Stop the watchdog; raise MemoryExceeded when the kernel's peak passed the cap meanwhile."""
    if watchdog is not None:
        watchdog.stop()
        watchdog.check_high_water()


def measure_cell_capped(request: WorkerRequest, answer: Callable[[dict[str, Any]], None]) -> None:
    """Measure the request's cell under its memory cap and `answer` the result (once)."""
    watchdog = watch_memory(request, answer)
    try:
        result = measure_cell(request).as_dict()
        finish_watching(watchdog)
    except Exception as error:  # any failure becomes a failed cell; the parent carries on
        traceback.print_exc(file=sys.stderr)
        result = failure_result(error)
    answer(result)


def measure_cell(request: WorkerRequest) -> CellResult:
    """Run the request's cell in this process."""
    pin_to_cpus(request)
    protocol = request.protocol
    session = load_session(request)
    try:
        warmup_iterations = warm_up(session.run_once, protocol)
        with OtherProcessesCpu() as other:
            timed = session.time(protocol)
        other_busy_share = other.share
        provider = session.provider
        runtime = session.runner.runtime_facts()
        device_memory = session.runner.device_memory()
        clock = str(session.runner.timing)
    finally:
        session.close()
    return CellResult(
        status="ok",
        provider=provider,
        latencies_ns=timed.latencies_ns,
        duration_s=timed.duration_s,
        stopped_by=str(timed.stopped_by),
        warmup_iterations=warmup_iterations,
        cold_start_ms={"session": session.session_ms, "first_inference": session.first_inference_ms},
        memory=memory_entry(session, device_memory),
        other_processes_cpu_share=round(other_busy_share, 4),
        clock=clock,
        warnings=session.worker_warnings(),
        runtime=runtime,
    )


_SEND_LOCK = threading.Lock()  # the memory watchdog's thread may answer while the main thread does


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    with _SEND_LOCK:
        channel.write(json.dumps(message) + "\n")
        channel.flush()


def serve_bursts(
    request: WorkerRequest, commands: IO[str], replies: IO[str], companions: Sequence[WorkerRequest] = ()
) -> None:
    """Load, warm up, then answer burst commands until told to stop (or stdin closes); under the
    request's memory cap, a worker past it answers a failure (MEMORY_EXCEEDED) and ends.

    With `companions`, their artifacts are loaded in this process too (side 1, 2, ... after the
    request's side 0, loaded and warmed up in that order) and each burst command's `side` picks the
    one it times: both sides of an A/B pair then share this process's own speed offset."""
    requests = [request, *companions]
    watchdog = watch_memory(request, lambda message: _send(replies, message))
    pin_to_cpus(request)
    sessions: list[LoadedSession] = []
    try:
        for each in requests:
            sessions.append(load_session(each))
        sides = [
            _ready_facts(session, warm_up(session.run_once, each.protocol))
            for each, session in zip(requests, sessions, strict=True)
        ]
        _send(replies, {"status": "ready", **sides[0], **({"sides": sides} if companions else {})})
        for line in commands:
            command = json.loads(line)
            if command.get("stop"):
                break
            side = int(command.get("side", 0))
            if not 0 <= side < len(sessions):
                raise SpeedproofError(f"burst command for side {side}; this worker has sides 0-{len(sessions) - 1}")
            burst_s = float(command["burst_s"])
            min_iterations = int(command.get("min_iterations", 1))
            burst_protocol = MeasurementProtocol(
                min_iterations=min_iterations,
                min_duration_s=burst_s,
                max_duration_s=burst_cap_s(burst_s, min_iterations),
            )
            with OtherProcessesCpu() as other:
                timed = sessions[side].time(burst_protocol)
            _send(
                replies,
                {
                    "status": "ok",
                    "latencies_ns": timed.latencies_ns,
                    "duration_s": timed.duration_s,
                    "other_cpu_share": other.share,
                },
            )
        device_memory = sessions[0].runner.device_memory()
    finally:
        for session in sessions:
            session.close()
    finish_watching(watchdog)
    warnings = [warning for session in sessions for warning in session.worker_warnings()]
    _send(
        replies,
        {
            "status": "done",
            "memory": memory_entry(sessions[0], device_memory),
            "warnings": list(dict.fromkeys(warnings)),
            "launch_bound": sessions[0].launch_bound(),
        },
    )


def _ready_facts(session: LoadedSession, warmup_iterations: int) -> dict[str, Any]:
    return {
        "provider": session.provider,
        "runtime": session.runner.runtime_facts(),
        "warmup_iterations": warmup_iterations,
        "cold_start_ms": {"session": session.session_ms, "first_inference": session.first_inference_ms},
    }


def _run_one_cell(request_path: Path, result_path: Path) -> int:
    try:
        request = WorkerRequest.from_dict(json.loads(request_path.read_text()))
    except Exception as error:  # an unreadable request is a failed cell too
        result_path.write_text(json.dumps(failure_result(error)))
        return 0

    def answer(result: dict[str, Any]) -> None:
        result_path.write_text(json.dumps(result))

    measure_cell_capped(request, answer)
    return 0


def _run_live(request_path: Path, companion_paths: Sequence[Path] = ()) -> int:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        request, *companions = (
            WorkerRequest.from_dict(json.loads(path.read_text())) for path in (request_path, *companion_paths)
        )
        serve_bursts(request, sys.stdin, replies, companions)
    except Exception as error:  # reported to the parent, which records the pair as failed
        traceback.print_exc(file=sys.stderr)
        _send(replies, failure_result(error))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "--live":
        return _run_live(Path(args[1]), [Path(arg) for arg in args[2:]])
    if len(args) == 2:
        return _run_one_cell(Path(args[0]), Path(args[1]))
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    exit_quickly(main())  # the parent waits for the exit: a stop without the interpreter's teardown
