"""Do verdicts hold when asked again? The same pairs of files verified many times over many minutes,
by the old code and this tree's, alternating, with a long bare alternating loop over each pair before
and after as the reference.

The set (built once, in a temporary folder, by this tree): the demo's digits-cnn (trained here) with
its `structured:0.5:finetune=4`, `structured:0.3:round_to=8:finetune=16` and `int8-static` variants
(sub-ms pairs), a ~1 ms CNN (random weights) against itself with half its channels pruned, and
resnet18 (random weights) with `structured:0.5` and `int8-static`. Every run is
`speedproof verify BASELINE --candidate VARIANT=LABEL --min-fidelity 0` (the user's own files: the
candidate path; fidelity off, so that the decision is the speed's) in a fresh process of the old code
(a git worktree at `--old`) or this tree's, with the order of the two codes alternating. Each code's
runs keep their own level history (SPEEDPROOF_LEVEL_HISTORY), as a user's repeated runs would.

It prints every run as it goes, then per pair and code: the bare loops' ratio before and after, each
run's ratio [interval] and speed decision, and the goals: no run contradicting another (a speedup
above min_speedup in one run, an interval below it in another), no ACCEPT or SLOWER on the side of 1.0
opposite to the bare loops, and the share of runs whose interval holds the median of all runs' ratios.

    python scripts/verdict_reproducibility.py [--old REV] [--runs 10] [--pairs digits-s50,...] [--bare-s 60]
        [--new-args '--min-span-s 5']

Figures come from one run on a shared host; timings under emulation are meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# the last commit before blocks and host states (issue 39)
DEFAULT_OLD = "285c3f0"
MIN_SPEEDUP = 1.10
DIGITS_RECIPES = {
    "digits-s50": "structured:0.5:finetune=4",
    "digits-s30r8": "structured:0.3:round_to=8:finetune=16",
    "digits-int8": "int8-static",
}
RESNET_RECIPES = {"resnet18-s50": "structured:0.5", "resnet18-int8": "int8-static"}
PAIRS = (*DIGITS_RECIPES, "cnn1ms-s50", *RESNET_RECIPES)
# a speed decision that says "faster than min_speedup" and one that says "not": two of them contradict
ABOVE, BELOW = {"faster"}, {"SLOWER", "NO_REAL_SPEEDUP"}


@dataclass
class Run:
    code: str
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    decision: str = "FAILED"
    seconds: float = 0.0
    baseline_ms: float | None = None
    host: str = ""  # the new code's host state: "moved" or "unusual" (the old code has none)
    error: str = ""


@dataclass
class PairResults:
    bare: list[float] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)


def _speedproof(tree: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(tree), **env}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def _variants(model: str, recipes: dict[str, str], out: Path) -> dict[str, tuple[Path, Path]]:
    done = _speedproof(REPOSITORY, ["variants", model, "--recipes", ",".join(recipes.values()), "--out", str(out)], {})
    if done.returncode != 0:
        raise SystemExit(f"speedproof variants {model} failed:\n{done.stderr[-2000:]}")
    record = json.loads(max(out.glob(f"*-variants-{model}-*.json")).read_text())
    folder = Path(record["artifact_dir"])
    paths = {variant["recipe"]: folder / Path(variant["artifact"]["path"]).name for variant in record["variants"]}
    return {label: (paths["baseline"], paths[recipe]) for label, recipe in recipes.items()}


def _cnn1ms(folder: Path) -> tuple[Path, Path]:
    """verdict_speed.py's ~1 ms CNN (random weights) and the same with half its channels pruned."""
    import torch

    from exporters.torch_to_onnx import export_to_onnx
    from harness.recipes.channel_pruning import prune_structured

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from verdict_speed import SHAPES, _module

    module = _module("cnn1ms")
    example = [torch.randn(*SHAPES["cnn1ms"])]
    full, half = folder / "cnn1ms.onnx", folder / "cnn1ms-s50.onnx"
    export_to_onnx(module, example, full)
    prune_structured(module, example, 0.5, "l2", 1, False)
    export_to_onnx(module, example, half)
    return full, half


def build_pairs(folder: Path, names: list[str]) -> dict[str, tuple[Path, Path]]:
    pairs: dict[str, tuple[Path, Path]] = {}
    digits = {label: recipe for label, recipe in DIGITS_RECIPES.items() if label in names}
    if digits:
        pairs.update(_variants("digits-cnn", digits, folder / "digits"))
    if "cnn1ms-s50" in names:
        pairs["cnn1ms-s50"] = _cnn1ms(folder)
    resnet = {label: recipe for label, recipe in RESNET_RECIPES.items() if label in names}
    if resnet:
        pairs.update(_variants("resnet18", resnet, folder / "resnet18"))
    return {name: pairs[name] for name in names}


def bare_loop(baseline: Path, variant: Path, seconds: float, threads: int) -> float:
    """The two files alternating in one process, 0.1 s bursts (ABBA) for `seconds`: the ratio of the
    pooled medians, the reference no verdict may contradict."""
    import numpy as np
    import onnxruntime as ort

    def session(path: Path):  # type: ignore[no-untyped-def]
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        loaded = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {}
        for item in loaded.get_inputs():
            shape = [dim if isinstance(dim, int) else 1 for dim in item.shape]
            feed[item.name] = np.random.default_rng(0).random(shape, dtype=np.float32)
        return lambda: loaded.run(None, feed)

    runs = [session(baseline), session(variant)]
    for run in runs:
        for _ in range(3):
            run()
    times: list[list[int]] = [[], []]
    end = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < end:
        for side in (0, 1) if turn % 2 == 0 else (1, 0):
            burst_end, count = time.monotonic() + 0.1, 0
            while time.monotonic() < burst_end or count < 2:
                started = time.perf_counter_ns()
                runs[side]()
                times[side].append(time.perf_counter_ns() - started)
                count += 1
        turn += 1
    return float(np.median(times[0]) / np.median(times[1]))


def _speed_decision(cell: dict) -> str:
    verdict = cell.get("verdict") or {}
    codes = [reason.get("code") for reason in verdict.get("reasons") or []]
    for code in ("FAILED", "FELL_BACK", "SLOWER", "NO_REAL_SPEEDUP", "INCONCLUSIVE"):
        if code in codes:
            return code
    return "faster"


def verify_once(
    tree: Path, code: str, baseline: Path, variant: Path, out: Path, history: Path, extra: list[str] | None = None
) -> Run:
    started = time.monotonic()
    done = _speedproof(
        tree,
        [
            "verify",
            str(baseline),
            "--candidate",
            f"{variant}=candidate",
            "--min-fidelity",
            "0",
            "--out",
            str(out),
            *(extra or []),
        ],
        {"SPEEDPROOF_LEVEL_HISTORY": str(history)},
    )
    seconds = time.monotonic() - started
    records = sorted(out.glob("*-verify-*.json"), key=lambda path: path.stat().st_mtime)
    if done.returncode not in (0, 1) or not records:
        return Run(code, seconds=seconds, error=(done.stderr or done.stdout)[-400:])
    record = json.loads(records[-1].read_text())
    records[-1].unlink()  # one record per run is read once; the folder stays small
    shutil.rmtree(out / records[-1].stem.split("-", 1)[1], ignore_errors=True)
    cell = next(cell for cell in record["cells"] if not cell.get("reference"))
    speedup = cell.get("speedup") or {}
    ab = cell.get("ab") or {}
    state = ab.get("host_state") or {}
    levels = state.get("block_levels") or []
    host = "unusual" if levels and state.get("unusual_blocks") == len(levels) else "moved" if state.get("moved") else ""
    return Run(
        code,
        ratio=speedup.get("ratio"),
        low=speedup.get("ci_low"),
        high=speedup.get("ci_high"),
        decision=_speed_decision(cell),
        seconds=float(ab.get("duration_s") or seconds),
        baseline_ms=speedup.get("baseline"),
        host=host,
    )


def _run_text(run: Run) -> str:
    if run.ratio is None:
        return f"{run.decision} {run.error.strip().splitlines()[-1] if run.error.strip() else ''}"
    return (
        f"{run.ratio:.2f}x [{run.low:.2f}, {run.high:.2f}] {run.decision:15} {run.seconds:5.1f} s "
        f"baseline {run.baseline_ms or 0:.3f} ms {run.host}"
    )


def summarize(name: str, results: PairResults, codes: list[str]) -> list[str]:
    lines = []
    measured = [run for run in results.runs if run.ratio is not None]
    median_all = statistics.median(run.ratio for run in measured) if measured else float("nan")  # type: ignore[misc]
    bare = ", ".join(f"{ratio:.2f}x" for ratio in results.bare)
    bare_median = statistics.median(results.bare) if results.bare else float("nan")
    lines.append(f"{name}: bare loop {bare}; median of all runs' ratios {median_all:.2f}x")
    for code in codes:
        runs = [run for run in results.runs if run.code == code]
        ok = [run for run in runs if run.ratio is not None]
        decisions = [run.decision for run in runs]
        contradicts = bool(set(decisions) & ABOVE) and bool(set(decisions) & BELOW)
        wrong_side = sum(
            1
            for run in runs
            if (run.decision == "faster" and bare_median < 1.0) or (run.decision == "SLOWER" and bare_median > 1.0)
        )
        holds = sum(1 for run in ok if run.low <= median_all <= run.high)  # type: ignore[operator]
        counts = {decision: decisions.count(decision) for decision in sorted(set(decisions))}
        states = [run.host for run in runs if run.host]
        said = f"; host moved in {states.count('moved')}, unusual in {states.count('unusual')}" if states else ""
        seconds = statistics.median(run.seconds for run in runs) if runs else 0.0
        lines.append(
            f"  {code}: {', '.join(f'{count} {decision}' for decision, count in counts.items())}; "
            f"contradiction: {'YES' if contradicts else 'no'}; against the bare loop: {wrong_side}; "
            f"interval holds {median_all:.2f}x in {holds}/{len(ok)}; median A/B {seconds:.1f} s{said}"
        )
        lines.append("    " + "  ".join(f"{run.ratio:.2f} [{run.low:.2f},{run.high:.2f}]" for run in ok))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--old",
        default=DEFAULT_OLD,
        help=f"git revision of the old code (default {DEFAULT_OLD}); 'none' runs this tree only",
    )
    parser.add_argument("--runs", type=int, default=10, help="verifications per pair and code (default 10)")
    parser.add_argument("--pairs", default=",".join(PAIRS), help=f"which pairs (default all: {','.join(PAIRS)})")
    parser.add_argument("--bare-s", type=float, default=60.0, help="seconds of each bare loop (default 60)")
    parser.add_argument("--threads", type=int, default=2, help="the bare loop's threads: the profile's (default 2)")
    parser.add_argument(
        "--new-args",
        default="",
        metavar="'ARGS'",
        help="more verify options for this tree's runs only, e.g. '--min-span-s 5' (a policy setting against the old "
        "code's default: with --old HEAD, the same code)",
    )
    args = parser.parse_args()
    names = [name for name in args.pairs.split(",") if name]
    unknown = sorted(set(names) - set(PAIRS))
    if unknown:
        parser.error(f"unknown pair(s) {', '.join(unknown)}; valid: {', '.join(PAIRS)}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="speedproof-reproducibility-") as scratch:
        folder = Path(scratch)
        trees = {"new": REPOSITORY}
        if args.old != "none":
            trees["old"] = folder / "old"
            subprocess.run(
                ["git", "-C", str(REPOSITORY), "worktree", "add", "-q", "--detach", str(trees["old"]), args.old],
                check=True,
            )
        try:
            print(f"building {len(names)} pairs ...", flush=True)
            pairs = build_pairs(folder, names)
            results = {name: PairResults() for name in names}
            for name, (baseline, variant) in pairs.items():
                results[name].bare.append(bare_loop(baseline, variant, args.bare_s, args.threads))
                print(f"  bare before {name}: {results[name].bare[-1]:.2f}x", flush=True)
            codes = list(trees)
            for round_index in range(args.runs):
                for index, (name, (baseline, variant)) in enumerate(pairs.items()):
                    order = codes if (round_index + index) % 2 == 0 else codes[::-1]
                    for code in order:
                        out = folder / "records" / code
                        out.mkdir(parents=True, exist_ok=True)
                        extra = shlex.split(args.new_args) if code == "new" else []
                        run = verify_once(trees[code], code, baseline, variant, out, folder / "levels" / code, extra)
                        results[name].runs.append(run)
                        clock = (time.monotonic() - started) / 60
                        print(f"  [{clock:5.1f} min] {name:14} {code}: {_run_text(run)}", flush=True)
            for name, (baseline, variant) in pairs.items():
                results[name].bare.append(bare_loop(baseline, variant, args.bare_s, args.threads))
                print(f"  bare after {name}: {results[name].bare[-1]:.2f}x", flush=True)
            print(f"\n{args.runs} runs per pair and code over {(time.monotonic() - started) / 60:.1f} minutes")
            for name in names:
                print("\n".join(summarize(name, results[name], codes)))
        finally:
            if "old" in trees:
                subprocess.run(
                    ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(trees["old"])], check=False
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
