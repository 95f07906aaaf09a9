"""The `speedproof` command line: bench, targets, demo.

Exit codes: 0 success; 1 a cell failed (the rest still ran and the record was written);
2 usage, configuration or input error (nothing measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import SpeedproofError
from harness.protocol import MeasurementProtocol

EXIT_OK = 0
EXIT_CELL_FAILED = 1
EXIT_USAGE = 2
DEMO_MODELS = ("resnet18", "mobilenet_v2")


class _Progress:
    """Progress lines on stderr, only when stderr is a terminal (or when forced)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.monotonic() - self.started:6.1f} s] {message}", file=sys.stderr, flush=True)


def _batch_list(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,8,32, got {text!r}") from None
    if not sizes or any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_protocol_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("measurement protocol")
    for item in fields(MeasurementProtocol):
        group.add_argument(
            "--" + item.name.replace("_", "-"),
            type=int if item.type in (int, "int") else float,
            default=item.default,
            metavar="N" if item.type in (int, "int") else "S",
            help=item.metadata["help"],
        )


def _add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="folder for result records; existing files are never overwritten (default %(default)s)",
    )


def _protocol_from(args: argparse.Namespace) -> MeasurementProtocol:
    return MeasurementProtocol(**{item.name: getattr(args, item.name) for item in fields(MeasurementProtocol)})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speedproof",
        description="Measure whether a (compressed) model really runs faster on the hardware it targets.",
    )
    parser.add_argument("--version", action="version", version=f"speedproof {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = commands.add_parser(
        "bench",
        help="measure latency, throughput and memory of one model on a target",
        description=(
            "Measure one model on one target profile. Each (backend, batch size) cell runs in its own "
            "worker process: load, warm up, then time every iteration until both --min-iterations and "
            "--min-duration-s are met (capped by --max-duration-s). Prints a table and writes a JSON "
            "result record to --out."
        ),
    )
    bench.add_argument(
        "model",
        metavar="MODEL",
        help="an .onnx file, a zoo name (resnet18, resnet50, mobilenet_v2, mobilenet_v3_large, "
        "efficientnet_b0; random weights, latency only), or package.module:function returning an "
        "nn.Module (with --input-shape) or (module, example_inputs)",
    )
    bench.add_argument(
        "--target",
        default=None,
        help="built-in profile name or path to a profile .toml (default: the one that suits this host: cuda-gpu "
        "with a usable GPU, else x86-cpu or arm-edge); see `speedproof targets`",
    )
    bench.add_argument(
        "--batch",
        type=_batch_list,
        default=None,
        metavar="1,8,32",
        help="batch sizes to measure (default: the profile's)",
    )
    bench.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N", help="intra-op threads (default: the profile's)"
    )
    bench.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="[NAME=]1x3x224x224",
        help="shape of an input (repeat for several inputs); the first dim is the batch and is replaced by "
        "each --batch",
    )
    _add_out_option(bench)
    bench.add_argument("--json", action="store_true", help="print the result record on stdout and nothing else")
    _add_protocol_options(bench)

    targets = commands.add_parser(
        "targets",
        help="list target profiles and whether this host can run them",
        description="List the built-in target profiles; for each, whether this host can run it and, if not, why.",
    )
    targets.add_argument("--json", action="store_true", help="print the list as JSON")

    demo = commands.add_parser(
        "demo",
        help="benchmark resnet18 and mobilenet_v2 on this host's target",
        description=(
            "The main job on a fresh machine: benchmark the built-in resnet18 and mobilenet_v2 (random "
            "weights) on the target profile that suits this host, print the tables and write records."
        ),
    )
    _add_out_option(demo)
    _add_protocol_options(demo)
    return parser


def _run_bench_command(args: argparse.Namespace) -> int:
    from harness.bench import BenchRequest, run_bench
    from harness.report_table import bench_table

    request = BenchRequest(
        model=args.model,
        target=args.target,
        batch_sizes=args.batch,
        threads=args.threads,
        input_shapes=tuple(args.input_shape),
        protocol=_protocol_from(args),
        out_dir=args.out,
    )
    progress = _Progress(enabled=sys.stderr.isatty() and not args.json)
    record, path = run_bench(request, progress=progress)
    if args.json:
        print(json.dumps(record))
    else:
        print(bench_table(record))
        print(f"\nrecord written to {path}")
    return EXIT_OK if all(cell["status"] == "ok" for cell in record["cells"]) else EXIT_CELL_FAILED


def _run_targets_command(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from targets.compatibility import reasons_host_cannot_run
    from targets.host import fingerprint_host
    from targets.profiles import load_all_builtin_profiles

    host = fingerprint_host()
    entries: list[dict[str, Any]] = []
    for profile in load_all_builtin_profiles():
        reasons = reasons_host_cannot_run(profile, host)
        entries.append(
            {
                "name": profile.name,
                "description": profile.description,
                "isa": profile.isa,
                "backends": [
                    backend.name + ":" + str(backend.options.get("execution_provider", ""))
                    for backend in profile.backends
                ],
                "batch_sizes": list(profile.batch_sizes),
                "runs_here": not reasons,
                "reasons": reasons,
            }
        )
    if args.json:
        print(json.dumps({"host": host.as_dict(), "targets": entries}))
        return EXIT_OK
    print(
        f"host: {host.cpu_model} ({host.isa}, {host.physical_cores} physical / {host.logical_cores} logical cores"
        + (f", GPUs: {', '.join(gpu.name for gpu in host.gpus)}" if host.gpus else ", no GPU")
        + ")\n"
    )
    rows = [
        [
            entry["name"],
            entry["description"],
            ", ".join(map(str, entry["batch_sizes"])),
            "yes" if entry["runs_here"] else "no: " + "; ".join(entry["reasons"]),
        ]
        for entry in entries
    ]
    print(tabulate(rows, headers=["target", "description", "batch sizes", "runs on this host"], tablefmt="simple"))
    return EXIT_OK


def _run_demo_command(args: argparse.Namespace) -> int:
    from harness.bench import BenchRequest, run_bench
    from harness.report_table import bench_table
    from targets.compatibility import default_target_name
    from targets.host import fingerprint_host

    host = fingerprint_host()
    target = default_target_name(host)
    progress = _Progress(enabled=True)
    progress(f"demo: benchmarking {', '.join(DEMO_MODELS)} on target {target} ({host.cpu_model})")
    exit_code = EXIT_OK
    for model in DEMO_MODELS:
        request = BenchRequest(model=model, target=target, protocol=_protocol_from(args), out_dir=args.out)
        record, path = run_bench(request, progress=progress, host=host)
        print(f"\n== {model} on {target} ==")
        print(bench_table(record))
        print(f"record written to {path}")
        if any(cell["status"] != "ok" for cell in record["cells"]):
            exit_code = EXIT_CELL_FAILED
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handlers = {"bench": _run_bench_command, "targets": _run_targets_command, "demo": _run_demo_command}
    try:
        return handlers[args.command](args)
    except SpeedproofError as error:
        print(f"speedproof {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; records already written are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
