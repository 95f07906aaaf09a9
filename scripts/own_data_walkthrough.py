"""Verify models compressed elsewhere, on their own data: the walkthrough behind docs/guides/own-model.md's
"Verify your own compressed model", run end to end and printed.

    python scripts/own_data_walkthrough.py --folder /tmp/walkthrough [--cnn mobilenet_v2] [--quick]

It makes every file the way a user would, outside speedproof, then runs speedproof on them:

1. a torchvision CNN (random weights) exported to ONNX, an int8 copy from ONNX Runtime's
   `quantize_dynamic` and a float16 copy from its float16 converter: `verify --candidate` (each is
   judged by closeness, not top-1 over random scores);
2. the digits teacher and a student distilled from its soft targets, as two ONNX files, with an npz
   of the test split: `verify --candidate student.onnx --data digits_test.npz` (accuracy);
3. an LSTM whose states carry the batch on dim 1 and a scalar sample rate: `bench --data`;
4. an interface mismatch (the LSTM given as a candidate of the digits teacher): exit 2;
5. a gate config shipping the student: exit 0 with a 20-point accuracy allowance, 1 without.

Timings are this host's; the figures to compare are the ratios speedproof prints.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPEEDPROOF = str(Path(sys.executable).parent / "speedproof")
QUICK_POLICY = ["--burst-duration-s", "0.05", "--min-pairs", "6", "--max-pair-duration-s", "10"]


def torchvision_cnn(folder: Path, name: str) -> tuple[Path, Path, Path]:
    import onnx
    import torch
    import torchvision
    from onnxruntime.quantization import quantize_dynamic
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from exporters.torch_to_onnx import export_to_onnx

    torch.manual_seed(0)
    module = getattr(torchvision.models, name)(weights=None).eval()
    baseline = export_to_onnx(module, [torch.randn(2, 3, 224, 224)], folder / f"{name}.onnx")
    int8 = folder / f"{name}_int8.onnx"
    quantize_dynamic(str(baseline), str(int8))
    fp16 = folder / f"{name}_fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(baseline)), keep_io_types=True), str(fp16))
    return baseline, int8, fp16


def run(title: str, args: list[str], cwd: Path) -> int:
    print(f"\n=== {title}\n$ speedproof {' '.join(args)}", flush=True)
    started = time.monotonic()
    completed = subprocess.run([SPEEDPROOF, *args], cwd=cwd, capture_output=True, text=True, check=False)
    print(completed.stdout.rstrip())
    if completed.stderr.strip():
        print(completed.stderr.rstrip()[-2000:])
    print(f"exit {completed.returncode} after {time.monotonic() - started:.0f} s", flush=True)
    return completed.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="where the files and records go")
    parser.add_argument("--cnn", default="mobilenet_v2", help="torchvision architecture for step 1")
    parser.add_argument("--quick", action="store_true", help="short A/B budgets (figures less steady)")
    args = parser.parse_args()
    from tests.own_data_models import write_distilled_pair, write_lstm

    folder = args.folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    out = ["--out", str(folder / "results")]
    policy = QUICK_POLICY if args.quick else []
    baseline, int8, fp16 = torchvision_cnn(folder, args.cnn)
    teacher, student, test_split = write_distilled_pair(folder)
    lstm, lstm_data = write_lstm(folder)
    codes = {}
    codes["cnn"] = run(
        f"1. {args.cnn}: files from ONNX Runtime's quantizer and float16 converter",
        ["verify", str(baseline), "--candidate", f"{int8}=int8-ort", "--candidate", f"{fp16}=fp16-ort", *policy, *out],
        folder,
    )
    codes["student"] = run(
        "2. digits teacher and a distilled student, on the test split",
        ["verify", str(teacher), "--candidate", f"{student}=student", "--data", str(test_split), *policy, *out],
        folder,
    )
    codes["lstm"] = run(
        "3. an LSTM: states [1, batch, 32], sample rate a scalar",
        ["bench", str(lstm), "--data", str(lstm_data), "--batch", "1,8", *out],
        folder,
    )
    codes["mismatch"] = run(
        "4. an interface mismatch", ["verify", str(teacher), "--candidate", f"{lstm}=lstm", *out], folder
    )
    for name, allowance in (("gate-pass", "max_accuracy_drop = 0.2\n"), ("gate-fail", "")):
        config = folder / f"{name}.toml"
        config.write_text(
            "[[check]]\n"
            'model = "teacher.onnx"\n'
            'candidates = [{ path = "student.onnx", label = "student" }]\n'
            'data = "digits_test.npz"\n'
            'required = ["student"]\n' + (f"[check.policy]\n{allowance}" if allowance else "")
        )
        codes[name] = run(
            f"5. {name}: the gate that ships the student", ["gate", "--config", str(config), *policy, *out], folder
        )
    print("\nexit codes:", ", ".join(f"{name} {code}" for name, code in codes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
