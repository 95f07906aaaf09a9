"""What the commands share: exit codes, argument types, the options several commands take (model,
target, recipes, --out, --json, the measurement protocol, the policy), and how their values become
requests. Help text comes from the fields it documents."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.progress import TerminalProgress
from targets.runners.protocol import MeasurementProtocol

EXIT_OK = 0
EXIT_CELL_FAILED = 1
EXIT_USAGE = 2


def batch_list(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,8,32, got {text!r}") from None
    if not sizes or any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return sizes


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def wrapped(text: str) -> str:
    return textwrap.fill(text, width=100)


def add_protocol_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("measurement protocol")
    for item in fields(MeasurementProtocol):
        group.add_argument(
            "--" + item.name.replace("_", "-"),
            type=int if item.type in (int, "int") else float,
            default=item.default,
            metavar="N" if item.type in (int, "int") else "S",
            help=item.metadata["help"],
        )


def protocol_from(args: argparse.Namespace) -> MeasurementProtocol:
    return MeasurementProtocol(**{item.name: getattr(args, item.name) for item in fields(MeasurementProtocol)})


def add_policy_options(parser: argparse.ArgumentParser, with_file: bool = True) -> None:
    from harness.verdict.policy import policy_fields

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


def policy_overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    from harness.verdict.policy import policy_fields

    return {name: getattr(args, f"policy_{name}") for name in policy_fields()}


def add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="folder for result records; existing files are never overwritten (default %(default)s)",
    )


def add_json_option(parser: argparse.ArgumentParser, what: str = "the result record") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} on stdout and nothing else")


def add_recipe_options(parser: argparse.ArgumentParser, required: bool) -> None:
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


def recipes_epilog() -> str:
    from harness.recipes.grammar import describe_recipes

    lines = ["recipes ([level]: torch-level ones need a torch source; ONNX-level ones work on .onnx files too):"]
    for line in describe_recipes().splitlines():
        lines.append(textwrap.fill(line, width=100, initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="an .onnx file, a zoo name (digits-cnn: trained, real accuracy; resnet18, resnet50, mobilenet_v2, "
        "mobilenet_v3_large, efficientnet_b0, encoder-mini: random weights, latency only), or "
        "package.module:function returning an nn.Module (with --input-shape), (module, example_inputs), or a "
        "harness.models.TorchModel that also provides data",
    )


def add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=None,
        help="built-in profile name or path to a profile .toml (default: the one that suits this host: cuda-gpu "
        "with a usable GPU, else x86-cpu or arm-edge); see `speedproof targets`",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, metavar="N", help="intra-op threads (default: the profile's)"
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="[NAME=]1x3x224x224",
        help="shape of an input (repeat for several inputs); the first dim is the batch and is replaced by "
        "each --batch",
    )


def target_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields that `add_model_argument` and `add_target_options` gave the command."""
    return {
        "model": args.model,
        "target": args.target,
        "threads": args.threads,
        "input_shapes": tuple(args.input_shape),
    }


def command_progress(args: argparse.Namespace) -> TerminalProgress:
    """Progress on a terminal's stderr, never when stdout carries JSON."""
    return TerminalProgress(enabled=sys.stderr.isatty() and not getattr(args, "json", False))


def print_result(args: argparse.Namespace, record: dict[str, Any], human_text: Callable[[], str]) -> None:
    print(json.dumps(record) if args.json else human_text())


def all_verdicts_accepted(record: dict[str, Any]) -> bool:
    return all(
        cell.get("reference") and cell["status"] == "ok" or (cell.get("verdict") or {}).get("decision") == "ACCEPT"
        for cell in record["cells"]
    )
