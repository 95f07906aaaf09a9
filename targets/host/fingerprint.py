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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from targets.host.cpu_conditions import thermal_zones

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
LIBRARIES = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "torch",
    "torchvision",
    "numpy",
    "tensorrt",
    # the CUDA runtime, cuDNN and cuSPARSELt that torch's and onnxruntime-gpu's wheels load (by CUDA major)
    "nvidia-cuda-runtime",
    "nvidia-cuda-runtime-cu12",
    "nvidia-cudnn-cu13",
    "nvidia-cudnn-cu12",
    "nvidia-cusparselt-cu13",
    "nvidia-cusparselt-cu12",
)
NVIDIA_SMI_TIMEOUT_S = 10


# NVML's clock event ("throttle") reason bits, as nvidia-smi's clocks_event_reasons.active reports them
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# reasons that mean the clocks were held below what the card can do while it worked
SLOWDOWN_REASONS = frozenset(CLOCK_EVENT_REASONS.values()) - {"gpu_idle", "applications_clocks_setting"}
GPU_QUERY = "name,compute_cap,driver_version,memory.total"
GPU_CLOCKS_QUERY = "clocks.sm,clocks.max.sm,clocks.mem,clocks_event_reasons.active"


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str | None
    driver: str | None
    memory_bytes: int | None
    sm_clock_mhz: int | None = None
    max_sm_clock_mhz: int | None = None
    memory_clock_mhz: int | None = None
    clock_event_reasons: tuple[str, ...] = ()  # when the fingerprint was taken; () = none active

    @property
    def slowed_down(self) -> tuple[str, ...]:
        return tuple(reason for reason in self.clock_event_reasons if reason in SLOWDOWN_REASONS)


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
    remote: str | None = None  # ssh://... when the machine was reached over SSH (--remote); None: this host
    thermal_c: dict[str, float] = field(default_factory=dict)  # thermal zones when the fingerprint was taken

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cpu_flags"] = list(self.cpu_flags)
        data["gpus"] = [asdict(gpu) for gpu in self.gpus]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostFingerprint:
        """The fingerprint `as_dict` wrote (a remote board's, sent back as JSON)."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["cpu_flags"] = tuple(known.get("cpu_flags") or ())
        known["gpus"] = tuple(
            GpuInfo(**{**gpu, "clock_event_reasons": tuple(gpu.get("clock_event_reasons") or ())})
            for gpu in known.get("gpus") or ()
        )
        known["libraries"] = dict(known.get("libraries") or {})
        known["thermal_c"] = dict(known.get("thermal_c") or {})
        return cls(**known)

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


# aarch64 /proc/cpuinfo names no model: its "CPU implementer" and "CPU part" do (the boards users ship to)
ARM_CORES = {
    ("0x41", "0xd03"): "ARM Cortex-A53",
    ("0x41", "0xd05"): "ARM Cortex-A55",
    ("0x41", "0xd08"): "ARM Cortex-A72",
    ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd41"): "ARM Cortex-A78",
    ("0x41", "0xd42"): "ARM Cortex-A78AE",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
    ("0x61", "0x022"): "Apple M1 (Icestorm)",
    ("0x61", "0x023"): "Apple M1 (Firestorm)",
}


def _cpu_model(cpuinfo: dict[str, str]) -> str:
    for key in ("model name", "hardware", "cpu model"):
        value = cpuinfo.get(key, "")
        if value and not value.isdigit():
            return value
    implementer, part = cpuinfo.get("cpu implementer", ""), cpuinfo.get("cpu part", "")
    if implementer and part:
        name = ARM_CORES.get((implementer.lower(), part.lower()), "ARM core")
        return f"{name} (implementer {implementer}, part {part})"
    value = cpuinfo.get("processor", "")
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
    """NVIDIA GPUs as nvidia-smi reports them; () where there is no driver or no tool. Clocks and
    clock event reasons come from a second query, so a driver that lacks those fields still lists
    its GPUs."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return ()
    listing = _nvidia_smi_query(tool, GPU_QUERY)
    if listing is None:
        return ()
    gpus = parse_gpu_listing(listing)
    clocks = _nvidia_smi_query(tool, GPU_CLOCKS_QUERY)
    return with_gpu_clocks(gpus, clocks) if clocks is not None else gpus


def _nvidia_smi_query(tool: str, query: str) -> str | None:
    try:
        completed = subprocess.run(
            [tool, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


def parse_gpu_listing(stdout: str) -> tuple[GpuInfo, ...]:
    """GPUs from `nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total` (csv, no units)."""
    gpus = []
    for line in stdout.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4:
            continue
        gpus.append(
            GpuInfo(
                name=parts[0],
                compute_capability=_known(parts[1]),
                driver=_known(parts[2]),
                memory_bytes=int(float(parts[3]) * 1024 * 1024) if _number(parts[3]) is not None else None,
            )
        )
    return tuple(gpus)


def with_gpu_clocks(gpus: tuple[GpuInfo, ...], stdout: str) -> tuple[GpuInfo, ...]:
    """Add SM/memory clocks and active clock event reasons (GPU_CLOCKS_QUERY's answer, one line per GPU)."""
    lines = stdout.strip().splitlines()
    updated = []
    for index, gpu in enumerate(gpus):
        parts = [part.strip() for part in lines[index].split(",")] if index < len(lines) else []
        if len(parts) < 4:
            updated.append(gpu)
            continue
        sm, max_sm, memory = (_number(part) for part in parts[:3])
        updated.append(
            replace(
                gpu,
                sm_clock_mhz=int(sm) if sm is not None else None,
                max_sm_clock_mhz=int(max_sm) if max_sm is not None else None,
                memory_clock_mhz=int(memory) if memory is not None else None,
                clock_event_reasons=clock_event_reason_names(parts[3]),
            )
        )
    return tuple(updated)


def clock_event_reason_names(mask_text: str) -> tuple[str, ...]:
    """The names of the bits set in nvidia-smi's hex mask (e.g. "0x0000000000000044"); () when unknown."""
    try:
        mask = int(mask_text, 16)
    except ValueError:
        return ()
    return tuple(name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit)


def _known(text: str) -> str | None:
    return None if not text or text.startswith("[") or text in ("N/A", "[N/A]") else text


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


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
        thermal_c=thermal_zones(),
    )
