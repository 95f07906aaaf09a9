"""User code that misbehaves: a module planted beside the model must not run inside a worker, and a
`module:function` source that crashes, kills itself, hangs, eats memory, raises or exits while it
is imported or called fails the run with a message (exit 2) instead of taking the CLI down."""

from __future__ import annotations

import textwrap

import psutil
import pytest

from tests.faults.conftest import FAST_BENCH, no_traceback

PLANTED = (
    "from pathlib import Path\nPath(__file__).with_name('PLANTED-CODE-RAN').write_text('yes')\nraise SystemExit(9)\n"
)


@pytest.mark.parametrize("module", ["numpy", "onnxruntime", "json"])
def test_a_module_planted_beside_the_model_never_runs_in_a_worker(sandbox, tiny_conv_onnx, module):
    folder = sandbox.root / "work"
    folder.mkdir()
    (folder / f"{module}.py").write_text(PLANTED)
    model = folder / "model.onnx"
    model.write_bytes(tiny_conv_onnx.read_bytes())
    completed = sandbox.run("bench", "model.onnx", *FAST_BENCH, "--out", "results", cwd=folder)
    assert completed.returncode == 0, completed.stderr
    assert not (folder / "PLANTED-CODE-RAN").exists()


BUILD = "def build():\n    import torch\n    return torch.nn.Linear(4, 2), torch.randn(2, 4)\n"
MISBEHAVING_SOURCES = {
    "segfault": ("import ctypes\nctypes.string_at(0)\n", "crashed with SIGSEGV"),
    "sigkill": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "crashed with SIGKILL"),
    "hang": ("import time\ntime.sleep(3600)\n", "took longer than 5 s and was stopped"),
    "memory": (
        "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 2**20))\n",
        "ran out of memory under the cap of 1500 MB",
    ),
    "syntax": ("def broken(:\n", "SyntaxError"),
    "raises": ("raise RuntimeError('no GPU found')\n", "RuntimeError: no GPU found"),
    "exit-at-import": ("import sys\nsys.exit(3)\n", "called sys.exit(3)"),
    "exit-in-function": ("", "build() called sys.exit(3)"),
}


@pytest.mark.parametrize("fault", list(MISBEHAVING_SOURCES))
def test_misbehaving_user_code_fails_the_run_with_a_message(sandbox, fault):
    code, message = MISBEHAVING_SOURCES[fault]
    folder = sandbox.root / "user"
    folder.mkdir()
    if fault == "exit-in-function":
        body = "def build():\n    import sys\n    sys.exit(3)\n"
    else:
        body = code + BUILD
    (folder / "usermodel.py").write_text(body)
    completed = sandbox.run(
        "bench",
        "usermodel:build",
        *FAST_BENCH,
        "--out",
        "results",
        cwd=folder,
        timeout=120,
        # the hang's limit; the others get time to spare on a loaded host (the memory case took over 5 s in
        # a suite run: the contained process imports torch, then fills 1.5 GB)
        SPEEDPROOF_SOURCE_TIMEOUT_S="5" if fault == "hang" else "60",
        SPEEDPROOF_SOURCE_MEMORY_MB="1500",
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "model 'usermodel:build'" in completed.stderr and message in completed.stderr, completed.stderr
    assert no_traceback(completed.stderr.split("its last output:")[0])
    assert not (folder / "results").exists()


def test_a_well_behaved_source_still_runs_its_torch_recipes(sandbox):
    folder = sandbox.root / "user"
    folder.mkdir()
    (folder / "usermodel.py").write_text(
        textwrap.dedent(
            """\
            import torch

            def build():
                torch.manual_seed(0)
                module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
                return module.eval(), torch.randn(2, 16)
            """
        )
    )
    completed = sandbox.run(
        "bench", "usermodel:build", *FAST_BENCH, "--recipes", "structured:0.5", "--out", "results", cwd=folder
    )
    assert completed.returncode == 0, completed.stderr
    assert "structured:0.5" in completed.stdout


def test_a_timed_out_source_leaves_no_child_running(sandbox):
    """A module that starts a process of its own and then hangs: the time limit stops the whole
    contained session, its child included (before, the child was reparented to init and ran on)."""
    folder = sandbox.root / "user"
    folder.mkdir()
    tag = f"speedproof-child-of-{sandbox.root.name}"
    (folder / "spawner.py").write_text(
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)', {tag!r}])\n"
        "time.sleep(3600)\n" + BUILD
    )
    completed = sandbox.run(
        "bench",
        "spawner:build",
        *FAST_BENCH,
        "--out",
        "results",
        cwd=folder,
        timeout=120,
        SPEEDPROOF_SOURCE_TIMEOUT_S="5",
    )
    assert completed.returncode == 2 and "took longer than 5 s and was stopped" in completed.stderr
    survivors = [process for process in psutil.process_iter(["cmdline"]) if tag in (process.info["cmdline"] or [])]
    for process in survivors:
        process.kill()
    assert not survivors, f"the source's child outlived it: {survivors}"
