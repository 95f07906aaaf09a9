"""`speedproof variants`: build compressed variants of a model and describe each artifact."""

from __future__ import annotations

import argparse

from harness.commands.options import (
    EXIT_CELL_FAILED,
    EXIT_OK,
    add_json_option,
    add_model_argument,
    add_out_option,
    add_recipe_options,
    add_target_options,
    command_progress,
    print_result,
    recipes_epilog,
    target_keywords,
    wrapped,
)

NAME = "variants"
HELP = "build compressed variants of a model and describe each artifact"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = wrapped(
        "Build one artifact per recipe from the same baseline, each checked and exported to ONNX, and "
        "describe it by the numbers people trust instead of measuring: file and zipped size, params, "
        "non-zeros, MACs at batch 1, channel alignment. Quality is measured on the target's backend: "
        "accuracy on the source's labelled test data, else fidelity to the baseline. Writes the "
        "artifacts and a record under --out. A recipe that fails is reported; the others still build."
    )
    parser.epilog = recipes_epilog()
    add_model_argument(parser)
    add_recipe_options(parser, required=True)
    add_target_options(parser)
    add_out_option(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    import harness.api as api
    from harness.reports.table import variants_table

    result = api.build_variants(
        **target_keywords(args), recipes=args.recipes, out=args.out, progress=command_progress(args)
    )
    record, path = result.record, result.path
    print_result(
        args,
        record,
        lambda: f"{variants_table(record)}\n\nartifacts in {record['artifact_dir']}\nrecord written to {path}",
    )
    return EXIT_OK if all(variant["status"] == "ok" for variant in record["variants"]) else EXIT_CELL_FAILED
