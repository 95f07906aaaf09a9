#!/usr/bin/env python3
"""How far is speedproof's decode timing from a bare ONNX Runtime GenAI loop over the same folder?

Alternates, round by round so that the host's drift hits both, two fresh processes on the same CPUs with the
same thread count: a bare `og.Generator` loop as users write it (a new generator, the prompt appended, then
`generate_next_token` timed step by step), and speedproof's worker timing the `decode` phase of the
onnxruntime-genai backend (the time per token of each window after the prompt). Prints each round's medians (ms
per token) and the ratio harness / bare (goal: within 3%), and the same for the prefill phase.

    python scripts/decoder_overhead.py [--folder GENAI_FOLDER] [--rounds 6] [--duration-s 3]

Without --folder it builds smollm-135m-shape's fp32 decoder first (about 10 s, once per run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.decoders.build import DecoderBuildPlan, build_decoder
from harness.decoders.job import DECODER_PROTOCOL, phase_request
from harness.decoders.scenario import DecoderScenario, Phase
from harness.decoders.sources import resolve_decoder_source
from targets.profiles import load_target, resolve_profile
from targets.runners.local import LocalRunner

BARE_LOOP = r"""
import json, os, sys, time
import numpy as np
import onnxruntime_genai as og
folder, threads, cpus, prompt_tokens, new_tokens, duration_s, phase = sys.argv[1:8]
os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
config = og.Config(folder)
config.clear_providers()
config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": int(threads)}}}}))
model = og.Model(config)
vocab = json.load(open(os.path.join(folder, "genai_config.json")))["model"]["vocab_size"]
prompt = np.random.default_rng(0).integers(4, vocab, size=int(prompt_tokens)).astype(np.int32)
times, end = [], None
while True:
    params = og.GeneratorParams(model)
    length = int(prompt_tokens) + int(new_tokens)
    params.set_search_options(max_length=length, min_length=length, do_sample=False)
    generator = og.Generator(model, params)
    if phase == "prefill":
        start = time.perf_counter_ns()
        generator.append_tokens(prompt)
        times.append(time.perf_counter_ns() - start)
    else:
        generator.append_tokens(prompt)
        generator.generate_next_token()  # the prompt's first token: its forward ran in append_tokens
        while not generator.is_done():
            start = time.perf_counter_ns()
            generator.generate_next_token()
            times.append(time.perf_counter_ns() - start)
    end = end or time.monotonic() + float(duration_s)
    if time.monotonic() > end:
        break
print(json.dumps(times))
"""


def bare_median_ms(
    folder: Path, phase: Phase, scenario: DecoderScenario, threads: int, cpus: tuple[int, ...], seconds: float
) -> float:
    arguments = [
        str(folder),
        str(threads),
        ",".join(map(str, cpus)),
        str(phase.prompt_tokens),
        str(scenario.decode_tokens),
        str(seconds),
        phase.kind,
    ]
    output = subprocess.run(
        [sys.executable, "-c", BARE_LOOP, *arguments], capture_output=True, text=True, check=True
    ).stdout
    return statistics.median(json.loads(output.strip().splitlines()[-1])) / 1e6


def harness_median_ms(
    runner: LocalRunner, folder: Path, phase: Phase, scenario: DecoderScenario, resolved, seconds: float
) -> float:
    request = phase_request(folder, phase, scenario, None, resolved)
    protocol = DECODER_PROTOCOL.__class__(
        **{**DECODER_PROTOCOL.as_dict(), "min_duration_s": seconds, "max_duration_s": seconds * 2}
    )
    result = runner.run_cell(request.__class__(**{**request.__dict__, "protocol": protocol}), timeout_s=600)
    if not result.ok:
        raise SystemExit(f"the harness's worker failed: {result.error}")
    return statistics.median(result.latencies_ns) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="an ONNX Runtime GenAI folder (default: smollm-135m-shape, fp32)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--decode-tokens", type=int, default=16)
    args = parser.parse_args()
    runner = LocalRunner()
    resolved = resolve_profile(load_target("x86-cpu"), runner.fingerprint())
    scenario = DecoderScenario(prompt_tokens=(args.prompt_tokens,), decode_tokens=args.decode_tokens)
    with tempfile.TemporaryDirectory(prefix="decoder-overhead-") as scratch:
        folder = args.folder
        if folder is None:
            source = resolve_decoder_source("smollm-135m-shape")
            folder = Path(scratch) / "fp32"
            build_decoder(DecoderBuildPlan("baseline"), source, folder, None)
        print(
            f"{folder}: {resolved.threads} threads on CPUs {list(resolved.cpu_affinity)}; {args.rounds} rounds of "
            f"{args.duration_s:g} s each way"
        )
        for phase in (Phase("decode", args.prompt_tokens), Phase("prefill", args.prompt_tokens)):
            ratios = []
            for round_index in range(args.rounds):
                order = ("bare", "harness") if round_index % 2 == 0 else ("harness", "bare")
                medians = {}
                for side in order:
                    if side == "bare":
                        medians[side] = bare_median_ms(
                            folder, phase, scenario, resolved.threads, tuple(resolved.cpu_affinity), args.duration_s
                        )
                    else:
                        medians[side] = harness_median_ms(runner, folder, phase, scenario, resolved, args.duration_s)
                ratios.append(medians["harness"] / medians["bare"])
                print(
                    f"  {phase.key} round {round_index + 1}: bare {medians['bare']:.3f} {phase.unit}, harness "
                    f"{medians['harness']:.3f} {phase.unit}, ratio {ratios[-1]:.3f}"
                )
            print(
                f"{phase.key}: harness / bare median ratio {statistics.median(ratios):.3f} (rounds "
                f"{min(ratios):.3f}-{max(ratios):.3f}); goal within 3%"
            )


if __name__ == "__main__":
    main()
