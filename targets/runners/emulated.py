"""The runner for an emulated aarch64 Python (`--remote qemu-aarch64:FOLDER`): the board agent runs
under `qemu-aarch64-static` with Debian's arm64 Python and onnxruntime's aarch64 wheel, as
`scripts/setup_aarch64_python.py` leaves them in FOLDER (default
~/.cache/speedproof/aarch64-python). It shares this host's files, so artifacts are used where they
are, and this host's speedproof source (on PYTHONPATH after the aarch64 wheels).

What it is for: a model that cannot load, or computes something else, on aarch64's onnxruntime is
caught before a board sees it (its quality is computed there). Its timings are emulated: the
fingerprint says `emulated`, cells carry the warning, and a verdict is never decided on them.
"""

from __future__ import annotations

from pathlib import Path

import targets
from targets.runners.agent import AGENT_MODULE, AgentRunner

SCHEME = "qemu-aarch64:"
DEFAULT_FOLDER = Path.home() / ".cache" / "speedproof" / "aarch64-python"
EMULATOR = "qemu-aarch64-static"
PYTHON = "usr/bin/python3.11"
SETUP = "python scripts/setup_aarch64_python.py"


def emulated_folder(remote: str) -> Path:
    """The folder of `qemu-aarch64:FOLDER` (empty: the default)."""
    text = remote.removeprefix(SCHEME)
    return Path(text).expanduser() if text else DEFAULT_FOLDER


class EmulatedAarch64Runner(AgentRunner):
    """Runs the board agent in an emulated aarch64 Python on this host."""

    check_version = False  # the emulated Python imports this host's own speedproof source
    shares_this_host = True  # qemu keeps a core of this host busy

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.label = f"{SCHEME}{self.folder}"

    def agent_command(self, *agent_arguments: str) -> list[str]:
        source_root = Path(targets.__file__).resolve().parent.parent
        python_path = f"{self.folder / 'site'}:{source_root}"
        sysroot = self.folder / "sysroot"
        return [
            "env",
            f"PYTHONPATH={python_path}",
            EMULATOR,
            "-L",
            str(sysroot),
            str(sysroot / PYTHON),
            "-m",
            AGENT_MODULE,
            *agent_arguments,
        ]

    def python_name(self) -> str:
        return str(self.folder / "sysroot" / PYTHON)

    def board_path(self, local_path: str) -> str:
        return str(Path(local_path).resolve())  # the emulated Python sees this host's files

    def missing_program(self, error: OSError) -> str:
        return f"{self.label}: cannot start {EMULATOR} ({error}); set it up with {SETUP}"

    def setup_problem(self) -> str | None:
        """Why the folder cannot run the agent yet; None when it looks set up."""
        if not (self.folder / "sysroot" / PYTHON).exists() or not (self.folder / "site" / "onnxruntime").is_dir():
            return f"{self.label}: no emulated aarch64 Python there; set it up with {SETUP} --folder {self.folder}"
        return None
