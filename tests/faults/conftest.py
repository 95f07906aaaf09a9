"""The fault-injection suite's harness: every test runs speedproof in a sandbox with its own
system temp folder and cache, then checks that nothing was left behind: no temporary folder in
that temp folder, no process still running from it. Faults are injected for real: planted
modules, read-only and full file systems (a small tmpfs), signals, crashing user code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.helpers import FAST_POLICY_FLAGS

SPEEDPROOF = str(Path(sys.executable).parent / "speedproof")
FAST_VERIFY = FAST_POLICY_FLAGS
FAST_BENCH = ["--min-iterations", "5", "--min-duration-s", "0.02", "--batch", "1"]


def _as_from_a_terminal() -> None:
    """Ctrl-C's default disposition in the started speedproof, as a shell in a terminal gives it: a suite
    started from a background job (`nohup pytest &`) has SIGINT ignored, which its children inherit
    and speedproof then rightly keeps ignoring, and the tests that send SIGINT would send it in vain."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Sandbox:
    """Where one test's speedproof runs keep their temp files, cache and records."""

    root: Path

    @property
    def system_tmp(self) -> Path:
        return self.root / "system-tmp"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def out(self) -> Path:
        return self.root / "results"

    def env(self, **extra: str) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("SPEEDPROOF_")}
        environment.update(TMPDIR=str(self.system_tmp), SPEEDPROOF_CACHE_DIR=str(self.cache))
        environment.update(extra)
        return environment

    def start(self, *args: str, cwd: Path | None = None, **extra_env: str) -> subprocess.Popen[str]:
        """Start `speedproof ARGS` in `cwd` (default: the sandbox, so default outputs land there)."""
        return subprocess.Popen(
            [SPEEDPROOF, *args],
            cwd=cwd or self.root,
            env=self.env(**extra_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_as_from_a_terminal,
        )

    def run(
        self, *args: str, cwd: Path | None = None, timeout: float = 300, **extra_env: str
    ) -> subprocess.CompletedProcess:
        process = self.start(*args, cwd=cwd, **extra_env)
        stdout, stderr = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def records(self, folder: Path | None = None) -> list[Path]:
        folder = folder or self.out
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def processes(self) -> list[psutil.Process]:
        """Processes started from this sandbox's runs (their command lines name its temp folder)."""
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if any(str(self.system_tmp) in part for part in process.info["cmdline"] or ()):
                found.append(process)
        return found

    def leftovers(self, wait_s: float = 10.0) -> tuple[list[str], list[int]]:
        """Temp entries and processes still there after up to `wait_s` (workers of a killed run
        need a moment to see their parent gone)."""
        deadline = time.monotonic() + wait_s
        while True:
            entries = sorted(entry.name for entry in self.system_tmp.iterdir())
            processes = [process.pid for process in self.processes()]
            if (not entries and not processes) or time.monotonic() > deadline:
                return entries, processes
            time.sleep(0.2)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path)
    box.system_tmp.mkdir()
    yield box
    entries, processes = box.leftovers()
    for pid in processes:
        psutil.Process(pid).kill()
    assert not processes, f"processes left behind: {processes}"
    assert not entries, f"left in the temp folder: {entries}"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[object]:
    """`tmpfs(size_kib, read_only)` mounts a small tmpfs and returns its folder; skipped where
    mounting is not allowed (it needs root, as in CI)."""
    mounted: list[Path] = []

    def mount(size_kib: int = 64, read_only: bool = False) -> Path:
        folder = tmp_path / f"tmpfs-{len(mounted)}"
        folder.mkdir()
        options = f"size={size_kib}k" + (",ro" if read_only else "")
        completed = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
        )
        if completed.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {completed.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def no_traceback(stderr: str) -> bool:
    return "Traceback" not in stderr


def usage_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `speedproof ARGS` in this process; it must end with exit 2 and no traceback. Its stderr."""
    from harness.cli import EXIT_USAGE, main

    try:
        code = main(args)
    except SystemExit as exit_:  # argparse rejects bad option values itself
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err
    return err
