"""`speedproof bench`: measure latency, throughput and memory of a model (and its variants)."""

from __future__ import annotations

import argparse

from harness.commands.options import (
    EXIT_CELL_FAILED,
    EXIT_OK,
    add_candidate_option,
    add_json_option,
    add_model_argument,
    add_out_option,
    add_protocol_options,
    add_recipe_options,
    add_target_options,
    batch_list,
    command_progress,
    note_replaced_batch_dims,
    print_result,
    protocol_keywords,
    recipes_epilog,
    target_keywords,
    wrapped,
)

NAME = "bench"
HELP = "measure latency, throughput and memory of one model (and its variants) on a target"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = recipes_epilog()
    parser.description = wrapped(
        "Measure one model, and with --recipes its compressed variants, on one target profile. Each "
        "(variant, backend, batch size) cell runs in its own worker process: load, warm up, then time "
        "every iteration until both --min-iterations and --min-duration-s are met (capped by "
        "--max-duration-s). Prints a table and writes a JSON result record to --out."
    )
    add_model_argument(parser)
    add_target_options(parser)
    parser.add_argument(
        "--batch",
        type=batch_list,
        default=None,
        metavar="1,8,32",
        help="batch sizes to measure (default: the profile's)",
    )
    add_recipe_options(parser, required=False)
    add_candidate_option(parser)
    add_out_option(parser)
    add_json_option(parser)
    add_protocol_options(parser)


def run(args: argparse.Namespace) -> int:
    import harness.api as api
    from harness.reports.table import bench_table

    note_replaced_batch_dims(args.input_shape, args.batch)

    result = api.bench(
        **target_keywords(args),
        recipes=args.recipes,
        candidates=args.candidates,
        batch_sizes=args.batch,
        out=args.out,
        progress=command_progress(args),
        **protocol_keywords(args),
    )
    print_result(args, result.record, lambda: f"{bench_table(result.record)}\n\nrecord written to {result.path}")
    return EXIT_CELL_FAILED if result.failed() else EXIT_OK
