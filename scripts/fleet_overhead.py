"""Does measuring through a Dask fleet change what is measured?

Starts `speedproof cluster --local` (a scheduler and an x86-cpu worker on 127.0.0.1, this host),
then measures the same artifact as one-shot cells alternately here (LocalRunner) and on the worker
(ClusterRunner), ROUNDS times each, and prints each side's median p50 and their ratio, plus the
wall time a cell costs on each side (the fleet's hand-offs: artifact by hash, a task, a fresh
process). The timing loop runs on the device in both cases, so the p50 ratio should be ~1.00;
the wall-time difference is the transport's overhead per cell.

    python scripts/fleet_overhead.py [MODEL.onnx] [--rounds 8] [--batch 1]

Without a model it exports a small conv net. Ratios come from one run; the host is shared.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from targets.inputs import InputSpec
from targets.profiles import load_target, resolve_profile
from targets.runners.base import WorkerRequest
from targets.runners.cluster import ClusterAddress, ClusterRunner, disconnect_all
from targets.runners.local import LocalRunner
from targets.runners.protocol import MeasurementProtocol


def _small_model(folder: Path) -> Path:
    import torch

    from exporters.torch_to_onnx import export_to_onnx

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()
    return export_to_onnx(module, [torch.randn(1, 3, 64, 64)], folder / "small_conv.onnx")


def _start_cluster() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "harness.cli", "cluster", "--local", "--port", "0", "--targets", "x86-cpu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("scheduler at "):
            return process, line.split()[2]
    raise SystemExit(f"speedproof cluster --local exited with code {process.wait()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", type=Path, help="an .onnx file (default: a small conv net)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="speedproof-fleet-") as scratch:
        model = args.model or _small_model(Path(scratch))
        cluster, scheduler = _start_cluster()
        try:
            local = LocalRunner()
            remote = ClusterRunner(ClusterAddress(scheduler), "x86-cpu")
            resolved = resolve_profile(load_target("x86-cpu"), local.fingerprint(), None, local.available_cpus())
            import onnx

            graph_input = onnx.load(str(model)).graph.input[0]
            shape = tuple([args.batch] + [dim.dim_value or 1 for dim in graph_input.type.tensor_type.shape.dim][1:])
            request = WorkerRequest.for_cell(
                str(model),
                resolved.profile.backends[0],
                resolved,
                [InputSpec(name=graph_input.name, dtype="float32", shape=shape)],
                args.batch,
                MeasurementProtocol(),
            )
            figures: dict[str, tuple[list[float], list[float]]] = {"here": ([], []), "fleet worker": ([], [])}
            for _ in range(args.rounds):
                for name, runner in (("here", local), ("fleet worker", remote)):
                    started = time.perf_counter()
                    result = runner.run_cell(request, timeout_s=300)
                    wall = time.perf_counter() - started
                    if not result.ok:
                        raise SystemExit(f"{name}: {result.error}")
                    figures[name][0].append(statistics.median(result.latencies_ns) / 1e6)
                    figures[name][1].append(wall)
            rows = [
                [name, f"{statistics.median(p50s):.4f}", f"{statistics.median(walls):.2f}"]
                for name, (p50s, walls) in figures.items()
            ]
            print(tabulate(rows, headers=["measured", "median p50 ms", "median wall s per cell"]))
            ratio = statistics.median(figures["fleet worker"][0]) / statistics.median(figures["here"][0])
            overhead = statistics.median(figures["fleet worker"][1]) - statistics.median(figures["here"][1])
            print(f"\np50 ratio fleet/here: {ratio:.3f}; transport overhead per cell: {overhead:+.2f} s")
        finally:
            disconnect_all()
            cluster.terminate()
            cluster.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
