"""Set up an emulated aarch64 Python that can run speedproof's board agent, for functional checks of
artifacts "on ARM" without ARM hardware: `--remote qemu-aarch64:FOLDER` then runs them there.

What it does (as root, on Debian/Ubuntu; about a minute, most of it `apt-get update`):
1. installs `qemu-user-static` and adds the arm64 architecture to dpkg (`apt-get update` once);
2. downloads Debian's arm64 Python 3.11 and the libraries it links (`apt-get download`) and unpacks
   them into FOLDER/sysroot (`dpkg -x`: nothing is installed into the system);
3. downloads the aarch64 wheels of onnxruntime 1.22 (1.23+ crash at import under Debian's qemu 7.2),
   numpy and psutil and unpacks them into FOLDER/site;
4. runs `qemu-aarch64-static -L FOLDER/sysroot python3.11 -c "import onnxruntime"` to prove it works.

Timings taken under emulation mean nothing about real ARM hardware: speedproof marks every cell run
there `emulated` and never lets one decide a verdict. What the emulated run is good for: a model
that cannot load, or computes something else, on aarch64's onnxruntime is caught before a board is.

    python scripts/setup_aarch64_python.py [--folder ~/.cache/speedproof/aarch64-python] [--if-possible]

`--if-possible` (the README's test command uses it): on a host where it cannot be set up (not root,
no apt-get, no registry) say why and exit 0, so the tests that need it skip with that reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

DEFAULT_FOLDER = Path.home() / ".cache" / "speedproof" / "aarch64-python"
PYTHON = "python3.11"
# Debian 12's arm64 Python and what it links (apt-cache depends python3.11-minimal libpython3.11-stdlib)
DEBIAN_PACKAGES = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libssl3",
    "libbz2-1.0",
    "liblzma5",
    "libsqlite3-0",
    "libuuid1",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "libcrypt1",
    "libnsl2",
    "libtirpc3",
    "libdb5.3",
    "libgssapi-krb5-2",
    "libkrb5-3",
    "libk5crypto3",
    "libkrb5support0",
    "libcom-err2",
    "libkeyutils1",
)
WHEELS = ("onnxruntime==1.22.*", "numpy<2.3", "psutil")
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64")


def run(command: list[str], show: bool = True, **kwargs: object) -> None:
    if show:
        print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def ensure_qemu_and_arm64_lists() -> None:
    if shutil.which("qemu-aarch64-static") is None:
        run(
            ["apt-get", "install", "-y", "-qq", "qemu-user-static"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout.split()
    if "arm64" not in foreign:
        run(["dpkg", "--add-architecture", "arm64"])
        run(["apt-get", "update", "-qq"])


def unpack_python(folder: Path) -> None:
    debs = folder / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    run(["apt-get", "download", "-qq", *(f"{package}:arm64" for package in DEBIAN_PACKAGES)], cwd=debs)
    sysroot = folder / "sysroot"
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg", "-x", str(deb), str(sysroot)], show=False)


def unpack_wheels(folder: Path) -> None:
    wheels = folder / "wheels"
    platforms = [argument for platform in WHEEL_PLATFORMS for argument in ("--platform", platform)]
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            *platforms,
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "-d",
            str(wheels),
            *WHEELS,
        ]
    )
    site = folder / "site"
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)


def why_not_here() -> str | None:
    """Why this host cannot set it up (None: it can try)."""
    if shutil.which("qemu-aarch64-static") is None and os.geteuid() != 0:
        return "qemu-user-static is not installed and installing it needs root"
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "no apt-get/dpkg (Debian's arm64 packages are fetched with them)"
    if os.geteuid() != 0:
        foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True)
        if "arm64" not in foreign.stdout.split():
            return "dpkg does not list arm64 yet and adding it needs root"
    return None


def check(folder: Path) -> None:
    run(
        [
            "qemu-aarch64-static",
            "-L",
            str(folder / "sysroot"),
            str(folder / "sysroot" / "usr" / "bin" / PYTHON),
            "-c",
            "import platform, onnxruntime; print('aarch64 Python ready:', platform.machine(), "
            "'onnxruntime', onnxruntime.__version__)",
        ],
        env={**os.environ, "PYTHONPATH": str(folder / "site")},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="where to set it up (default %(default)s)")
    parser.add_argument(
        "--if-possible", action="store_true", help="where it cannot be set up, say why and exit 0 (for test set-up)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    folder = args.folder.expanduser().resolve()
    if (folder / "sysroot" / "usr" / "bin" / PYTHON).exists() and (folder / "site" / "onnxruntime").is_dir():
        print(f"{folder} is already set up")
    else:
        missing = why_not_here()
        if missing and args.if_possible:
            print(f"aarch64 Python not set up: {missing}; the emulated-aarch64 tests will skip")
            return 0
        if missing:
            print(f"cannot set up an aarch64 Python here: {missing}", file=sys.stderr)
            return 1
        try:
            ensure_qemu_and_arm64_lists()
            unpack_python(folder)
            unpack_wheels(folder)
        except (subprocess.CalledProcessError, OSError) as error:
            shutil.rmtree(folder, ignore_errors=True)  # never leave a half-made folder that looks set up
            if args.if_possible:
                print(f"aarch64 Python not set up: {error}; the emulated-aarch64 tests will skip")
                return 0
            raise
    check(folder)
    print(f"set up in {time.monotonic() - started:.0f} s; use it with --remote qemu-aarch64:{folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
