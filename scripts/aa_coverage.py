"""Coverage of the verifier's speedup interval on A/A comparisons, where the true speedup is 1.00.

For three models of different speed (about 0.1 ms, 1 ms and 10 ms per inference on a laptop-class
CPU: an MLP, a small CNN at 64x64, resnet18 at 224x224, random weights) and two A/A artifacts each
(`identity`: a byte-identical copy; `unstructured`: half of the weights zeroed, the same dense
kernels), it runs the verifier's A/B pair (live workers, ABBA bursts, planned looks) repeatedly,
on a quiet host and again beside a process that keeps one core busy, and prints per condition and
model: runs, how often the interval missed 1.00, how often a reason would claim SLOWER or a
speedup (interval above 1), how often the pair would be ACCEPTed at min_speedup 1.10 (must be
never), how many ended INCONCLUSIVE, and pairs and seconds per verdict. The goal: 1.00 inside the
interval in at least 95% of runs in both conditions, and no ACCEPT.

    python scripts/aa_coverage.py [--runs 8] [--conditions quiet,busy] [--models mlp,cnn64,resnet18]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from exporters.torch_to_onnx import export_to_onnx
from harness.measure.ab_pair import PairStop, StopRule, run_ab_pair
from harness.verdict.policy import Policy
from targets.inputs import resolve_input_specs
from targets.runners.base import WorkerRequest
from targets.runners.compatibility import resolve_target
from targets.runners.local import LocalRunner
from targets.runners.protocol import MeasurementProtocol

MIN_SPEEDUP = 1.10


def _models() -> dict[str, tuple[object, tuple[int, ...]]]:
    import torch
    import torchvision

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, stride=2, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 10),
    )
    wide = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10))
    return {
        "mlp": (mlp.eval(), (2, 256)),
        "mlp1k": (wide.eval(), (2, 1024)),  # between the two: about 0.1-0.2 ms (not in the default set)
        "cnn64": (cnn.eval(), (2, 3, 64, 64)),
        "resnet18": (torchvision.models.resnet18(weights=None).eval(), (2, 3, 224, 224)),
    }


def _zero_half(module: object) -> object:
    import copy

    import torch

    pruned = copy.deepcopy(module)
    with torch.no_grad():
        for parameter in pruned.parameters():  # type: ignore[attr-defined]
            if parameter.dim() > 1:
                threshold = parameter.abs().flatten().kthvalue(max(1, parameter.numel() // 2)).values
                parameter[parameter.abs() <= threshold] = 0.0
    return pruned


def build_artifacts(folder: Path, names: list[str]) -> dict[str, dict[str, Path]]:
    import torch

    artifacts = {}
    for name, (module, shape) in _models().items():
        if name not in names:
            continue
        baseline = folder / f"{name}.onnx"
        export_to_onnx(module, [torch.randn(*shape)], baseline)
        identity = folder / f"{name}-identity.onnx"
        shutil.copyfile(baseline, identity)
        unstructured = folder / f"{name}-unstructured.onnx"
        export_to_onnx(_zero_half(module), [torch.randn(*shape)], unstructured)
        artifacts[name] = {"baseline": baseline, "identity": identity, "unstructured": unstructured}
    return artifacts


@dataclass
class Tally:
    runs: int = 0
    missed_one: int = 0
    claims_slower: int = 0
    claims_faster: int = 0
    accepted: int = 0
    inconclusive: int = 0
    failed: int = 0
    pairs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    ms: float = 0.0


def _requests(baseline: Path, variant: Path, runner: LocalRunner) -> tuple[WorkerRequest, WorkerRequest]:
    import onnx

    from exporters.artifacts import artifact_at

    resolved = resolve_target("x86-cpu", None, runner)
    model = onnx.load(str(baseline), load_external_data=False)
    specs = resolve_input_specs(artifact_at(baseline).kind.model_inputs(model), 1, {})
    backend = resolved.profile.backends[0]
    protocol = MeasurementProtocol()
    return tuple(  # type: ignore[return-value]
        WorkerRequest.for_cell(str(path), backend, resolved, specs, 1, protocol) for path in (baseline, variant)
    )


def run_condition(artifacts: dict[str, dict[str, Path]], runs: int, condition: str) -> dict[str, Tally]:
    runner = LocalRunner()
    policy = Policy()
    tallies: dict[str, Tally] = {}
    busy = None
    if condition == "busy":
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for name, paths in artifacts.items():
            for kind in ("identity", "unstructured"):
                tally = tallies.setdefault(f"{name} {kind}", Tally())
                baseline_request, variant_request = _requests(paths["baseline"], paths[kind], runner)
                for run in range(runs):
                    outcome = run_ab_pair(
                        baseline_request,
                        variant_request,
                        policy.schedule,
                        StopRule(min_speedup=MIN_SPEEDUP, confidence=policy.rules.confidence),
                        runner,
                        load_timeout_s=120.0,
                    )
                    tally.runs += 1
                    estimate = outcome.speedup
                    if outcome.status != "ok" or estimate is None:
                        tally.failed += 1
                        continue
                    tally.missed_one += not estimate.ci_low <= 1.0 <= estimate.ci_high
                    tally.claims_slower += estimate.ci_high < 1.0
                    tally.claims_faster += estimate.ci_low > 1.0
                    tally.accepted += outcome.stopped_by == PairStop.ABOVE
                    tally.inconclusive += outcome.stopped_by in (
                        PairStop.OUT_OF_TIME,
                        PairStop.TOO_LITTLE_DATA,
                        PairStop.UNUSUAL_HOST_STATE,
                    )
                    tally.pairs.append(estimate.pairs)
                    tally.seconds.append(outcome.duration_s)
                    tally.ms = estimate.baseline
                    print(
                        f"  {condition} {name} {kind} run {run + 1}: {estimate.ratio:.3f}x "
                        f"[{estimate.ci_low:.3f}, {estimate.ci_high:.3f}] {estimate.pairs} pairs "
                        f"in {estimate.units} blocks "
                        f"{outcome.duration_s:.1f} s {outcome.stopped_by} contended {outcome.contended_pairs()}",
                        flush=True,
                    )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return tallies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="A/A runs per model, artifact and condition")
    parser.add_argument("--conditions", default="quiet,busy")
    parser.add_argument("--models", default="mlp,cnn64,resnet18")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="speedproof-aa-") as folder:
        artifacts = build_artifacts(Path(folder), args.models.split(","))
        results = {
            condition: run_condition(artifacts, args.runs, condition) for condition in args.conditions.split(",")
        }
    print(f"\nA/A coverage ({time.monotonic() - started:.0f} s in all; min_speedup {MIN_SPEEDUP})")
    header = (
        f"{'condition':9} {'pair':24} {'p50 ms':>7} {'runs':>4} {'missed 1':>8} {'SLOWER':>6} {'faster':>6} "
        f"{'ACCEPT':>6} {'INCONCL':>7} {'failed':>6} {'pairs':>5} {'s/verdict':>9}"
    )
    print(header)
    worst = 0.0
    accepted = 0
    for condition, tallies in results.items():
        total = Tally()
        for label, tally in tallies.items():
            measured = max(1, tally.runs - tally.failed)
            worst = max(worst, tally.missed_one / measured)
            accepted += tally.accepted
            for name in ("runs", "missed_one", "claims_slower", "claims_faster", "accepted", "inconclusive", "failed"):
                setattr(total, name, getattr(total, name) + getattr(tally, name))
            total.pairs += tally.pairs
            total.seconds += tally.seconds
            print(_row(condition, label, tally))
        print(_row(condition, "all", total))
    print(f"\nworst miss rate {worst:.1%} (goal <= 5%); A/A runs accepted: {accepted} (goal 0)")
    return 0 if worst <= 0.05 and accepted == 0 else 1


def _row(condition: str, label: str, tally: Tally) -> str:
    measured = max(1, tally.runs - tally.failed)
    pairs = sum(tally.pairs) / len(tally.pairs) if tally.pairs else 0.0
    seconds = sum(tally.seconds) / len(tally.seconds) if tally.seconds else 0.0
    ms = f"{tally.ms:7.3f}" if tally.ms else " " * 7
    return (
        f"{condition:9} {label:24} {ms} {tally.runs:4d} {tally.missed_one / measured:8.1%} "
        f"{tally.claims_slower:6d} {tally.claims_faster:6d} {tally.accepted:6d} {tally.inconclusive:7d} "
        f"{tally.failed:6d} {pairs:5.1f} {seconds:9.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
