"""Fingerprint of the host: what decides speed (CPU, flags, cores, memory, GPUs, library versions).

Reading the host is a separate, named step: nothing here runs at import time, and nothing here
imports torch or onnxruntime (versions come from package metadata).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

# CPU flags that decide which kernels a runtime can use (int8 dot products, wide vectors, AMX).
SPEED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "f16c",
    # aarch64
    "asimd",
    "asimdhp",
    "asimddp",
    "i8mm",
    "sve",
    "sve2",
    "bf16",
)
LIBRARIES = ("onnxruntime", "onnxruntime-gpu", "onnx", "torch", "torchvision", "numpy", "tensorrt")
NVIDIA_SMI_TIMEOUT_S = 10


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str | None
    driver: str | None
    memory_bytes: int | None


@dataclass(frozen=True)
class HostFingerprint:
    hostname: str
    os: str
    isa: str
    cpu_model: str
    cpu_flags: tuple[str, ...]
    physical_cores: int
    logical_cores: int
    memory_bytes: int
    python: str
    cpu_governor: str | None
    load_average_1m: float | None
    emulated: bool
    gpus: tuple[GpuInfo, ...] = ()
    libraries: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cpu_flags"] = list(self.cpu_flags)
        data["gpus"] = [asdict(gpu) for gpu in self.gpus]
        return data

    def identity(self) -> tuple[str, ...]:
        """What must match for two measurements to count as taken on the same machine."""
        return (
            self.isa,
            self.cpu_model,
            str(self.logical_cores),
            *(gpu.name for gpu in self.gpus),
        )


def normalize_isa(machine: str) -> str:
    """Map the many spellings of an architecture onto x86_64 / aarch64."""
    lowered = machine.lower()
    if lowered in ("x86_64", "amd64", "x64"):
        return "x86_64"
    if lowered in ("aarch64", "arm64", "armv8", "armv8l"):
        return "aarch64"
    return lowered


def _cpuinfo_fields() -> dict[str, str]:
    """First processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _cpu_model(cpuinfo: dict[str, str]) -> str:
    for key in ("model name", "hardware", "cpu model", "processor"):
        value = cpuinfo.get(key, "")
        if value and not value.isdigit():
            return value
    return platform.processor() or platform.machine()


def _cpu_flags(cpuinfo: dict[str, str]) -> tuple[str, ...]:
    present = set((cpuinfo.get("flags") or cpuinfo.get("features") or "").split())
    return tuple(flag for flag in SPEED_FLAGS if flag in present)


def _is_emulated(isa: str, cpuinfo: dict[str, str]) -> bool:
    """True under user-mode emulation: qemu-user shows the real (foreign) host CPU in /proc."""
    vendor = cpuinfo.get("vendor_id", "")
    if isa == "aarch64" and vendor in ("GenuineIntel", "AuthenticAMD"):
        return True
    if isa == "x86_64" and "cpu implementer" in cpuinfo:
        return True
    return False


def _cpu_governor() -> str | None:
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        return None


def load_average_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide speed, from package metadata."""
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def detect_gpus() -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs as nvidia-smi reports them; () where there is no driver or no tool."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return ()
    query = "name,compute_cap,driver_version,memory.total"
    try:
        completed = subprocess.run(
            [tool, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if completed.returncode != 0:
        return ()
    gpus = []
    for line in completed.stdout.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4:
            continue
        memory_mib = parts[3]
        gpus.append(
            GpuInfo(
                name=parts[0],
                compute_capability=parts[1] or None,
                driver=parts[2] or None,
                memory_bytes=int(float(memory_mib) * 1024 * 1024) if memory_mib.replace(".", "").isdigit() else None,
            )
        )
    return tuple(gpus)


def fingerprint_host() -> HostFingerprint:
    """Read this host's fingerprint (takes a few milliseconds; nvidia-smi when present)."""
    cpuinfo = _cpuinfo_fields()
    isa = normalize_isa(platform.machine())
    return HostFingerprint(
        hostname=platform.node(),
        os=f"{platform.system()} {platform.release()}",
        isa=isa,
        cpu_model=_cpu_model(cpuinfo),
        cpu_flags=_cpu_flags(cpuinfo),
        physical_cores=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        memory_bytes=psutil.virtual_memory().total,
        python=sys.version.split()[0],
        cpu_governor=_cpu_governor(),
        load_average_1m=load_average_1m(),
        emulated=_is_emulated(isa, cpuinfo),
        gpus=detect_gpus(),
        libraries=library_versions(),
    )
