"""`speedproof search`: find the fastest compression that keeps quality by building and A/B-verifying
points of the recipe space on the target (optuna, two objectives, quality before timing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.options import (
    EXIT_CELL_FAILED,
    EXIT_OK,
    add_json_option,
    add_model_argument,
    add_out_option,
    add_plot_option,
    add_policy_options,
    add_target_options,
    check_plot_paths,
    command_progress,
    finite_float,
    policy_keywords,
    positive_int,
    print_result,
    target_keywords,
    wrapped,
    write_plot,
)
from harness.search import MAX_SEED
from targets.errors import UsageError

NAME = "search"
HELP = "search the recipe space for the fastest compression that keeps quality, each point A/B-verified"


def seed_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.decoders.search_space import describe_decoder_families
    from harness.search.job import DEFAULT_BUDGET_S, TASK_MAX_DROP
    from harness.search.space import describe_families

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = wrapped(
        "Explore compressions of MODEL (pruning ratios, round_to, importance, iterative steps, fine-tuning "
        "and distillation epochs, int8 and int4 options, chains such as structured+int8) with optuna's TPE "
        "sampler, two objectives: the lower end of the A/B speedup interval and the quality. Each point is built "
        "and its quality measured first; a point that fails the quality limit is cut there and never timed. "
        "A point that holds quality is A/B-verified exactly as `verify` does (same policy, intervals, "
        "reasons). Every family is tried once at its default point before the sampler draws. The study is kept "
        "in SQLite beside the record (DIR/study.db): after Ctrl-C or a crash, --resume DIR continues it. "
        "Prints the Pareto front and the best ACCEPTed recipe as a line to paste into verify or a gate, and "
        "writes a PNG of the front. A generative decoder (pydoc-lm, a zoo decoder, a Hugging Face folder) is "
        "searched over its own families (below): its quality is the perplexity on text (--data, or pydoc-lm's "
        "held-out topics; the limit --max-perplexity-increase), its speed the policy's phase (time per token by "
        "default), each round of points built by ONNX Runtime GenAI's model builder in one process; --resume does "
        "not apply to it yet. Exit code 0 when a point was accepted, 1 when none was, 2 on a usage or "
        "configuration error."
    )
    parser.epilog = (
        "families (--space; the default is those that can pay for this source on this target):\n"
        + describe_families()
        + "\n\nfamilies of a generative decoder:\n"
        + describe_decoder_families()
        + "\n\n--task limits (max_accuracy_drop: absolute top-1, or the --metric-fn score's units):\n"
        + "\n".join(f"  {task}: {drop:g}" for task, drop in TASK_MAX_DROP.items())
    )
    add_model_argument(parser, optional_because="with --resume, the search's own")
    parser.add_argument(
        "--space", default=None, metavar="A,B", help="the families to search (default: those that can pay here)"
    )
    parser.add_argument(
        "--task",
        choices=tuple(TASK_MAX_DROP),
        default=None,
        help="set the quality limit for an application (see below) instead of --max-accuracy-drop",
    )
    parser.add_argument(
        "--budget-s",
        type=finite_float,
        default=None,
        metavar="S",
        help=f"seconds of search; a trial that would run past them is not started (default {DEFAULT_BUDGET_S:g}; "
        "with --resume, the seconds this session may add)",
    )
    parser.add_argument("--trials", type=positive_int, default=None, metavar="N", help="stop after N trials in all")
    parser.add_argument(
        "--seed", type=seed_number, default=0, metavar="N", help=f"the sampler's seed, 0 to {MAX_SEED} (default 0)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue the search kept in DIR (its settings: model, target, space, limit, seed, policy)",
    )
    add_plot_option(parser, "PNG of the front (default: beside the record, .png)")
    add_target_options(parser)
    add_out_option(parser)
    add_json_option(parser)
    add_policy_options(parser)


def run(args: argparse.Namespace) -> int:
    import harness.api as api
    from harness.reports.plots import search_figure
    from harness.reports.table import search_text

    if args.model is None and args.resume is None:
        raise UsageError("speedproof search: give MODEL, or --resume DIR to continue a search")
    check_plot_paths(args.plot)
    try:
        result = api.search_recipes(
            **target_keywords(args),
            space=args.space,
            task=args.task,
            budget_s=args.budget_s,
            trials=args.trials,
            seed=args.seed,
            resume=args.resume,
            policy=args.policy,
            out=args.out,
            progress=command_progress(args),
            **policy_keywords(args),  # --max-accuracy-drop among them
        )
    except KeyboardInterrupt as interrupt:
        hint = getattr(interrupt, "resume_hint", None)
        if hint:
            print(hint, file=sys.stderr)
        raise
    record, path = result.record, result.path
    assert path is not None
    figure = search_figure(record)
    written = []
    if figure is not None:
        plot_path = args.plot or path.with_suffix(".png")
        write_plot(plot_path, figure, path)
        written.append(f"front written to {plot_path}")
    print_result(args, record, lambda: "\n".join([search_text(record), "", *written, f"record written to {path}"]))
    return EXIT_OK if record["search"]["best"] is not None else EXIT_CELL_FAILED
