"""`speedproof compare`: structured vs unstructured pruning across sparsity levels, measured A/B."""

from __future__ import annotations

import argparse

from harness.commands.options import (
    EXIT_CELL_FAILED,
    EXIT_OK,
    add_candidate_option,
    add_json_option,
    add_model_argument,
    add_out_option,
    add_plot_option,
    add_policy_options,
    add_target_options,
    batch_list,
    check_plot_paths,
    comma_items,
    command_progress,
    note_replaced_batch_dims,
    plot_companion,
    policy_keywords,
    print_result,
    target_keywords,
    wrapped,
    write_plot,
)

NAME = "compare"
HELP = "structured vs unstructured pruning across sparsity levels, measured A/B, with a plot"


def sparsity_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in comma_items(text, "0.3,0.5,0.9"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions like 0.3,0.5,0.9, got {text!r}") from None
    if not all(0.0 < value < 1.0 for value in values):
        raise argparse.ArgumentTypeError(f"sparsities are fractions between 0 and 1 (exclusive), got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = wrapped(
        "For each sparsity level build a structured and an unstructured variant (and 2:4 semi-structured "
        "once), verify each A/B against the baseline, and print a table and write a PNG plot of the "
        "speedup with its interval against sparsity beside the size and MAC reductions: the gap between "
        "smaller and faster at a glance."
    )
    add_model_argument(parser)
    parser.add_argument(
        "--sparsity",
        type=sparsity_list,
        default=(0.3, 0.5, 0.7, 0.9),
        metavar="0.3,0.5,...",
        help="sparsity levels (default 0.3,0.5,0.7,0.9)",
    )
    parser.add_argument(
        "--finetune",
        type=int,
        default=0,
        metavar="E",
        help="fine-tune every pruned variant for E epochs (needs a source with training data; default 0)",
    )
    add_candidate_option(parser)
    add_target_options(parser)
    parser.add_argument(
        "--batch-sizes",
        type=batch_list,
        default=(),
        metavar="1,8,32",
        help="also compare every variant at these batch sizes and plot its speedup curve (a second PNG, "
        "FILE-batch.png); the policy's --batch-size decides the verdicts",
    )
    add_out_option(parser)
    add_plot_option(parser, "PNG path (default: beside the record, .png)")
    add_json_option(parser)
    add_policy_options(parser)


def run(args: argparse.Namespace) -> int:
    import harness.api as api
    from harness.reports.plots import batch_curve_figure, compare_figure
    from harness.reports.table import compare_table

    batch_sizes = (*((args.policy_batch_size,) if args.policy_batch_size else ()), *args.batch_sizes)
    note_replaced_batch_dims(args.input_shape, batch_sizes or None)
    check_plot_paths(args.plot, *(("batch",) if args.batch_sizes else ()))

    result = api.compare(
        **target_keywords(args),
        sparsities=args.sparsity,
        finetune=args.finetune,
        candidates=args.candidates,
        batch_sizes=args.batch_sizes,
        policy=args.policy,
        out=args.out,
        progress=command_progress(args),
        **policy_keywords(args),
    )
    record, path = result.record, result.path
    assert path is not None
    plot_path = args.plot or path.with_suffix(".png")
    write_plot(plot_path, compare_figure(record), path)
    written = [f"plot written to {plot_path}"]
    curve = batch_curve_figure(record)
    if curve is not None:
        curve_path = plot_companion(plot_path, "batch")
        write_plot(curve_path, curve, path)
        written.append(f"speedup against batch size written to {curve_path}")
    print_result(
        args,
        record,
        lambda: "\n".join([compare_table(record), "", *written, f"record written to {path}"]),
    )
    return EXIT_CELL_FAILED if result.failed() else EXIT_OK
