"""Time to a verdict: the A/B seconds and burst pairs the verifier needs, for the old code and the
new in the same run, on models from ~0.1 ms to ~50 ms per inference.

For three models (digits-cnn's architecture at 32x32, a 1 ms CNN at 64x64, resnet18 at 224x224;
random weights: only speed matters here) it builds three A/B comparisons each: a clear faster
variant (structured pruning of half the channels, three quarters on digits-cnn), a clear slower
one (the same two files swapped: the unpruned model as the variant of the pruned one) and an
identity control (a byte-identical copy). Each comparison runs the verifier's A/B pair
(`run_ab_pair`, the x86-cpu profile, the default policy: min_speedup 1.10 at 95%) in a process of
its own, once with the old code (a git worktree at `--old`) and once with this tree's, alternating
which goes first, `--repeats` times.
It prints per comparison and code: the median A/B seconds (worker starts included) and pairs, the
speedup [interval], and the verdict the interval gives (faster: the interval clears 1.10; slower:
it lies below 1.00; same: below 1.10; inconclusive), which must be the same for both codes.

    python scripts/verdict_speed.py [--old REV] [--repeats 2] [--models digits-cnn,cnn1ms,resnet18]

Figures come from one run on a shared host: compare the two codes' ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# the last commit before the time-to-verdict work (issue 25)
DEFAULT_OLD = "34b0163"
MIN_SPEEDUP = 1.10
SHAPES = {"digits-cnn": (1, 1, 32, 32), "cnn1ms": (1, 3, 64, 64), "resnet18": (1, 3, 224, 224)}
# the share of channels pruned for the faster variant: enough for a clear (>= 1.5x) speedup
PRUNED = {"digits-cnn": 0.75, "cnn1ms": 0.5, "resnet18": 0.5}


def _module(name: str) -> object:
    import torch

    torch.manual_seed(0)
    if name == "digits-cnn":
        from harness.models.digits import build_digits_cnn

        return build_digits_cnn().eval()
    if name == "resnet18":
        import torchvision

        return torchvision.models.resnet18(weights=None).eval()
    return torch.nn.Sequential(  # about 1 ms on a 2-core laptop-class CPU
        torch.nn.Conv2d(3, 48, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(48, 96, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(96, 96, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(96, 10),
    ).eval()


def build_comparisons(folder: Path, names: list[str]) -> list[tuple[str, Path, Path]]:
    """(label, baseline, variant) for every model: faster, slower, identity."""
    import torch

    from exporters.torch_to_onnx import export_to_onnx
    from harness.recipes.channel_pruning import prune_structured

    comparisons = []
    for name in names:
        module = _module(name)
        example = [torch.randn(*SHAPES[name])]
        full = folder / f"{name}.onnx"
        export_to_onnx(module, example, full)
        prune_structured(module, example, PRUNED[name], "l2", 1, False)  # in place
        half = folder / f"{name}-pruned.onnx"
        export_to_onnx(module, example, half)
        copy = folder / f"{name}-copy.onnx"
        shutil.copyfile(full, copy)
        comparisons += [
            (f"{name} faster", full, half),
            (f"{name} slower", half, full),
            (f"{name} identity", full, copy),
        ]
    return comparisons


def measure_one(baseline: Path, variant: Path) -> dict[str, object]:
    """The child: one A/B pair with whichever code is first on sys.path; its figures as JSON."""
    import onnx

    from exporters.artifacts import artifact_at
    from harness.measure.ab_pair import StopRule, run_ab_pair
    from harness.verdict.policy import Policy
    from targets.inputs import resolve_input_specs
    from targets.runners.base import WorkerRequest

    try:
        from targets.runners.compatibility import resolve_target
    except ImportError:  # code from before issue 28 (the old revision) kept it one floor up
        from targets.compatibility import resolve_target  # type: ignore[no-redef]
    from targets.runners.local import LocalRunner
    from targets.runners.protocol import MeasurementProtocol

    runner = LocalRunner()
    resolved = resolve_target("x86-cpu", None, runner)
    model = onnx.load(str(baseline), load_external_data=False)
    specs = resolve_input_specs(artifact_at(baseline).kind.model_inputs(model), 1, {})
    backend, protocol = resolved.profile.backends[0], MeasurementProtocol()
    requests = [
        WorkerRequest.for_cell(str(path), backend, resolved, specs, 1, protocol) for path in (baseline, variant)
    ]
    policy = Policy()
    outcome = run_ab_pair(
        requests[0],
        requests[1],
        policy.schedule,
        StopRule(min_speedup=MIN_SPEEDUP, confidence=policy.rules.confidence),
        runner=runner,
        load_timeout_s=protocol.load_allowance_s + protocol.warmup_min_duration_s,
    )
    if outcome.status != "ok" or outcome.speedup is None:
        return {"failed": outcome.error}
    estimate = outcome.speedup
    import harness

    return {
        "code": str(Path(harness.__file__).resolve().parent.parent),
        "seconds": outcome.duration_s,
        "pairs": estimate.pairs,
        "ratio": estimate.ratio,
        "low": estimate.ci_low,
        "high": estimate.ci_high,
        "ms": (outcome.baseline.latency_ms or {}).get("p50"),
        "fresh": outcome.fresh_workers,
    }


def verdict_of(figures: dict[str, float]) -> str:
    if figures["low"] >= MIN_SPEEDUP:
        return "faster"
    if figures["high"] < 1.0:
        return "slower"
    if figures["high"] < MIN_SPEEDUP:
        return "same"
    return "inconclusive"


def run_child(tree: Path, baseline: Path, variant: Path) -> dict[str, object]:
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    script = tree / "scripts" / "verdict_speed.py"
    if not script.exists():  # an old tree without this script: the child code is this file's
        script = Path(__file__).resolve()
    done = subprocess.run(
        [sys.executable, str(script), "--child", str(baseline), str(variant)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        cwd=tree,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"failed": (done.stderr or done.stdout)[-600:]}
    return dict(json.loads(lines[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default=DEFAULT_OLD, help=f"git revision of the old code (default {DEFAULT_OLD})")
    parser.add_argument("--repeats", type=int, default=2, help="runs per comparison and code (default 2)")
    parser.add_argument("--models", default="digits-cnn,cnn1ms,resnet18")
    parser.add_argument("--child", nargs=2, metavar=("BASELINE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(Path(args.child[0]), Path(args.child[1]))))
        return 0
    names = [name for name in args.models.split(",") if name]
    unknown = sorted(set(names) - set(SHAPES))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(SHAPES)}")
    with tempfile.TemporaryDirectory(prefix="speedproof-verdict-speed-") as scratch:
        folder = Path(scratch)
        old_tree = folder / "old"
        subprocess.run(
            ["git", "-C", str(REPOSITORY), "worktree", "add", "-q", "--detach", str(old_tree), args.old], check=True
        )
        try:
            print(f"building {len(names) * 3} comparisons ...", flush=True)
            comparisons = build_comparisons(folder, names)
            trees = {"old": old_tree, "new": REPOSITORY}
            results: dict[tuple[str, str], list[dict[str, object]]] = {}
            for repeat in range(args.repeats):
                for index, (label, baseline, variant) in enumerate(comparisons):
                    order = ("old", "new") if (repeat + index) % 2 == 0 else ("new", "old")
                    for code in order:
                        figures = run_child(trees[code], baseline, variant)
                        results.setdefault((label, code), []).append(figures)
                        shown = figures.get("failed") or (
                            f"{figures['seconds']:.1f} s, {figures['pairs']} pairs, {figures['ratio']:.2f}x "
                            f"[{figures['low']:.2f}, {figures['high']:.2f}] {verdict_of(figures)}"  # type: ignore[arg-type]
                        )
                        print(f"  {label:22} {code}: {shown}", flush=True)
            _print_table(comparisons, results)
        finally:
            subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(old_tree)], check=False)
    return 0


def _print_table(comparisons: list[tuple[str, Path, Path]], results: dict) -> None:
    side = f"{'s':>6} {'pairs':>5} {'verdicts':14}"
    print(f"\n{'comparison':22} {'p50 ms':>7} | old {side} | new {side} | old/new")
    for label, _, _ in comparisons:
        row, seconds = [], {}
        for code in ("old", "new"):
            runs = [figures for figures in results[(label, code)] if "failed" not in figures]
            if not runs:
                row.append(f"{'failed':>6} {'':>5} {'':14}")
                continue
            seconds[code] = statistics.median(float(figures["seconds"]) for figures in runs)
            pairs = statistics.median(int(figures["pairs"]) for figures in runs)
            verdicts = ",".join(sorted({verdict_of(figures) for figures in runs}))
            row.append(f"{seconds[code]:6.1f} {pairs:5.0f} {verdicts:14}")
        ms = next((figures.get("ms") for figures in results[(label, "new")] if figures.get("ms")), None)
        ratio = f"{seconds['old'] / seconds['new']:.1f}x" if len(seconds) == 2 else "-"
        print(f"{label:22} {ms or 0:7.3f} |     {row[0]} |     {row[1]} | {ratio}")


if __name__ == "__main__":
    sys.exit(main())
