"""CPU conditions from sysfs: big cores first, thermal zones, clocks and governors, and the warnings a
cell gets. This x86 container exposes neither cpufreq nor thermal zones, so the tests build the
sysfs layout of an 8-core big.LITTLE board (RK3588-like: 4 x A55 + 4 x A76) in a folder and read it
with the same code; the real /sys is read as well, to show that nothing there is an error."""

from pathlib import Path

from targets.host.cpu_conditions import (
    CpuConditions,
    condition_warnings,
    cpu_capacities,
    fastest_first,
    read_conditions,
    thermal_zones,
)
from targets.host.fingerprint import _cpu_model


def _board(root: Path, temperatures=(45_000, 47_500), current_khz=2_400_000) -> tuple[Path, Path]:
    cpus, thermal = root / "cpu", root / "thermal"
    for cpu in range(8):
        folder = cpus / f"cpu{cpu}"
        (folder / "cpufreq").mkdir(parents=True)
        (folder / "cpu_capacity").write_text("414\n" if cpu < 4 else "1024\n")
        (folder / "cpufreq" / "scaling_governor").write_text("performance\n")
        (folder / "cpufreq" / "scaling_cur_freq").write_text(f"{current_khz if cpu >= 4 else 1_800_000}\n")
        (folder / "cpufreq" / "cpuinfo_max_freq").write_text("2400000\n" if cpu >= 4 else "1800000\n")
    for index, (name, value) in enumerate(zip(("soc-thermal", "bigcore0-thermal"), temperatures, strict=True)):
        zone = thermal / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(name + "\n")
        (zone / "temp").write_text(f"{value}\n")
    return cpus, thermal


def test_a_profile_pinning_four_cores_of_a_big_little_board_gets_the_big_ones(tmp_path):
    cpus, _ = _board(tmp_path)
    capacities = cpu_capacities(cpus)
    assert capacities == {0: 414, 1: 414, 2: 414, 3: 414, 4: 1024, 5: 1024, 6: 1024, 7: 1024}
    assert fastest_first(range(8), capacities)[:4] == [4, 5, 6, 7]
    assert fastest_first([3, 1, 2], {}) == [1, 2, 3]  # no capacities: by number


def test_readings_and_a_cool_unthrottled_cell_give_no_warning(tmp_path):
    cpus, thermal = _board(tmp_path)
    reading = read_conditions([4, 5], cpus, thermal)
    assert reading.governors == {4: "performance", 5: "performance"}
    assert reading.clocks_khz[4] == (2_400_000, 2_400_000)
    assert reading.temperatures_c == {"soc-thermal": 45.0, "bigcore0-thermal": 47.5}
    assert condition_warnings(reading, reading, check_clocks=True) == []
    assert reading.as_dict()["clocks_mhz"] == {"4": [2400, 2400], "5": [2400, 2400]}


def test_a_hot_throttled_cell_is_flagged(tmp_path):
    cool_cpus, cool_thermal = _board(tmp_path / "start")
    hot_cpus, hot_thermal = _board(tmp_path / "end", temperatures=(79_000, 85_200), current_khz=1_400_000)
    start, end = read_conditions([4, 5], cool_cpus, cool_thermal), read_conditions([4, 5], hot_cpus, hot_thermal)
    warnings = condition_warnings(start, end, check_clocks=True)
    assert warnings[0].startswith("hot: bigcore0-thermal 85 C at the end of timing")
    assert "read 48 C when timing began" in warnings[0]
    assert warnings[1].startswith("throttled: pinned CPUs ran below 90%") and "cpu4 1400/2400 MHz" in warnings[1]
    # x86 maxima are turbo clocks: not judged there
    assert [w for w in condition_warnings(start, end, check_clocks=False) if w.startswith("throttled")] == []


def test_a_governor_that_changed_while_timing_is_said():
    start = CpuConditions(governors={0: "performance"})
    end = CpuConditions(governors={0: "powersave"})
    assert condition_warnings(start, end, check_clocks=False) == [
        "governor changed while timing: cpu0 performance -> powersave"
    ]


def test_this_hosts_sysfs_reads_without_error():
    assert isinstance(thermal_zones(), dict) and isinstance(cpu_capacities(), dict)
    reading = read_conditions([0])
    assert all(value > -300 for value in reading.temperatures_c.values())  # degrees C, where there are zones


def test_arm_cores_are_named_from_implementer_and_part():
    rpi5 = {"processor": "0", "cpu implementer": "0x41", "cpu part": "0xd0b", "features": "fp asimd asimddp"}
    assert _cpu_model(rpi5) == "ARM Cortex-A76 (implementer 0x41, part 0xd0b)"
    unknown = {"processor": "0", "cpu implementer": "0x48", "cpu part": "0xd01"}
    assert _cpu_model(unknown) == "ARM core (implementer 0x48, part 0xd01)"
    assert _cpu_model({"model name": "AMD EPYC"}) == "AMD EPYC"
