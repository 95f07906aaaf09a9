#!/usr/bin/env python3
"""Do speedproof's figures on several runtimes agree with bare loops over the same files?

Two checks, for ONNX Runtime and OpenVINO (its CPU plugin, as the openvino backend compiles it):

1. Speedups: given a record of `speedproof verify ... --backend onnxruntime,openvino`, every artifact of it is
   timed in a bare in-process loop per runtime (`perf_counter_ns` around the call), the artifacts taking turns
   in each of `--rounds` rounds so drift hits all; each variant's bare speedup (median over rounds of the
   baseline's p50 over the variant's, same runtime) is printed beside the record's speedup and interval, with
   their difference (goal: within 10%), and the baselines' own ratio across runtimes likewise.
2. Overhead: the record's baseline timed by `speedproof bench --backend openvino` and by a bare OpenVINO loop,
   alternating, `--rounds` times: the ratio of p50s (bench / bare).

    python scripts/runtime_agreement.py RECORD.json [--rounds 5] [--duration-s 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import openvino as ov

from harness.measure.bench import BenchRequest, run_bench
from harness.measure.statistics import summarize_latencies_ns
from targets.runners.local import LocalRunner
from targets.runners.protocol import MeasurementProtocol


def onnxruntime_call(path: Path, threads: int) -> Callable[[dict[str, np.ndarray]], object]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(None, feed)


def openvino_call(path: Path, threads: int) -> Callable[[dict[str, np.ndarray]], object]:
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(path)), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    )
    request = compiled.create_infer_request()
    return lambda feed: request.infer(feed, share_inputs=True)


def p50_ms(call: Callable[[dict[str, np.ndarray]], object], feed: dict[str, np.ndarray], duration_s: float) -> float:
    end = time.perf_counter() + min(0.5, duration_s / 4)
    while time.perf_counter() < end:  # warm-up
        call(feed)
    latencies, end_ns = [], time.perf_counter_ns() + int(duration_s * 1e9)
    while True:
        start = time.perf_counter_ns()
        call(feed)
        stop = time.perf_counter_ns()
        latencies.append(stop - start)
        if stop >= end_ns and len(latencies) >= 10:
            return summarize_latencies_ns(latencies).p50


def feed_for(path: Path, batch_size: int) -> dict[str, np.ndarray]:
    model = ov.Core().read_model(str(path))
    feed = {}
    for port in model.inputs:
        shape = [dim.get_length() if dim.is_static else batch_size for dim in port.get_partial_shape()]
        feed[port.get_any_name()] = np.random.default_rng(0).random(shape).astype(np.float32)
    return feed


def speedup_agreement(record: dict[str, Any], rounds: int, duration_s: float) -> None:
    threads = record["target"]["resolved"]["threads"]
    batch = record["policy"]["batch_size"]
    cells = [cell for cell in record["cells"] if cell["status"] == "ok"]
    artifacts = {cell["variant"]: Path(cell["artifact"]["path"]) for cell in cells}
    backends = list(dict.fromkeys(cell["backend"] for cell in cells))
    makers = {"onnxruntime": onnxruntime_call, "openvino": openvino_call}
    feed = feed_for(artifacts["baseline"], batch)
    calls = {(b, v): makers[b](path, threads) for b in backends for v, path in artifacts.items()}
    p50s: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for round_index in range(rounds):
        for key, call in calls.items():
            p50s[key].append(p50_ms(call, feed, duration_s))
        print(f"round {round_index + 1}/{rounds}: " + ", ".join(f"{b} {v} {p50s[(b, v)][-1]:.3f} ms" for b, v in calls))
    print(f"\n{'variant':<22}{'backend':<13}{'speedproof':>28}{'bare loop':>12}{'difference':>12}")
    for cell in cells:
        key = (cell["backend"], cell["variant"])
        if cell.get("reference"):
            switch = cell.get("runtime_switch")
            if switch and switch.get("speedup"):
                ratios = [a / b for a, b in zip(p50s[(switch["from_backend"], "baseline")], p50s[key], strict=True)]
                _row(f"baseline {switch['to_backend']} vs {switch['from_backend']}", "", switch["speedup"], ratios)
            continue
        if cell.get("speedup"):
            ratios = [a / b for a, b in zip(p50s[(cell["backend"], "baseline")], p50s[key], strict=True)]
            _row(cell["variant"], cell["backend"], cell["speedup"], ratios)


def _row(name: str, backend: str, speedup: dict[str, Any], ratios: list[float]) -> None:
    bare = statistics.median(ratios)
    measured = f"{speedup['ratio']:.2f}x [{speedup['ci_low']:.2f}, {speedup['ci_high']:.2f}]"
    print(f"{name:<22}{backend:<13}{measured:>28}{bare:>11.2f}x{speedup['ratio'] / bare - 1:>+11.1%}")


def overhead(record: dict[str, Any], rounds: int, duration_s: float) -> None:
    threads = record["target"]["resolved"]["threads"]
    baseline = next(Path(c["artifact"]["path"]) for c in record["cells"] if c.get("reference"))
    feed = feed_for(baseline, 1)
    call = openvino_call(baseline, threads)
    protocol = MeasurementProtocol(min_duration_s=duration_s, max_duration_s=max(60.0, duration_s))
    bare, bench = [], []
    runner = LocalRunner()
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            bare.append(p50_ms(call, feed, duration_s))
            request = BenchRequest(
                model=str(baseline),
                batch_sizes=(1,),
                threads=threads,
                backend="openvino",
                protocol=protocol,
                out_dir=Path(folder),
            )
            result, _ = run_bench(request, runner=runner)
            bench.append(result["cells"][0]["latency_ms"]["p50"])
    ratios = [b / a for a, b in zip(bare, bench, strict=True)]
    print(f"\noverhead on openvino, {baseline.name} at batch 1, {threads} threads, {rounds} alternating rounds:")
    print(f"  bare OpenVINO loop p50 ms : {', '.join(f'{v:.3f}' for v in bare)}")
    print(f"  speedproof bench p50 ms   : {', '.join(f'{v:.3f}' for v in bench)}")
    print(f"  ratio bench/bare p50      : median {statistics.median(ratios):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("record", type=Path, help="a record of verify --backend onnxruntime,openvino")
    parser.add_argument("--rounds", type=int, default=5, help="rounds in which every artifact takes its turn")
    parser.add_argument("--duration-s", type=float, default=2.0, help="timed seconds per artifact per round")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    print(f"onnxruntime {ort.__version__}, OpenVINO {ov.get_version()}")
    speedup_agreement(record, args.rounds, args.duration_s)
    overhead(record, args.rounds, args.duration_s)


if __name__ == "__main__":
    main()
