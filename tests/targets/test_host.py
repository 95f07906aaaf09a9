from targets.host import _is_emulated, fingerprint_host, normalize_isa


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
