"""The `speedproof` command line: bench, variants, verify, gate, compare, report, targets, demo.

Exit codes: 0 success; 1 a cell or variant failed (the rest still ran and the record was written);
2 usage, configuration or input error (nothing measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import SpeedproofError
from harness.protocol import MeasurementProtocol

EXIT_OK = 0
EXIT_CELL_FAILED = 1
EXIT_USAGE = 2
DEMO_MODELS = ("digits-cnn", "resnet18")


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


def _add_policy_options(parser: argparse.ArgumentParser, with_file: bool = True) -> None:
    from harness.policy import policy_fields

    group = parser.add_argument_group(
        "verification policy (each overrides the policy file or config, which overrides the target profile's defaults)"
    )
    if with_file:
        group.add_argument(
            "--policy",
            type=Path,
            default=None,
            metavar="FILE",
            help="TOML file with a [policy] table (keys as the options below, with underscores)",
        )
    for name, item in policy_fields().items():
        kind = {"str": str, "int": int, "float": float}[str(item.type)]
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"policy_{name}",
            type=kind,
            default=None,
            choices=item.metadata.get("choices"),
            metavar=None if item.metadata.get("choices") else {"int": "N", "float": "X"}.get(str(item.type), "S"),
            help=f"{item.metadata['help']} (default {item.default})",
        )


def _policy_overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    from harness.policy import policy_fields

    return {name: getattr(args, f"policy_{name}") for name in policy_fields()}


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


def _add_recipe_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--recipes",
        "--recipe",
        dest="recipes",
        action="append",
        required=required,
        default=[],
        metavar="LIST",
        help="compression recipes, comma-separated or repeated: name[:value][:key=value...], chains with + "
        "(applied left to right, torch-level first), e.g. structured:0.5:round_to=8,unstructured:0.9,"
        "structured:0.5+int8-static. The baseline is always included. Recipes are listed below.",
    )


def _wrapped(text: str) -> str:
    return textwrap.fill(text, width=100)


def _recipes_epilog() -> str:
    from harness.recipes import describe_recipes

    lines = ["recipes ([level]: torch-level ones need a torch source; ONNX-level ones work on .onnx files too):"]
    for line in describe_recipes().splitlines():
        lines.append(textwrap.fill(line, width=100, initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="an .onnx file, a zoo name (digits-cnn: trained, real accuracy; resnet18, resnet50, mobilenet_v2, "
        "mobilenet_v3_large, efficientnet_b0, encoder-mini: random weights, latency only), or "
        "package.module:function returning an nn.Module (with --input-shape), (module, example_inputs), or a "
        "harness.model_data.TorchModel that also provides data",
    )


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=None,
        help="built-in profile name or path to a profile .toml (default: the one that suits this host: cuda-gpu "
        "with a usable GPU, else x86-cpu or arm-edge); see `speedproof targets`",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N", help="intra-op threads (default: the profile's)"
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="[NAME=]1x3x224x224",
        help="shape of an input (repeat for several inputs); the first dim is the batch and is replaced by "
        "each --batch",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speedproof",
        description="Measure whether a (compressed) model really runs faster on the hardware it targets.",
    )
    parser.add_argument("--version", action="version", version=f"speedproof {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = commands.add_parser(
        "bench",
        help="measure latency, throughput and memory of one model (and its variants) on a target",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_recipes_epilog(),
        description=_wrapped(
            "Measure one model, and with --recipes its compressed variants, on one target profile. Each "
            "(variant, backend, batch size) cell runs in its own worker process: load, warm up, then time "
            "every iteration until both --min-iterations and --min-duration-s are met (capped by "
            "--max-duration-s). Prints a table and writes a JSON result record to --out."
        ),
    )
    _add_model_argument(bench)
    _add_target_options(bench)
    bench.add_argument(
        "--batch",
        type=_batch_list,
        default=None,
        metavar="1,8,32",
        help="batch sizes to measure (default: the profile's)",
    )
    _add_recipe_options(bench, required=False)
    _add_out_option(bench)
    bench.add_argument("--json", action="store_true", help="print the result record on stdout and nothing else")
    _add_protocol_options(bench)

    variants = commands.add_parser(
        "variants",
        help="build compressed variants of a model and describe each artifact",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrapped(
            "Build one artifact per recipe from the same baseline, each checked and exported to ONNX, and "
            "describe it by the numbers people trust instead of measuring: file and zipped size, params, "
            "non-zeros, MACs at batch 1, channel alignment. Quality is measured on the target's backend: "
            "accuracy on the source's labelled test data, else fidelity to the baseline. Writes the "
            "artifacts and a record under --out. A recipe that fails is reported; the others still build."
        ),
        epilog=_recipes_epilog(),
    )
    _add_model_argument(variants)
    _add_recipe_options(variants, required=True)
    _add_target_options(variants)
    _add_out_option(variants)
    variants.add_argument("--json", action="store_true", help="print the result record on stdout and nothing else")

    verify = commands.add_parser(
        "verify",
        help="A/B-measure each compressed variant against its baseline and ACCEPT or REJECT it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrapped(
            "Build the variants, then compare each against the baseline in the same session: both load in "
            "live worker processes and run in alternating bursts (A B, B A, ...) so that drift of a noisy "
            "machine hits both, until the bootstrap interval of the speedup lies clearly on one side of "
            "--min-speedup or --max-pair-duration-s runs out. ACCEPT only when the interval's lower end "
            "reaches --min-speedup and quality and memory hold; otherwise REJECT with every reason that "
            "applies (NO_REAL_SPEEDUP, SLOWER, INCONCLUSIVE, ACCURACY_DROP, FIDELITY_LOW, MEMORY_GREW, "
            "FAILED, FELL_BACK) and hardware hints. Exit code 0 when every variant is accepted, 1 when one "
            "is rejected, 2 on a usage or configuration error."
        ),
        epilog=_recipes_epilog(),
    )
    _add_model_argument(verify)
    _add_recipe_options(verify, required=True)
    _add_target_options(verify)
    _add_out_option(verify)
    verify.add_argument("--json", action="store_true", help="print the result record on stdout and nothing else")
    _add_policy_options(verify)

    targets = commands.add_parser(
        "targets",
        help="list target profiles and whether this host can run them",
        description="List the built-in target profiles; for each, whether this host can run it and, if not, why.",
    )
    targets.add_argument("--json", action="store_true", help="print the list as JSON")

    gate = commands.add_parser(
        "gate",
        help="CI release gate: verify the checks of a config; exit 1 when a required variant is rejected",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrapped(
            "Verify every [[check]] of a TOML config on each target it names (targets this host cannot run "
            "are reported as skipped with the reason). Writes the record, a JUnit XML file (one testcase per "
            "cell; failures carry the reasons) and a markdown summary, which is also appended to "
            "$GITHUB_STEP_SUMMARY when that is set. Exit codes: 0 every required variant accepted; 1 a "
            "required variant rejected, a regression against --baseline, nothing verified, or a skipped "
            "target with --require-all-targets; 2 usage or config error."
        ),
        epilog=textwrap.dedent(
            """\
            config example (speedproof.toml):
              [[check]]
              model = "resnet18"                 # any model source
              input_shape = [1, 3, 224, 224]     # when the source needs one
              recipes = ["structured:0.5", "unstructured:0.9"]
              required = ["structured:0.5"]      # these must be ACCEPTED
              targets = ["x86-cpu", "cuda-gpu"]  # default: the one that suits the host
              [policy]                           # for every check; [check.policy] for one
              min_speedup = 1.2
            """
        ),
    )
    gate.add_argument(
        "--config", type=Path, default=Path("speedproof.toml"), metavar="FILE", help="gate config (default %(default)s)"
    )
    gate.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="RECORD",
        help="a stored gate or verify record: a speedup that fell beyond max_regression, or an ACCEPT that "
        "became a REJECT, is a regression (exit 1)",
    )
    gate.add_argument(
        "--allow-other-host",
        action="store_true",
        help="compare against a --baseline record measured on another host (refused by default)",
    )
    gate.add_argument("--require-all-targets", action="store_true", help="a target this host cannot run fails the gate")
    gate.add_argument(
        "--junit", type=Path, default=None, metavar="FILE", help="JUnit XML path (default: beside the record)"
    )
    gate.add_argument(
        "--summary", type=Path, default=None, metavar="FILE", help="markdown summary path (default: beside the record)"
    )
    _add_out_option(gate)
    _add_policy_options(gate, with_file=False)

    compare = commands.add_parser(
        "compare",
        help="structured vs unstructured pruning across sparsity levels, measured A/B, with a plot",
        description=_wrapped(
            "For each sparsity level build a structured and an unstructured variant (and 2:4 semi-structured "
            "once), verify each A/B against the baseline, and print a table and write a PNG plot of the "
            "speedup with its interval against sparsity beside the size and MAC reductions: the gap between "
            "smaller and faster at a glance."
        ),
    )
    _add_model_argument(compare)
    compare.add_argument(
        "--sparsity",
        type=_sparsity_list,
        default=(0.3, 0.5, 0.7, 0.9),
        metavar="0.3,0.5,...",
        help="sparsity levels (default 0.3,0.5,0.7,0.9)",
    )
    compare.add_argument(
        "--finetune",
        type=int,
        default=0,
        metavar="E",
        help="fine-tune every pruned variant for E epochs (needs a source with training data; default 0)",
    )
    _add_target_options(compare)
    _add_out_option(compare)
    compare.add_argument(
        "--plot", type=Path, default=None, metavar="FILE", help="PNG path (default: beside the record)"
    )
    compare.add_argument("--json", action="store_true", help="print the result record on stdout and nothing else")
    _add_policy_options(compare)

    report = commands.add_parser(
        "report",
        help="render a result record as a table, markdown, self-contained HTML or JUnit XML",
        description="Render a result record (any command's) as a terminal table, markdown, one self-contained "
        "HTML file with the tables and plots embedded, or JUnit XML.",
    )
    report.add_argument("record", type=Path, metavar="RECORD.json", help="a record written by speedproof")
    report.add_argument("--format", choices=("table", "md", "html", "junit"), default="table")
    report.add_argument(
        "--output", "-o", type=Path, default=None, metavar="FILE", help="write to FILE instead of stdout"
    )

    demo = commands.add_parser(
        "demo",
        help="verify compressed digits-cnn and resnet18 variants on this host's target",
        description=_wrapped(
            "The main job on a fresh machine: build compressed variants of digits-cnn (trained here on "
            "scikit-learn's digits: real accuracy; pruned variants are fine-tuned) and resnet18 (random "
            "weights: latency only), verify each A/B against its baseline on the target that suits this host, "
            "print the verdict tables and write the records and one HTML report."
        ),
    )
    _add_out_option(demo)
    _add_protocol_options(demo)
    _add_policy_options(demo, with_file=False)
    return parser


def _sparsity_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions like 0.3,0.5,0.9, got {text!r}") from None


def _command_progress(args: argparse.Namespace) -> _Progress:
    """Progress on a terminal's stderr, never when stdout carries JSON."""
    return _Progress(enabled=sys.stderr.isatty() and not args.json)


def _print_result(args: argparse.Namespace, record: dict[str, Any], human_text: Callable[[], str]) -> None:
    print(json.dumps(record) if args.json else human_text())


def _run_bench_command(args: argparse.Namespace) -> int:
    from harness.bench import BenchRequest, run_bench
    from harness.report_table import bench_table

    request = BenchRequest(
        model=args.model,
        target=args.target,
        batch_sizes=args.batch,
        threads=args.threads,
        input_shapes=tuple(args.input_shape),
        recipes=tuple(args.recipes),
        protocol=_protocol_from(args),
        out_dir=args.out,
    )
    record, path = run_bench(request, progress=_command_progress(args))
    _print_result(args, record, lambda: f"{bench_table(record)}\n\nrecord written to {path}")
    return EXIT_OK if all(cell["status"] == "ok" for cell in record["cells"]) else EXIT_CELL_FAILED


def _run_variants_command(args: argparse.Namespace) -> int:
    from harness.report_table import variants_table
    from harness.variants_run import VariantsRequest, run_variants

    request = VariantsRequest(
        model=args.model,
        recipes=tuple(args.recipes),
        target=args.target,
        threads=args.threads,
        input_shapes=tuple(args.input_shape),
        out_dir=args.out,
    )
    record, path = run_variants(request, progress=_command_progress(args))
    _print_result(
        args,
        record,
        lambda: f"{variants_table(record)}\n\nartifacts in {record['artifact_dir']}\nrecord written to {path}",
    )
    return EXIT_OK if all(variant["status"] == "ok" for variant in record["variants"]) else EXIT_CELL_FAILED


def _run_verify_command(args: argparse.Namespace) -> int:
    from harness.report_table import verify_table
    from harness.verify import VerifyRequest, run_verify

    request = VerifyRequest(
        model=args.model,
        recipes=tuple(args.recipes),
        target=args.target,
        threads=args.threads,
        input_shapes=tuple(args.input_shape),
        policy_file=args.policy,
        policy_overrides=_policy_overrides_from(args),
        out_dir=args.out,
    )
    record, path = run_verify(request, progress=_command_progress(args))
    _print_result(args, record, lambda: f"{verify_table(record)}\n\nrecord written to {path}")
    return EXIT_OK if all_verdicts_accepted(record) else EXIT_CELL_FAILED


def all_verdicts_accepted(record: dict[str, Any]) -> bool:
    return all(
        cell.get("reference") and cell["status"] == "ok" or (cell.get("verdict") or {}).get("decision") == "ACCEPT"
        for cell in record["cells"]
    )


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


def _run_gate_command(args: argparse.Namespace) -> int:
    import os

    from harness.gate import GateRequest, run_gate
    from harness.report_junit import junit_xml
    from harness.report_markdown import markdown_report
    from harness.report_table import record_text

    request = GateRequest(
        config_path=args.config,
        out_dir=args.out,
        baseline_record=args.baseline,
        allow_other_host=args.allow_other_host,
        require_all_targets=args.require_all_targets,
        policy_overrides=_policy_overrides_from(args),
    )
    record, path = run_gate(request, progress=_Progress(enabled=sys.stderr.isatty()))
    gate = record["gate"]
    status = ["**gate passed**" if gate["exit_code"] == 0 else "**gate failed**"]
    status.extend(f"- {failure}" for failure in gate["failures"])
    status.extend(f"- skipped: {item['model']} on {item['target']}: {item['reason']}" for item in gate["skipped"])
    summary = markdown_report(record, status)
    junit_path = args.junit or path.with_suffix(".xml")
    summary_path = args.summary or path.with_suffix(".md")
    junit_path.write_text(junit_xml(record))
    summary_path.write_text(summary)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a") as handle:
            handle.write(summary + "\n")
    print(record_text(record))
    print()
    print("gate passed" if gate["exit_code"] == 0 else "gate FAILED:\n  " + "\n  ".join(gate["failures"]))
    for item in gate["skipped"]:
        print(f"skipped: {item['model']} on {item['target']}: {item['reason']}")
    print(f"record written to {path}\nJUnit XML: {junit_path}\nsummary: {summary_path}")
    return int(gate["exit_code"])


def _run_compare_command(args: argparse.Namespace) -> int:
    from harness.compare import CompareRequest, compare_table, run_compare
    from harness.report_plots import compare_figure

    request = CompareRequest(
        model=args.model,
        sparsities=args.sparsity,
        finetune_epochs=args.finetune,
        target=args.target,
        threads=args.threads,
        input_shapes=tuple(args.input_shape),
        policy_file=args.policy,
        policy_overrides=_policy_overrides_from(args),
        out_dir=args.out,
    )
    record, path = run_compare(request, progress=_command_progress(args))
    plot_path = args.plot or path.with_suffix(".png")
    plot_path.write_bytes(compare_figure(record))
    _print_result(
        args,
        record,
        lambda: f"{compare_table(record)}\n\nplot written to {plot_path}\nrecord written to {path}",
    )
    failed = any(cell["status"] != "ok" for cell in record["cells"])
    return EXIT_CELL_FAILED if failed else EXIT_OK


def _run_report_command(args: argparse.Namespace) -> int:
    from harness.report_html import html_report
    from harness.report_junit import junit_xml
    from harness.report_markdown import markdown_report
    from harness.report_table import record_text
    from harness.results_store import load_record

    record = load_record(args.record)
    renderers: dict[str, Callable[[dict[str, Any]], str]] = {
        "table": lambda r: record_text(r) + "\n",
        "md": markdown_report,
        "html": lambda r: html_report([r]),
        "junit": junit_xml,
    }
    text = renderers[args.format](record)
    if args.output:
        args.output.write_text(text)
        print(f"{args.format} report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def demo_recipes(model: str, gpu_target: bool) -> tuple[str, ...]:
    """The demo's recipes: pruned digits-cnn variants are fine-tuned (it has training data); fp16
    only where the target suits it (a GPU)."""
    finetune = {"digits-cnn": {"unstructured:0.9": ":finetune=2", "structured:0.5": ":finetune=4"}}.get(model, {})
    recipes = ["identity", "unstructured:0.9", "structured:0.5", "int8-static", *(["fp16"] if gpu_target else [])]
    return tuple(recipe + finetune.get(recipe, "") for recipe in recipes)


def _run_demo_command(args: argparse.Namespace) -> int:
    from harness.report_html import html_report
    from harness.report_table import verify_table
    from harness.verify import VerifyRequest, run_verify
    from targets.compatibility import default_target_name
    from targets.host import fingerprint_host
    from targets.profiles import load_target

    host = fingerprint_host()
    target = default_target_name(host)
    gpu_target = load_target(target).requires.cuda_device
    progress = _Progress(enabled=True)
    progress(f"demo: verifying {', '.join(DEMO_MODELS)} variants on target {target} ({host.cpu_model})")
    records = []
    exit_code = EXIT_OK
    for model in DEMO_MODELS:
        request = VerifyRequest(
            model=model,
            recipes=demo_recipes(model, gpu_target),
            target=target,
            policy_overrides=_policy_overrides_from(args),
            protocol=_protocol_from(args),
            out_dir=args.out,
        )
        record, path = run_verify(request, progress=progress, host=host)
        records.append(record)
        print(f"\n== {model} on {target} ==")
        print(verify_table(record))
        print(f"record written to {path}")
        failed_codes = {"FAILED", "FELL_BACK"}
        for cell in record["cells"]:
            codes = {reason["code"] for reason in (cell.get("verdict") or {}).get("reasons", [])}
            if codes & failed_codes or cell["status"] != "ok":
                exit_code = EXIT_CELL_FAILED
    report_path = args.out / f"demo-{records[0]['run_id'][:8]}.html"
    report_path.write_text(html_report(records, title=f"speedproof demo on {target}"))
    print(f"\nHTML report: {report_path}")
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handlers = {
        "bench": _run_bench_command,
        "variants": _run_variants_command,
        "verify": _run_verify_command,
        "gate": _run_gate_command,
        "compare": _run_compare_command,
        "report": _run_report_command,
        "targets": _run_targets_command,
        "demo": _run_demo_command,
    }
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
