#!/usr/bin/env python3
"""How much does `speedproof bench` add to what it measures?

Times the same ONNX model two ways, in alternating rounds so machine drift hits both:
a bare in-process ONNX Runtime loop (`perf_counter_ns` around `session.run`), and
`speedproof bench` (worker process, pinned threads, the full protocol). Two models: a ~5 ms
conv stack and a tiny (<0.1 ms) one. Prints the ratio of p50s (goal <= 1.02 on the ~5 ms model)
and the per-iteration overhead in microseconds (goal <= 10 us).

    python scripts/bench_overhead.py [--rounds 8] [--duration-s 2] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from harness.measure.bench import BenchRequest, run_bench
from harness.measure.statistics import summarize_latencies_ns
from targets.profiles import load_target, resolve_profile
from targets.runners.local import LocalRunner
from targets.runners.protocol import MeasurementProtocol


def conv_stack_model(channels: int, size: int, layers: int) -> onnx.ModelProto:
    """`layers` 3x3 convolutions with ReLU on a [batch, channels, size, size] input."""
    rng = np.random.default_rng(0)
    nodes, initializers, current = [], [], "input"
    for index in range(layers):
        weight = numpy_helper.from_array(
            (rng.standard_normal((channels, channels, 3, 3)) * 0.05).astype(np.float32), f"w{index}"
        )
        initializers.append(weight)
        nodes.append(helper.make_node("Conv", [current, f"w{index}"], [f"c{index}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        current = f"r{index}"
    graph = helper.make_graph(
        nodes,
        "conv_stack",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, size, size])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", channels, size, size])],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def tiny_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["output"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 16])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def bare_loop_p50_ms(path: Path, feed: dict[str, np.ndarray], threads: int, protocol: MeasurementProtocol) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    end = time.perf_counter() + protocol.warmup_min_duration_s
    while time.perf_counter() < end:
        session.run(None, feed)
    latencies, end = [], time.perf_counter_ns() + int(protocol.min_duration_s * 1e9)
    while True:
        start = time.perf_counter_ns()
        session.run(None, feed)
        stop = time.perf_counter_ns()
        latencies.append(stop - start)
        if stop >= end and len(latencies) >= protocol.min_iterations:
            break
    return summarize_latencies_ns(latencies).p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="alternating bare/bench rounds per model")
    parser.add_argument("--duration-s", type=float, default=2.0, help="timed seconds per measurement")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the x86-cpu profile's)")
    args = parser.parse_args()

    runner = LocalRunner()
    host = runner.fingerprint()
    threads = args.threads or resolve_profile(load_target("x86-cpu"), host).threads
    protocol = MeasurementProtocol(min_duration_s=args.duration_s, max_duration_s=max(60.0, args.duration_s))
    print(f"host: {host.cpu_model}, {host.logical_cores} CPUs, onnxruntime {ort.__version__}, {threads} threads")
    print(f"{args.rounds} alternating rounds per model, {args.duration_s} s timed per measurement\n")
    with tempfile.TemporaryDirectory() as folder:
        models = {
            "conv-stack (~5 ms)": (conv_stack_model(channels=64, size=56, layers=1), (1, 64, 56, 56)),
            "tiny relu (<0.1 ms)": (tiny_model(), (1, 16)),
        }
        for label, (model, shape) in models.items():
            path = Path(folder) / f"{label.split()[0]}.onnx"
            onnx.save(model, path)
            feed = {"input": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
            bare, bench, loop_overhead_us = [], [], []
            for _ in range(args.rounds):
                bare.append(bare_loop_p50_ms(path, feed, threads, protocol))
                request = BenchRequest(
                    model=str(path), batch_sizes=(1,), threads=threads, protocol=protocol, out_dir=Path(folder) / "r"
                )
                record, _ = run_bench(request, runner=runner)
                cell = record["cells"][0]
                bench.append(cell["latency_ms"]["p50"])
                # wall time of the timed phase not covered by any timed interval: the loop's own cost
                untimed_s = cell["duration_s"] - sum(cell["latencies_ns"]) / 1e9
                loop_overhead_us.append(untimed_s / cell["iterations"] * 1e6)
            ratios = [b / a for a, b in zip(bare, bench, strict=True)]
            differences_us = [(b - a) * 1000 for a, b in zip(bare, bench, strict=True)]
            print(f"{label}")
            print(f"  bare ORT loop p50 ms : {_join(bare, 4)}")
            print(f"  speedproof bench p50 : {_join(bench, 4)}")
            print(f"  ratio bench/bare p50 : median {statistics.median(ratios):.3f} (rounds: {_join(ratios, 3)})")
            print(f"  ratio of best p50s   : {min(bench) / min(bare):.3f} (best of each side: drift removed)")
            print(f"  p50 difference       : median {statistics.median(differences_us):+.2f} us per iteration")
            print(f"  untimed loop cost    : median {statistics.median(loop_overhead_us):.2f} us per iteration\n")


def _join(values: list[float], digits: int) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in values)


if __name__ == "__main__":
    main()
