"""`speedproof sensitivity`: prune each layer group alone and rank the groups by the accuracy that
costs (optionally with each one's measured speedup), as a table and a bar chart."""

from __future__ import annotations

import argparse

from harness.commands.options import (
    EXIT_OK,
    add_json_option,
    add_model_argument,
    add_out_option,
    add_plot_option,
    add_policy_options,
    add_target_options,
    check_plot_paths,
    command_progress,
    policy_keywords,
    print_result,
    target_keywords,
    wrapped,
    write_plot,
)

NAME = "sensitivity"
HELP = "prune each layer group alone: the accuracy it costs (and its speedup), ranked, with a bar chart"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.search.sensitivity_job import DEFAULT_RECIPE

    parser.description = wrapped(
        "For every group of layers that structured pruning narrows together (a layer and those its channels "
        "are coupled to), prune that group alone at the recipe's ratio and measure top-1 accuracy on the "
        "source's labelled data; rank the groups by the drop. --speed also builds each single-group variant "
        "and A/B-verifies it against the baseline on the target. The weighted ratio column is what "
        "structured:R:layer_ratios=sensitivity prunes each group at. Needs a torch source with labelled "
        "data (digits-cnn, digits-transformer, or a TorchModel with eval_data)."
    )
    add_model_argument(parser)
    parser.add_argument(
        "--recipe",
        default=DEFAULT_RECIPE,
        metavar="RECIPE",
        help="structured:R[:importance=..][:round_to=N] each group is pruned at (default %(default)s)",
    )
    parser.add_argument("--speed", action="store_true", help="also A/B-verify each single-group variant")
    add_plot_option(parser, "PNG bar chart (default: beside the record, .png)")
    add_target_options(parser)
    add_out_option(parser)
    add_json_option(parser)
    add_policy_options(parser)


def run(args: argparse.Namespace) -> int:
    import harness.api as api
    from harness.reports.plots import sensitivity_figure
    from harness.reports.table import sensitivity_text

    check_plot_paths(args.plot)
    result = api.sensitivity(
        **target_keywords(args),
        recipe=args.recipe,
        speed=args.speed,
        policy=args.policy,
        out=args.out,
        progress=command_progress(args),
        **policy_keywords(args),
    )
    record, path = result.record, result.path
    assert path is not None
    plot_path = args.plot or path.with_suffix(".png")
    write_plot(plot_path, sensitivity_figure(record), path)
    print_result(
        args,
        record,
        lambda: "\n".join(
            [sensitivity_text(record), "", f"bar chart written to {plot_path}", f"record written to {path}"]
        ),
    )
    return EXIT_OK
