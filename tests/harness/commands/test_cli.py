"""The command line as users call it: output streams, exit codes, messages."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness.cli import EXIT_OK, EXIT_USAGE, main
from harness.commands import COMMAND_MODULES
from tests.helpers import FAST_FLAGS


def test_bench_json_prints_only_the_record(tiny_conv_onnx, tmp_path, capsys):
    code = main(
        ["bench", str(tiny_conv_onnx), "--batch", "1", "--threads", "1", "--out", str(tmp_path), "--json", *FAST_FLAGS]
    )
    captured = capsys.readouterr()
    assert code == EXIT_OK
    record = json.loads(captured.out)
    assert record["cells"][0]["status"] == "ok"
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_bench_table_on_stdout(tiny_conv_onnx, tmp_path, capsys):
    code = main(["bench", str(tiny_conv_onnx), "--batch", "1,2", "--out", str(tmp_path), *FAST_FLAGS])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "p50 ms" in out and "tiny_conv" in out and "record written to" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "nowhere/model.onnx"], "model file not found: nowhere/model.onnx"),
        (["bench", "resnet18", "--target", "tpu"], "unknown target 'tpu'"),
        (["bench", "resnet18", "--min-duration-s", "9", "--max-duration-s", "1"], "exceeds --max-duration-s"),
    ],
)
def test_usage_errors_exit_2_with_a_message(args, message, capsys):
    assert main(args) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_bad_batch_list_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["bench", "resnet18", "--batch", "1,x"])
    assert exited.value.code == EXIT_USAGE
    assert "comma-separated integers" in capsys.readouterr().err


def test_targets_lists_every_profile_with_a_verdict(capsys):
    assert main(["targets", "--json"]) == EXIT_OK
    listing = json.loads(capsys.readouterr().out)
    by_name = {entry["name"]: entry for entry in listing["targets"]}
    assert set(by_name) == {"x86-cpu", "cuda-gpu", "arm-edge"}
    for entry in by_name.values():
        assert entry["runs_here"] == (not entry["reasons"])
        assert entry["backends"][0]["default"] and entry["runs_here"] == entry["backends"][0]["runs_here"]
    assert [backend["name"] for backend in by_name["x86-cpu"]["backends"]] == [
        "onnxruntime",
        "torch",
        "openvino",
        "onnxruntime-genai",
    ]
    assert [backend["name"] for backend in by_name["cuda-gpu"]["backends"]] == ["torch", "onnxruntime", "tensorrt"]


def test_function_source_with_input_shape(tmp_path):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent("""
        import torch

        def tiny():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.ReLU())

        def tiny_with_example():
            return tiny(), torch.randn(1, 6)
    """)
    )
    for model, extra in (("my_models:tiny", ["--input-shape", "1x6"]), ("my_models:tiny_with_example", [])):
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "bench",
                model,
                *extra,
                "--batch",
                "1,3",
                "--json",
                "--out",
                str(tmp_path / "out"),
                *FAST_FLAGS,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "SPEEDPROOF_CACHE_DIR": str(tmp_path / "cache")},
        )
        assert completed.returncode == 0, completed.stderr
        record = json.loads(completed.stdout)
        assert [cell["status"] for cell in record["cells"]] == ["ok", "ok"]


def test_function_source_without_shape_says_what_to_pass(tmp_path, monkeypatch, capsys):
    (tmp_path / "shapeless.py").write_text("import torch\n\ndef build():\n    return torch.nn.Linear(2, 2)\n")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "shapeless:build", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "pass --input-shape" in capsys.readouterr().err


def test_the_speedproof_script_exits_quickly():
    from pathlib import Path

    assert 'speedproof = "harness.entry:script_main"' in (Path(__file__).parents[3] / "pyproject.toml").read_text()


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_every_command_explains_itself_in_its_help(name, capsys):
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: speedproof {name}") and len(out) > 300
    if name == "search":  # its epilog lists the families and the task limits
        assert "structured+int8:" in out and "safety-critical: 0.01" in out


def test_a_line_two_processes_print_to_one_pipe_goes_out_in_one_write(monkeypatch):
    """`cluster --local` and its worker processes share stdout; print() hands the text and its newline
    over separately (two writes on an unbuffered stream), which let the scheduler's line land inside a
    worker's line in CI. print_whole_line writes each line whole."""
    from harness.commands.options import print_whole_line

    class Recorder:
        def __init__(self):
            self.writes = []

        def write(self, text):
            self.writes.append(text)

        def flush(self):
            pass

    recorder = Recorder()
    monkeypatch.setattr("sys.stdout", recorder)
    print("worker at tls://127.0.0.1:1 joined", flush=True)
    assert len(recorder.writes) == 2  # what print does
    recorder.writes.clear()
    print_whole_line("worker at tls://127.0.0.1:1 joined")
    assert recorder.writes == ["worker at tls://127.0.0.1:1 joined\n"]
