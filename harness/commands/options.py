"""What the commands share: exit codes, argument types, the options several commands take (model,
target, recipes, --out, --json, the measurement protocol, the policy), and how their values become
the keyword arguments of `harness.api`. Help text comes from the fields it documents."""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.progress import TerminalProgress
from targets.errors import SpeedproofError
from targets.runners.protocol import MeasurementProtocol

EXIT_OK = 0
EXIT_CELL_FAILED = 1
EXIT_USAGE = 2


def comma_items(text: str, example: str) -> list[str]:
    """The items of a comma-separated option value; an empty item (`1,,8`, a trailing comma) is an error."""
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty item; expected comma-separated values like {example}")
    return items


def batch_list(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in comma_items(text, "1,8,32"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,8,32, got {text!r}") from None
    if any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    repeated = sorted({size for size in sizes if sizes.count(size) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"batch size {', '.join(map(str, repeated))} given twice in {text!r}; each is measured once"
        )
    return sizes


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def wrapped(text: str) -> str:
    return textwrap.fill(text, width=100)


def add_protocol_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("measurement protocol")
    for item in fields(MeasurementProtocol):
        group.add_argument(
            "--" + item.name.replace("_", "-"),
            type=int if item.type in (int, "int") else finite_float,
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
        kinds: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": finite_float}
        kind = kinds[str(item.type)]
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


def output_folder(text: str) -> Path:
    """An option naming a folder speedproof writes into (--out, --cache, --tls): one that exists, or a
    path where one can be made; a file, FIFO or device is refused as the option is read."""
    import os
    import stat

    from targets.files_in import file_kind

    try:
        facts = os.stat(text)
    except FileNotFoundError:
        return Path(text)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or error
        raise argparse.ArgumentTypeError(f"{text}: cannot be used ({reason})") from None
    if not stat.S_ISDIR(facts.st_mode):
        kind = "a file" if stat.S_ISREG(facts.st_mode) else file_kind(facts.st_mode)
        raise argparse.ArgumentTypeError(f"{text}: is {kind}, not a folder; pass a folder")
    return Path(text)


def port_number(text: str) -> int:
    """A TCP port to listen on: 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 (any free one) to 65535, got {text!r}")
    return value


def output_file(text: str) -> Path:
    """An option naming a file speedproof writes (--plot, --output, --junit, --summary): refused as the
    option is read when the one way out (targets.files_out) would refuse it."""
    from targets.files_out import output_problem

    problem = output_problem(Path(text))
    if problem:
        raise argparse.ArgumentTypeError(f"{text}: {problem}")
    return Path(text)


def add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=output_folder,
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


def add_candidate_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--candidate",
        dest="candidates",
        action="append",
        default=[],
        metavar="PATH[=LABEL]",
        help="a compressed model you made elsewhere (ONNX Runtime's quantizer, NNCF, Olive, a distilled student, "
        "...), measured and judged exactly like a built variant: an .onnx file (its external data beside it), a "
        ".pt2 program, or package.module:function. Its inputs and outputs must match the baseline's (checked "
        "before anything is measured); LABEL names it in tables and records (default: the file name). Repeatable; "
        "combines with --recipes",
    )


def recipes_epilog() -> str:
    from harness.recipes.grammar import describe_recipes

    lines = ["recipes ([level]: torch-level ones need a torch source; ONNX-level ones work on .onnx files too):"]
    for line in describe_recipes().splitlines():
        lines.append(textwrap.fill(line, width=100, initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


def add_model_argument(parser: argparse.ArgumentParser, optional_because: str | None = None) -> None:
    """The MODEL positional; with `optional_because`, it may be left out (the reason ends its help)."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        nargs="?" if optional_because else None,
        help="an .onnx file, a zoo name (digits-cnn, digits-transformer: trained, real accuracy; resnet18, "
        "resnet50, mobilenet_v2, mobilenet_v3_large, efficientnet_b0, encoder-mini: random weights, latency only), or "
        "package.module:function returning an nn.Module (with --input-shape), (module, example_inputs), or a "
        "harness.models.TorchModel that also provides data" + (f"; {optional_because}" if optional_because else ""),
    )


def add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=None,
        help="built-in profile name or path to a profile .toml (default: the one that suits this host: cuda-gpu "
        "with a usable GPU, else x86-cpu or arm-edge); see `speedproof targets`",
    )
    parser.add_argument(
        "--backend",
        default=None,
        metavar="NAME[:key=value...][,NAME...]",
        help="which of the target's backends measures: onnxruntime or openvino (ONNX files; openvino needs "
        "pip install 'speedproof[openvino]') or torch (torch.export programs, run by PyTorch; needs a torch model "
        "source); default: the profile's first. key=value items override its profile options, e.g. "
        "torch:mode=compile or openvino:inference_precision=bf16. Several, comma-separated "
        "(onnxruntime,openvino), judge each variant on each runtime against the baseline on the same runtime, "
        "and A/B the baselines across runtimes (verify, gate, compare, bench). See `speedproof targets` and "
        "docs/reference/backends.md",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, metavar="N", help="intra-op threads (default: the profile's)"
    )
    parser.add_argument(
        "--remote",
        default=None,
        metavar="ssh://[user@]host[:port][?python=PATH]",
        help="measure on another machine over SSH (keys only, host key checked): artifacts are built here, "
        "copied there by content hash, and measured by that machine's own speedproof (same version; PATH: its "
        "Python, default python3); the record carries its fingerprint. qemu-aarch64:[FOLDER] runs them in an "
        "emulated aarch64 Python instead (scripts/setup_aarch64_python.py; functional checks only: emulated "
        "timings never decide). See docs/guides/boards.md",
    )
    parser.add_argument(
        "--ssh-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="an OpenSSH config file for --remote (ssh -F FILE); default: ~/.ssh/config",
    )
    add_cluster_options(parser)
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="[NAME=]1x3x224x224",
        help="shape of an input (repeat for several inputs); its batch dim (see --batch-axis) is replaced by "
        "each --batch",
    )
    parser.add_argument(
        "--batch-axis",
        action="append",
        default=[],
        metavar="NAME=K|none",
        help="which dim of input NAME carries the batch (repeatable). Default: where the input has the batch "
        "symbol the first input starts with (an RNN state [layers, batch, hidden] gets 1), else its own symbolic "
        "first dim, else none (scalars and fixed-size inputs stay as declared)",
    )
    parser.add_argument(
        "--input-value",
        action="append",
        default=[],
        metavar="NAME=NUMBER",
        help="feed input NAME as this constant (a sample rate, a flag) instead of generated data; repeatable",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="FILE.npz|package.module:function",
        help="your own inputs: an .npz with one array per model input, named after it, samples first (0-d for a "
        "constant), and optionally 'labels'; or a function yielding feed dicts {input: array}. Used for quality "
        "(accuracy with labels for class scores, else closeness to the baseline), for int8-static calibration, "
        "and as the timed inputs. See docs/guides/own-model.md",
    )
    parser.add_argument(
        "--calibration-data",
        default=None,
        metavar="FILE.npz|package.module:function",
        help="inputs for int8-static calibration, in --data's form (default: --data, else the source's data)",
    )
    parser.add_argument(
        "--metric-fn",
        default=None,
        metavar="package.module:function",
        help="your task metric (mAP, 1-CER, F1): called, contained, as function(outputs, labels) with one dict of "
        "outputs per sample of --data, in order; returns one number, higher is better. max_accuracy_drop applies "
        "to it, in its units",
    )


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """The fleet's TLS files (targets.runners.fleet_security)."""
    group = parser.add_argument_group("fleet TLS (mutual authentication; see docs/guides/fleets.md)")
    group.add_argument(
        "--tls-ca-file", type=Path, default=None, metavar="FILE", help="the fleet's CA certificate (PEM)"
    )
    group.add_argument(
        "--tls-cert", type=Path, default=None, metavar="FILE", help="this host's certificate, signed by that CA (PEM)"
    )
    group.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="the certificate's private key (PEM)")


def apply_tls_options(args: argparse.Namespace) -> None:
    """Put the TLS files the command was given into Dask's config (a no-op without them)."""
    from targets.runners.fleet_security import FleetTLS

    FleetTLS(args.tls_ca_file, args.tls_cert, args.tls_key).apply()


def add_cluster_options(parser: argparse.ArgumentParser, device: bool = True) -> None:
    add_tls_options(parser)
    parser.add_argument(
        "--cluster",
        default=None,
        metavar="tls://SCHEDULER:PORT",
        help="measure on a device of a Dask fleet: a worker started with `speedproof worker --target NAME` "
        "(needs --target; artifacts travel there by content hash; both sides of every A/B pair run on that one "
        "worker). Needs speedproof[fleet]; see docs/guides/fleets.md",
    )
    if device:
        parser.add_argument(
            "--device",
            default=None,
            metavar="TAG",
            help="with --cluster: only a worker started with --device TAG measures (h100, rpi5, ...)",
        )


def target_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """The API's keyword arguments that `add_model_argument` and `add_target_options` gave the
    command (`harness.api`); the fleet's TLS files, given, go into Dask's config first."""
    if getattr(args, "cluster", None):
        apply_tls_options(args)
    return {
        "model": args.model,
        "target": args.target,
        "backend": args.backend,
        "threads": args.threads,
        "remote": args.remote,
        "ssh_config": args.ssh_config,
        "cluster": getattr(args, "cluster", None),
        "device": getattr(args, "device", None),
        "input_shapes": tuple(args.input_shape),
        "batch_axes": tuple(args.batch_axis),
        "input_values": tuple(args.input_value),
        "data": args.data,
        "calibration_data": args.calibration_data,
        "metric_fn": args.metric_fn,
    }


def policy_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """The policy options the command was given, as the API's keyword arguments (those left out: the
    policy file's or the profile's)."""
    return {name: value for name, value in policy_overrides_from(args).items() if value is not None}


def protocol_keywords(args: argparse.Namespace) -> dict[str, Any]:
    return {item.name: getattr(args, item.name) for item in fields(MeasurementProtocol)}


def note_replaced_batch_dims(shapes: list[str], measured_batches: tuple[int, ...] | None) -> None:
    """Say on stderr when an --input-shape's first dim will not be used: it is the batch, and the
    batch comes from --batch (bench) or the policy's batch_size (verify). `measured_batches`: the
    batch sizes the command will measure, when the user chose them."""
    from targets.inputs import parse_input_shape

    for text in shapes:
        try:
            _, dims = parse_input_shape(text)
        except SpeedproofError:
            return  # the job reports the bad shape itself
        if dims and dims[0] != 1 and (measured_batches is None or dims[0] not in measured_batches):
            print(
                f"note: --input-shape {text}: the first dim is the batch; {dims[0]} is replaced by each batch size "
                "measured (--batch for bench, --batch-size for verify)",
                file=sys.stderr,
            )


def command_progress(args: argparse.Namespace) -> TerminalProgress:
    """Progress on a terminal's stderr, never when stdout carries JSON."""
    return TerminalProgress(enabled=sys.stderr.isatty() and not getattr(args, "json", False))


def print_result(args: argparse.Namespace, record: dict[str, Any], human_text: Callable[[], str]) -> None:
    print(json.dumps(record) if args.json else human_text())


def print_whole_line(text: str) -> None:
    """One line on stdout in one write: a line that a fleet's worker process and its `cluster --local`
    parent both print to the same pipe never splits around the other's (print writes the text and
    its newline separately, which an unbuffered stdout sends as two writes)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def add_plot_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--plot", type=output_file, default=None, metavar="FILE", help=help_text)


def check_plot_paths(plot: Path | None, *companions: str) -> None:
    """Refuse, before anything is measured, the companions FILE-NAME.png of a --plot path that
    speedproof may not write (see targets.files_out; --plot itself is checked as it is read)."""
    from targets.files_out import check_output

    if plot is not None:
        for companion in companions:
            check_output(plot_companion(plot, companion), "--plot")


def plot_companion(plot: Path, name: str) -> Path:
    return plot.with_name(f"{plot.stem}-{name}.png")


def write_plot(path: Path, png: bytes, record_path: Path) -> None:
    """Write a plot after the run; one that cannot be written says where the record is."""
    from targets.errors import UsageError
    from targets.files_out import write_output

    try:
        write_output(path, png, "--plot")
    except UsageError as error:
        raise UsageError(f"{error}; the record was written to {record_path}") from None
