from targets.host.fingerprint import _is_emulated, fingerprint_host, normalize_isa


def test_fingerprint_has_what_decides_speed():
    host = fingerprint_host()
    data = host.as_dict()
    for key in (
        "cpu_model",
        "isa",
        "cpu_flags",
        "physical_cores",
        "logical_cores",
        "memory_bytes",
        "python",
        "cpu_governor",
        "load_average_1m",
        "gpus",
        "libraries",
        "emulated",
    ):
        assert key in data
    assert host.logical_cores >= host.physical_cores >= 1
    assert host.memory_bytes > 0
    assert {"onnxruntime", "onnx", "numpy"} <= set(host.libraries)


def test_isa_spellings():
    assert normalize_isa("AMD64") == "x86_64"
    assert normalize_isa("arm64") == "aarch64"


def test_qemu_user_emulation_is_recognised():
    # under qemu-user an aarch64 Python reads the x86 host's /proc/cpuinfo
    assert _is_emulated("aarch64", {"vendor_id": "AuthenticAMD"})
    assert not _is_emulated("aarch64", {"cpu implementer": "0x41"})
    assert not _is_emulated("x86_64", {"vendor_id": "GenuineIntel"})


def test_nvidia_smi_answers_are_parsed_without_a_gpu():
    """Canned nvidia-smi answers (an H100 and an older card whose driver answers [N/A]); no GPU needed."""
    from targets.host.fingerprint import clock_event_reason_names, parse_gpu_listing, with_gpu_clocks

    listing = "NVIDIA H100 80GB HBM3, 9.0, 580.65.06, 81559\nTesla T4, [N/A], 470.82.01, [N/A]\n"
    h100, t4 = parse_gpu_listing(listing)
    assert (h100.name, h100.compute_capability, h100.driver) == ("NVIDIA H100 80GB HBM3", "9.0", "580.65.06")
    assert h100.memory_bytes == 81559 * 1024 * 1024
    assert t4.compute_capability is None and t4.memory_bytes is None
    clocks = "1980, 1980, 2619, 0x0000000000000000\n585, 1590, 5000, 0x0000000000000044\n"
    h100, t4 = with_gpu_clocks((h100, t4), clocks)
    assert (h100.sm_clock_mhz, h100.max_sm_clock_mhz, h100.memory_clock_mhz) == (1980, 1980, 2619)
    assert h100.clock_event_reasons == () and h100.slowed_down == ()
    assert t4.clock_event_reasons == ("sw_power_cap", "hw_thermal_slowdown")
    assert t4.slowed_down == t4.clock_event_reasons
    assert clock_event_reason_names("0x1") == ("gpu_idle",) and clock_event_reason_names("[N/A]") == ()
    # an idle card is not a slowed-down one; a missing clocks answer keeps the GPU listed
    (idle,) = with_gpu_clocks(parse_gpu_listing(listing)[:1], "345, 1980, 2619, 0x0000000000000001")
    assert idle.slowed_down == ()
    assert with_gpu_clocks(parse_gpu_listing(listing), "") == parse_gpu_listing(listing)
