"""Does the torch backend measure what a bare loop over the same module measures?

For a zoo model (default resnet18; resnet50 on a GPU host), the script exports the baseline as a
torch.export program and, in the same run, times it (a) through speedproof's torch backend in a
real worker process and (b) in a bare loop in this process over the same program's module: on the
CPU `perf_counter_ns` around each call under `torch.inference_mode()`; on CUDA a CUDA-event pair
around each call (and a graph replay for cuda-graph). Rounds alternate (bare, backend, bare, ...)
so drift hits both; it prints each p50 and the backend/bare ratio per round and their median.
Goal: ratio <= 1.02 (the backend adds no measurable overhead).

On a CUDA host it then runs the issue's verification: `speedproof compare MODEL --target cuda-gpu`
and `speedproof verify MODEL --backend torch` with structured:0.5, structured:0.5:round_to=8,
unstructured:0.9, semi-structured and fp16 at batch 1 and 64, eager and cuda-graph.
The CUDA part has not yet run on a GPU.

    python scripts/torch_backend_check.py [--model resnet18] [--batch 1,8] [--rounds 3] [--modes eager]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exporters.artifacts import artifact_at
from exporters.torch_program import export_program
from harness.models.sources import cache_dir
from harness.models.zoo import zoo_model
from targets.backends.torch.programs import load_program, program_input_values
from targets.inputs import resolve_input_specs
from targets.runners.base import WorkerRequest
from targets.runners.compatibility import resolve_target
from targets.runners.local import LocalRunner
from targets.runners.protocol import MeasurementProtocol

GOAL = 1.02
PROTOCOL = MeasurementProtocol(min_iterations=50, min_duration_s=2.0, max_duration_s=30.0)
GPU_RECIPES = "structured:0.5,structured:0.5:round_to=8,unstructured:0.9,semi-structured,fp16"


def bare_cpu_p50_ms(path: Path, batch: int, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    program, _ = load_program(path)
    module = program.module()
    example = torch.randn(batch, *program_input_shape(program))
    with torch.inference_mode():
        warm_end = time.perf_counter() + 0.5
        while time.perf_counter() < warm_end:
            module(example)
        latencies = []
        end = time.perf_counter() + PROTOCOL.min_duration_s
        while time.perf_counter() < end or len(latencies) < PROTOCOL.min_iterations:
            before = time.perf_counter_ns()
            module(example)
            latencies.append(time.perf_counter_ns() - before)
    return statistics.median(latencies) / 1e6


def bare_cuda_p50_ms(path: Path, batch: int, mode: str) -> float:
    """CUDA events around each call (eager) or each replay (cuda-graph), fp16 as the profile."""
    import torch

    program, _ = load_program(path)
    module = program.module().to("cuda").half()
    example = torch.randn(batch, *program_input_shape(program), device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        call = lambda: module(example)  # noqa: E731
        if mode == "cuda-graph":
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    module(example)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                module(example)
            call = graph.replay
        for _ in range(20):
            call()
        torch.cuda.synchronize()
        latencies = []
        end = time.perf_counter() + PROTOCOL.min_duration_s
        while time.perf_counter() < end or len(latencies) < PROTOCOL.min_iterations:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            stop.record()
            stop.synchronize()
            latencies.append(start.elapsed_time(stop))
    return statistics.median(latencies)


def program_input_shape(program: object) -> tuple[int, ...]:
    (value,) = program_input_values(program)
    return tuple(int(dim) for dim in value.shape[1:])


def backend_p50_ms(path: Path, batch: int, target: str, options: dict[str, str], threads: int | None) -> float:
    runner = LocalRunner()
    resolved = resolve_target(target, threads, runner, "torch")
    backend = resolved.profile.backends[0]
    backend = type(backend)(backend.name, {**backend.options, **options})
    kind = artifact_at(path).kind
    specs = resolve_input_specs(kind.model_inputs(kind.load_checked(path)), batch, {})
    result = runner.run_cell(WorkerRequest.for_cell(str(path), backend, resolved, specs, batch, PROTOCOL), 600)
    if result.status != "ok":
        raise SystemExit(f"the torch backend failed: {result.error}")
    return statistics.median(result.latencies_ns) / 1e6


def compare_rounds(label: str, rounds: int, bare: object, backend: object) -> float:
    ratios = []
    for number in range(1, rounds + 1):
        bare_ms = bare()  # type: ignore[operator]
        backend_ms = backend()  # type: ignore[operator]
        ratios.append(backend_ms / bare_ms)
        print(f"  {label} round {number}: bare {bare_ms:.3f} ms, backend {backend_ms:.3f} ms, ratio {ratios[-1]:.3f}")
    median = statistics.median(ratios)
    print(f"{label}: median ratio backend/bare {median:.3f} ({'meets' if median <= GOAL else 'misses'} <= {GOAL})")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="zoo model (default resnet18 on a CPU, resnet50 on a GPU)")
    parser.add_argument("--batch", default=None, help="batch sizes (default 1,8 on a CPU, 1,64 on a GPU)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=None, help="torch backend modes (default eager on a CPU, eager,cuda-graph)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the profile's)")
    args = parser.parse_args()

    import torch

    on_gpu = torch.cuda.is_available()
    model = args.model or ("resnet50" if on_gpu else "resnet18")
    batches = [int(b) for b in (args.batch or ("1,64" if on_gpu else "1,8")).split(",")]
    modes = (args.modes or ("eager,cuda-graph" if on_gpu else "eager")).split(",")
    target = "cuda-gpu" if on_gpu else "x86-cpu"
    threads = args.threads or resolve_target(target, None, LocalRunner(), "torch").threads
    print(
        f"{model} on {torch.cuda.get_device_name() if on_gpu else 'cpu'}, torch {torch.__version__}, {threads} threads"
    )

    with tempfile.TemporaryDirectory(prefix="speedproof-torch-check-") as folder:
        torch_model = zoo_model(model).load(cache_dir() / "zoo", lambda message: None)
        names = list(torch_model.input_names or ["input"])
        path = export_program(torch_model.module, torch_model.example_inputs, Path(folder) / f"{model}.pt2", names)
        worst = 0.0
        for mode in modes:
            for batch in batches:
                label = f"{mode} batch {batch}"
                if on_gpu:
                    options = {"device": "cuda", "mode": mode, "dtype": "float16"}
                    bare = lambda b=batch, m=mode: bare_cuda_p50_ms(path, b, m)  # noqa: E731
                else:
                    options = {"device": "cpu", "mode": mode}
                    bare = lambda b=batch: bare_cpu_p50_ms(path, b, threads)  # noqa: E731
                measured = lambda b=batch, o=options: backend_p50_ms(path, b, target, o, threads)  # noqa: E731
                worst = max(worst, compare_rounds(label, args.rounds, bare, measured))
        print(f"worst median ratio {worst:.3f}: {'meets' if worst <= GOAL else 'misses'} the goal <= {GOAL}")

    if on_gpu:
        commands = [["compare", model, "--target", "cuda-gpu", "--batch-sizes", "1,64"]]
        for mode in ("eager", "cuda-graph"):
            backend = f"torch:mode={mode}"
            commands.append(
                ["verify", model, "--target", "cuda-gpu", "--backend", backend, "--recipes", GPU_RECIPES]
                + ["--batch-sizes", "1,64"]
            )
        for command in commands:
            print(f"\n$ speedproof {' '.join(command)}", flush=True)
            subprocess.run([sys.executable, "-m", "harness.cli", *command], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
