"""A worker that stays alive and times bursts on demand: `python -m harness.live_worker REQUEST.json`.

The A/B comparison keeps one of these per side and alternates bursts between them, so drift of a
noisy machine hits both. Protocol (one JSON document per line): the worker loads the artifact,
warms up and writes `{"status": "ready", ...}`; then for each `{"burst_s": S}` read from stdin it
times iterations for S seconds (at least one) and writes `{"status": "ok", "latencies_ns": [...],
"duration_s": ...}`; on `{"stop": true}` it writes its peak memory and exits. A failure at any
point writes `{"status": "failed", "error": ..., "kind": ...}` and exits.

The protocol runs on a private copy of stdout; the real stdout is pointed at stderr so that a
runtime printing to stdout cannot corrupt it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from harness.worker import failure_result, load_session, memory_entry, pin_to_cpus


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def serve(request: dict[str, Any], commands: IO[str], replies: IO[str]) -> None:
    """Load, warm up, then answer burst commands until told to stop (or stdin closes)."""
    pin_to_cpus(request)
    from harness.measure import time_iterations, warm_up
    from harness.protocol import MeasurementProtocol

    protocol = MeasurementProtocol.from_dict(request["protocol"])
    session = load_session(request)
    try:
        warmup_iterations = warm_up(session.run_once, protocol)
        _send(
            replies,
            {
                "status": "ready",
                "provider": session.provider,
                "warmup_iterations": warmup_iterations,
                "cold_start_ms": {"session": session.session_ms, "first_inference": session.first_inference_ms},
            },
        )
        for line in commands:
            command = json.loads(line)
            if command.get("stop"):
                break
            burst_s = float(command["burst_s"])
            burst_protocol = MeasurementProtocol(min_iterations=1, min_duration_s=burst_s, max_duration_s=burst_s)
            timed = time_iterations(session.run_once, burst_protocol)
            _send(replies, {"status": "ok", "latencies_ns": timed.latencies_ns, "duration_s": timed.duration_s})
    finally:
        session.close()
    _send(replies, {"status": "done", "memory": memory_entry(session)})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.live_worker REQUEST.json", file=sys.stderr)
        return 2
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(json.loads(Path(args[0]).read_text()), sys.stdin, replies)
    except Exception as error:  # reported to the parent, which records the pair as failed
        traceback.print_exc(file=sys.stderr)
        _send(replies, failure_result(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
