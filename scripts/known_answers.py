"""Known-answer benchmark of the verifier: `speedproof verify` on resnet18 and mobilenet_v2 with the
recipes whose verdicts on an AVX2 CPU without VNNI are known, repeated, printing every verdict, its
speedup interval and the wall time it took.

Expected on x86-cpu without VNNI/AMX: unstructured:0.9 NO_REAL_SPEEDUP (smaller, not faster),
structured:0.5 ACCEPT, int8-dynamic and int8-static SLOWER, identity rejected; and the same
verdicts on every repetition. Exit code 1 when a verdict differs from the expected one or between
repetitions.

    python scripts/known_answers.py [--repetitions 3] [--models resnet18,mobilenet_v2] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.verdict.rules import X86_INT8_FLAGS
from harness.verdict.verify import VerifyRequest, run_verify
from targets.runners.local import LocalRunner

RECIPES = ("unstructured:0.9", "structured:0.5", "int8-dynamic", "int8-static", "identity")
# recipe -> (expected decision, reason codes of which one must be present; empty: any)
EXPECTED = {
    "unstructured:0.9": ("REJECT", {"NO_REAL_SPEEDUP"}),
    "structured:0.5": ("ACCEPT", set()),
    "int8-dynamic": ("REJECT", {"SLOWER"}),
    "int8-static": ("REJECT", {"SLOWER"}),
    "identity": ("REJECT", set()),
}


def _verdict_key(cell: dict) -> str:
    verdict = cell["verdict"]
    return verdict["decision"] + (" " + " ".join(r["code"] for r in verdict["reasons"]) if verdict["reasons"] else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--target", default="x86-cpu")
    parser.add_argument("--out", type=Path, default=Path("results/known-answers"))
    args = parser.parse_args()

    runner = LocalRunner()
    host = runner.fingerprint()
    int8_capable = bool(set(X86_INT8_FLAGS) & set(host.cpu_flags))
    print(f"host: {host.cpu_model}, {host.logical_cores} CPUs, int8 dot-product instructions: {int8_capable}")
    if int8_capable:
        print("note: this CPU has VNNI/AMX; the int8 expectations below assume it has not")
    seen: dict[tuple[str, str], list[str]] = {}
    mismatches = []
    started = time.monotonic()
    for repetition in range(1, args.repetitions + 1):
        for model in args.models.split(","):
            run_started = time.monotonic()
            record, path = run_verify(
                VerifyRequest(model=model, recipes=RECIPES, target=args.target, out_dir=args.out), runner=runner
            )
            build_s = {variant["recipe"]: variant.get("build_s") or 0.0 for variant in record["variants"]}
            print(f"\nrepetition {repetition}, {model} ({time.monotonic() - run_started:.0f} s in all; {path})")
            for cell in record["cells"]:
                if cell.get("reference"):
                    continue
                recipe, speedup = cell["variant"], cell.get("speedup") or {}
                ab_s = (cell.get("ab") or {}).get("duration_s") or 0.0
                interval = (
                    f"{speedup['ratio']:.2f}x [{speedup['ci_low']:.2f}, {speedup['ci_high']:.2f}]" if speedup else "-"
                )
                key = _verdict_key(cell)
                seen.setdefault((model, recipe), []).append(key)
                decision, codes = EXPECTED[recipe]
                found = {reason["code"] for reason in cell["verdict"]["reasons"]}
                ok = cell["verdict"]["decision"] == decision and (not codes or codes & found)
                if not ok:
                    mismatches.append(f"{model} {recipe} repetition {repetition}: {key}, expected {decision} {codes}")
                print(
                    f"  {recipe:18s} {key:32s} {interval:22s} pairs {(cell.get('ab') or {}).get('pairs', 0):3d}  "
                    f"A/B {ab_s:5.1f} s + build {build_s.get(recipe, 0.0):5.1f} s  {'ok' if ok else 'UNEXPECTED'}"
                )
    print(f"\n{args.repetitions} repetitions in {time.monotonic() - started:.0f} s")
    unstable = {key: verdicts for key, verdicts in seen.items() if len(set(verdicts)) > 1}
    for (model, recipe), verdicts in unstable.items():
        print(f"UNSTABLE {model} {recipe}: {verdicts}")
    for mismatch in mismatches:
        print(f"UNEXPECTED {mismatch}")
    if not unstable and not mismatches:
        print("every verdict as expected and identical on every repetition")
    return 1 if unstable or mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
