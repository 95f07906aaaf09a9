"""The Python API guide's example (docs/guides/python-api.md), run as written: a baseline ONNX file and a
candidate made with ONNX Runtime's quantizer, verified with `harness.verify`, the verdicts read from the typed result.

    python scripts/api_example.py [--folder DIR]

It first makes `model.onnx` (torchvision's resnet18, random weights: latency only) and
`model_int8.onnx` (`onnxruntime.quantization.quantize_dynamic`) in DIR, then runs the example and
prints what it prints. Needs the `vision` extra (torchvision).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def make_files(folder: Path) -> None:
    import torch
    import torchvision
    from onnxruntime.quantization import quantize_dynamic

    model = torchvision.models.resnet18(weights=None).eval()
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), folder / "model.onnx", dynamo=True)
    quantize_dynamic(str(folder / "model.onnx"), str(folder / "model_int8.onnx"))


def example() -> None:
    # --- the guide's example, as written ---
    from harness import verify

    result = verify(
        "model.onnx",
        recipes=["int8-static"],
        candidates={"int8-ort": "model_int8.onnx"},
        target="x86-cpu",
        min_speedup=1.2,
        progress=print,
    )
    for cell in result.verdicts:
        print(cell.variant, cell.verdict.decision, f"{cell.speedup.ratio:.2f}x", cell.verdict.next_step)
        for reason in cell.verdict.reasons:
            print("   ", reason.code, "-", reason.message)
    print("accepted:", [cell.variant for cell in result.accepted()], "record:", result.path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--folder", type=Path, default=None, help="where the files and records go (default: a temp folder)"
    )
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="speedproof-api-example-"))
    folder.mkdir(parents=True, exist_ok=True)
    make_files(folder)
    os.chdir(folder)
    example()
    print(f"(files in {folder})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
