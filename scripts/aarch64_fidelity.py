"""Do a model and its compressed variants compute on aarch64 what they compute here?

Builds the variants as `speedproof variants` does, then runs every artifact on the same generated
inputs twice: here (x86 onnxruntime) and in the emulated aarch64 Python (onnxruntime's aarch64 wheel
under qemu, see scripts/setup_aarch64_python.py), and prints per variant whether it loaded on aarch64,
the top-1 agreement and mean cosine of its outputs with this host's, and the largest absolute
difference. A model that cannot load, or computes differently, on ARM shows up here before a board
sees it. No timing: emulated timings mean nothing.

    python scripts/aarch64_fidelity.py MODEL [--recipes identity,int8-dynamic,...] [--folder DIR]
        [--input-shape 1x3x224x224]

Exit status 1 when a variant fails on aarch64 or agrees with this host on fewer than 99% of the
inputs' top-1 answers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from tabulate import tabulate

from harness.variants.preparation import prepare_variants
from harness.variants.quality import fidelity, generated_feeds
from targets.runners.compatibility import resolve_target
from targets.runners.emulated import DEFAULT_FOLDER, EmulatedAarch64Runner
from targets.runners.local import LocalRunner

MIN_AGREEMENT = 0.99
DEFAULT_RECIPES = "identity,structured:0.5,int8-dynamic,fp16"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="any model source speedproof accepts (zoo name, .onnx, package.module:function)")
    parser.add_argument("--recipes", default=DEFAULT_RECIPES, help="comma-separated recipes (default %(default)s)")
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="the emulated Python's folder")
    parser.add_argument("--input-shape", action="append", default=[], help="as speedproof's --input-shape")
    args = parser.parse_args()

    emulated = EmulatedAarch64Runner(args.folder)
    problem = emulated.setup_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    here = LocalRunner()
    recipes = tuple(text for text in args.recipes.split(",") if text)
    print(f"building {len(recipes)} variants of {args.model} (quality on aarch64, under emulation) ...", flush=True)
    resolved = resolve_target("arm-edge", 1, emulated)
    backend = resolved.profile.backends[0]
    with tempfile.TemporaryDirectory(prefix="speedproof-aarch64-") as folder:
        prepared = prepare_variants(
            args.model, recipes, tuple(args.input_shape), resolved, emulated, Path(folder), lambda line: None
        )
        feeds = generated_feeds(prepared.model_inputs, prepared.overrides)
        rows, failed = [], False
        for variant in prepared.variants:
            if not variant.ok or variant.artifact_path is None:
                rows.append([variant.recipe, "no", "-", "-", "-", (variant.error or "")[-160:]])
                failed = True
                continue
            x86 = here.first_outputs(str(variant.artifact_path), backend, 1, feeds)
            arm = emulated.first_outputs(str(variant.artifact_path), backend, 1, feeds)
            agreement = fidelity(arm, x86)
            largest = float(np.max(np.abs(arm - x86))) if arm.size else 0.0
            failed |= agreement["top1_agreement"] < MIN_AGREEMENT
            rows.append(
                [
                    variant.recipe,
                    "yes",
                    f"{agreement['top1_agreement']:.1%}",
                    f"{agreement['mean_cosine']:.6f}",
                    f"{largest:.2e}",
                    "",
                ]
            )
    headers = ["variant", "loads on aarch64", "top-1 agreement", "mean cosine", "max |diff|", "error"]
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    print(f"\n{len(feeds)} generated batches; aarch64 = onnxruntime's aarch64 wheel under qemu (functional only)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
