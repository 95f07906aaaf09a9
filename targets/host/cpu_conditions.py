"""What the CPU side of a host looks like while a cell is timed, from Linux's sysfs: which CPUs are the
fast ones (big cores first on big.LITTLE boards), the cpufreq governor and clocks of the pinned CPUs,
and the thermal zones' temperatures. The worker reads them when timing starts and when it ends; a
cell that ended hot or with its CPUs clocked well below their maximum carries a warning. Everything
here reads files only and says nothing where the kernel exposes nothing (containers, VMs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SYS_CPU = Path("/sys/devices/system/cpu")
SYS_THERMAL = Path("/sys/class/thermal")
# boards throttle from about here (Raspberry Pi 5: soft limit 80 C, hard 85 C; Jetson and phones near 90 C)
HOT_C = 80.0
# a loaded CPU clocked below this share of its maximum was held down (thermal or power)
SLOW_CLOCK_SHARE = 0.9


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_capacities(root: Path = SYS_CPU) -> dict[int, int]:
    """Each CPU's relative capacity where the kernel says (big.LITTLE, DynamIQ); {} elsewhere."""
    capacities = {}
    for folder in root.glob("cpu[0-9]*"):
        capacity = _read_int(folder / "cpu_capacity")
        if capacity is not None:
            capacities[int(folder.name[3:])] = capacity
    return capacities


def fastest_first(cpus: Iterable[int], capacities: dict[int, int]) -> list[int]:
    """The CPUs with the highest capacity first (ties and unknowns by number), so a profile that pins
    4 cores of an 8-core big.LITTLE board gets the 4 big ones."""
    return sorted(cpus, key=lambda cpu: (-capacities.get(cpu, 0), cpu))


def thermal_zones(root: Path = SYS_THERMAL) -> dict[str, float]:
    """Temperature in C of every thermal zone, by its type (x86_pkg_temp, cpu-thermal, ...)."""
    temperatures: dict[str, float] = {}
    for folder in sorted(root.glob("thermal_zone[0-9]*")):
        millidegrees = _read_int(folder / "temp")
        if millidegrees is None:
            continue
        name = _read_text(folder / "type") or folder.name
        if name in temperatures:
            name = f"{name}-{folder.name.removeprefix('thermal_zone')}"
        temperatures[name] = millidegrees / 1000.0
    return temperatures


@dataclass(frozen=True)
class CpuConditions:
    """One reading: governor and current/maximum clock (kHz) per pinned CPU, thermal zones in C."""

    governors: dict[int, str] = field(default_factory=dict)
    clocks_khz: dict[int, tuple[int, int]] = field(default_factory=dict)  # cpu -> (current, maximum)
    temperatures_c: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "governors": {str(cpu): name for cpu, name in self.governors.items()},
            "clocks_mhz": {str(cpu): [now // 1000, top // 1000] for cpu, (now, top) in self.clocks_khz.items()},
            "temperatures_c": self.temperatures_c,
        }


def read_conditions(cpus: Iterable[int], cpu_root: Path = SYS_CPU, thermal_root: Path = SYS_THERMAL) -> CpuConditions:
    governors, clocks = {}, {}
    for cpu in cpus:
        folder = cpu_root / f"cpu{cpu}" / "cpufreq"
        governor = _read_text(folder / "scaling_governor")
        if governor:
            governors[cpu] = governor
        now, top = _read_int(folder / "scaling_cur_freq"), _read_int(folder / "cpuinfo_max_freq")
        if now and top:
            clocks[cpu] = (now, top)
    return CpuConditions(governors, clocks, thermal_zones(thermal_root))


def condition_warnings(start: CpuConditions, end: CpuConditions, check_clocks: bool) -> list[str]:
    """Warnings for a cell timed between two readings: hot at the end, loaded CPUs clocked down at the
    end (`check_clocks`: on aarch64 boards, whose maximum is their nominal clock; an x86 maximum is a
    turbo clock that all-core load rarely holds, so there it would cry wolf), or the governor changed."""
    warnings = []
    hot = {zone: value for zone, value in end.temperatures_c.items() if value >= HOT_C}
    if hot:
        zones = ", ".join(f"{zone} {value:.0f} C" for zone, value in sorted(hot.items()))
        began = max(start.temperatures_c.values(), default=None)
        since = f" (the hottest zone read {began:.0f} C when timing began)" if began is not None else ""
        warnings.append(
            f"hot: {zones} at the end of timing, at or above {HOT_C:.0f} C where boards throttle{since}; "
            "let the board cool down or add cooling before trusting this cell"
        )
    slow = {cpu: clock for cpu, clock in end.clocks_khz.items() if clock[0] < SLOW_CLOCK_SHARE * clock[1]}
    slow = slow if check_clocks else {}
    if slow:
        listed = ", ".join(f"cpu{cpu} {now // 1000}/{top // 1000} MHz" for cpu, (now, top) in sorted(slow.items()))
        warnings.append(
            f"throttled: pinned CPUs ran below {SLOW_CLOCK_SHARE:.0%} of their maximum clock at the end of timing "
            f"({listed}): thermal or power limits, or a power-saving governor"
        )
    changed = {cpu for cpu in end.governors if start.governors.get(cpu) not in (None, end.governors[cpu])}
    if changed:
        warnings.append(
            "governor changed while timing: "
            + ", ".join(f"cpu{cpu} {start.governors[cpu]} -> {end.governors[cpu]}" for cpu in sorted(changed))
        )
    return warnings


def fastest_cpus_here() -> list[int]:
    """The CPUs this process may run on, fastest first (big cores before little ones)."""
    return fastest_first(available_cpus_here(), cpu_capacities())


def available_cpus_here() -> set[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))
