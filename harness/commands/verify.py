"""`speedproof verify`: A/B-measure each compressed variant against its baseline and ACCEPT or REJECT it."""

from __future__ import annotations

import argparse

from harness.commands.options import (
    EXIT_CELL_FAILED,
    EXIT_OK,
    add_candidate_option,
    add_json_option,
    add_model_argument,
    add_out_option,
    add_policy_options,
    add_recipe_options,
    add_target_options,
    batch_list,
    command_progress,
    note_replaced_batch_dims,
    policy_keywords,
    positive_int,
    print_result,
    recipes_epilog,
    target_keywords,
    wrapped,
)
from harness.verdict.reasons import ReasonCode

NAME = "verify"
HELP = "A/B-measure each compressed variant against its baseline and ACCEPT or REJECT it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = wrapped(
        "Build the variants, then compare each against the baseline in the same session: both load in "
        "live worker processes and run in alternating bursts (A B, B A, ...) so that drift of a noisy "
        "machine hits both, until the speedup interval (exact signed-rank interval over blocks of pairs, looked "
        "at only at planned block counts; widened when the host sat away from its usual speed for the baseline) "
        "lies clearly on one side of "
        "--min-speedup or --max-pair-duration-s runs out. ACCEPT only when the interval's lower end "
        "reaches --min-speedup and quality and memory hold; otherwise REJECT with every reason that "
        f"applies ({', '.join(map(str, ReasonCode))}) and hardware hints. Exit code 0 when every variant "
        "is accepted, 1 when one is rejected, 2 on a usage or configuration error."
    )
    parser.epilog = (
        recipes_epilog() + "\n\nreason codes:\n" + "\n".join(f"  {code}: {code.meaning}" for code in ReasonCode)
    )
    add_model_argument(parser)
    add_recipe_options(parser, required=False)
    add_candidate_option(parser)
    add_target_options(parser)
    parser.add_argument(
        "--batch-sizes",
        type=batch_list,
        default=(),
        metavar="1,8,32",
        help="also compare at these batch sizes and report the speedup curve and where the variant starts or "
        "stops paying; the policy's --batch-size decides the verdict",
    )
    decoder = parser.add_argument_group(
        "generative decoders",
        "a zoo decoder (smollm-135m-shape, llama-tiny-shape), a Hugging Face folder (config.json, model.safetensors, "
        "tokenizer) or an ONNX Runtime GenAI folder (genai_config.json) is built with ONNX Runtime GenAI's model "
        "builder and timed phase by phase: prefill at each prompt length, time to first token and time per token "
        "after the first; --metric names the phase that must pay: decode_ms_per_token (default), prefill_ms, "
        "ttft_ms. Recipes: int4-weight, int8-weight, drop-layers:K, identity; --candidate takes GenAI folders",
    )
    decoder.add_argument(
        "--prompt-tokens",
        type=batch_list,
        default=None,
        metavar="128,512",
        help="prompt lengths in tokens: prefill is timed at each, time to first token and decoding after the first "
        "(default 128,512)",
    )
    decoder.add_argument(
        "--decode-tokens",
        type=positive_int,
        default=None,
        metavar="N",
        help="tokens per timed decode window after the prompt (default 16); the figure is the time per token",
    )
    decoder.add_argument(
        "--prompts",
        default=None,
        metavar="TEXT_FILE",
        help="a text file tokenized with the decoder's tokenizer (before any timing) whose first tokens are the "
        "prompts, instead of random token ids",
    )
    add_out_option(parser)
    add_json_option(parser)
    add_policy_options(parser)


def run(args: argparse.Namespace) -> int:
    import harness.api as api
    from harness.reports.table import record_text

    batch_sizes = (*((args.policy_batch_size,) if args.policy_batch_size else ()), *args.batch_sizes)
    note_replaced_batch_dims(args.input_shape, batch_sizes or None)

    result = api.verify(
        **target_keywords(args),
        recipes=args.recipes,
        candidates=args.candidates,
        batch_sizes=args.batch_sizes,
        prompt_tokens=args.prompt_tokens,
        decode_tokens=args.decode_tokens,
        prompts=args.prompts,
        policy=args.policy,
        out=args.out,
        progress=command_progress(args),
        **policy_keywords(args),
    )
    print_result(args, result.record, lambda: f"{record_text(result.record)}\n\nrecord written to {result.path}")
    return EXIT_OK if result.all_accepted() else EXIT_CELL_FAILED
