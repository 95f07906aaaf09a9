"""Does a worker process carry a speed offset of its own? A/A pairs measured in several fresh
process pairs.

The verifier's interval treats the burst pairs of one A/B run as independent, but both sides of a
run are one process each for the whole run. If a process has a speed of its own (memory layout,
cache sets, page placement), every pair of the run shares it and the interval cannot see it. This
starts PROCESS_PAIRS fresh pairs of live workers for an A/A comparison (aa_coverage.py's models:
`identity` is a byte-identical copy, `unstructured` half of the weights zeroed), takes PAIRS
alternating bursts in each, and prints each process pair's median speedup with the spread of its
pair ratios, then the spread of those medians (sd of log) beside what the pairs' own scatter
predicts for a median (1.2533 sd / sqrt(n), sd from the pairs' interquartile range). A ratio well
above 1 is a per-process offset.

With --shared, each "process pair" is the A/B pair's two shared workers: two processes that each
load both sides (baseline first in one, variant first in the other), the pairs taking turns in
them, each pair after a settling burst and each burst after the pair's quiet pause: a ratio near 1
then says that what offsets remain hit both sides alike.

    python scripts/process_offset.py [--model mlp|mlp1k|cnn64|resnet18] [--process-pairs 8] [--pairs 60] [--shared]

Figures come from one run; the host is shared.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aa_coverage import _requests, build_artifacts  # noqa: E402

from harness.measure.ab_pair import QUIET_BEFORE_SHORT_BURST_S, SETTLING_BURST_S  # noqa: E402
from targets.runners.local import LocalRunner  # noqa: E402

BURST_S = 0.03
BURST_ITERATIONS = 5


def one_process_pair(runner: LocalRunner, requests: tuple, pairs: int, shared: bool) -> tuple[list[float], float]:
    """log(baseline p50 / variant p50) of each of `pairs` alternating bursts in one fresh process pair
    (with `shared`: two processes each holding both sides, baseline first in one and variant first in
    the other, the pairs taking turns in them, as the A/B pair's shared workers do), and the
    baseline's median p50 (ms)."""
    if shared:
        workers = [
            runner.start_shared_live_worker(requests, "baseline+variant"),
            runner.start_shared_live_worker(requests[::-1], "variant+baseline"),
        ]
        sides = [{"baseline": (workers[0], 0), "variant": (workers[0], 1)}]
        sides.append({"baseline": (workers[1], 1), "variant": (workers[1], 0)})
    else:
        workers = [runner.start_live_worker(requests[0], "baseline"), runner.start_live_worker(requests[1], "variant")]
        sides = [{"baseline": (workers[0], 0), "variant": (workers[1], 0)}]
    try:
        for worker in workers:
            worker.start(120)
        logs, baseline_p50 = [], []
        for index in range(pairs):
            order = ("baseline", "variant") if index % 2 == 0 else ("variant", "baseline")
            p50 = {}
            if shared:  # as the A/B pair does: a settling burst of the first side, not counted
                worker, side = sides[index % len(sides)][order[0]]
                worker.burst(SETTLING_BURST_S, 1, side=side) if side else worker.burst(SETTLING_BURST_S, 1)
            for label in order:
                worker, side = sides[index % len(sides)][label]
                if shared:  # as the A/B pair does: the other side's runtime threads go quiet first
                    time.sleep(QUIET_BEFORE_SHORT_BURST_S)
                burst = (
                    worker.burst(BURST_S, BURST_ITERATIONS, side=side)
                    if side
                    else worker.burst(BURST_S, BURST_ITERATIONS)
                )
                p50[label] = statistics.median(burst["latencies_ns"])
            logs.append(math.log(p50["baseline"] / p50["variant"]))
            baseline_p50.append(p50["baseline"] / 1e6)
    finally:
        for worker in workers:
            worker.close()
    return logs, statistics.median(baseline_p50)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mlp", choices=["mlp", "mlp1k", "cnn64", "resnet18"])
    parser.add_argument("--process-pairs", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=60, help="burst pairs per process pair (default 60)")
    parser.add_argument("--shared", action="store_true", help="both sides in one process (the shared worker)")
    args = parser.parse_args()
    runner = LocalRunner()
    with tempfile.TemporaryDirectory(prefix="speedproof-offset-") as folder:
        artifacts = build_artifacts(Path(folder), [args.model])[args.model]
        for kind in ("identity", "unstructured"):
            requests = _requests(artifacts["baseline"], artifacts[kind], runner)
            medians, within = [], []
            for index in range(args.process_pairs):
                logs, p50_ms = one_process_pair(runner, requests, args.pairs, args.shared)
                logs.sort()
                median = statistics.median(logs)
                quarter = len(logs) // 4
                medians.append(median)
                spread = (logs[-quarter - 1] - logs[quarter]) / 1.349  # the pairs' sd, robust to a few outliers
                within.append(1.2533 * spread / math.sqrt(len(logs)))
                print(
                    f"{args.model} ({p50_ms:.3f} ms) {kind:12} process pair {index}: speedup {math.exp(median):.3f} "
                    f"(middle half of pair ratios {math.exp(logs[quarter]):.3f}-{math.exp(logs[-quarter - 1]):.3f})",
                    flush=True,
                )
            between, expected = statistics.stdev(medians), statistics.median(within)
            design = " (shared)" if args.shared else ""
            print(
                f"{args.model} {kind}{design}: sd of per-process medians {between:.4f} (log), a median's sd from "
                f"the pairs' scatter {expected:.4f}: ratio {between / expected:.1f}\n",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
