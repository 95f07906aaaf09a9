"""gate end to end on a tiny torch source (real variants and A/B runs): exit codes for accept,
reject and config errors, skipped targets, regressions, JUnit XML and the markdown summary."""

import json
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest

from harness.cli import EXIT_CELL_FAILED, EXIT_OK, EXIT_USAGE, main
from harness.verdict.gate import load_gate_config
from targets.errors import SpeedproofError
from tests.helpers import FAST_POLICY_TOML, TINY_CNN

FAST = "\n" + FAST_POLICY_TOML


def _config(tmp_path, checks, extra=FAST):
    path = tmp_path / "speedproof.toml"
    path.write_text(checks + extra)
    return path


def _run(tmp_path, config, *flags):
    out = tmp_path / "results"
    code = main(["gate", "--config", str(config), "--out", str(out), *flags])
    records = sorted(out.glob("*.json"))
    return code, (json.loads(records[-1].read_text()) if records else None), out


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gate")
    # the threshold is met by nothing (identity) and by anything faster than 1% of the baseline's speed
    config = _config(
        tmp_path,
        f"""
[[check]]
model = "{TINY_CNN}"
recipes = ["identity", "structured:0.5"]
required = ["structured:0.5"]
threads = 1
targets = ["x86-cpu", "cuda-gpu", "arm-edge"]
[check.policy]
min_speedup = 0.01
""",
    )
    return _run(tmp_path, config)


def test_gate_passes_when_every_required_variant_is_accepted(gate_run):
    code, record, out = gate_run
    assert code == EXIT_OK and record["gate"]["exit_code"] == 0 and record["gate"]["failures"] == []
    cells = {(cell["target"], cell["variant"]): cell for cell in record["cells"]}
    assert cells[("x86-cpu", "structured:0.5")]["verdict"]["decision"] == "ACCEPT"
    assert cells[("x86-cpu", "identity")]["verdict"]["decision"] == "REJECT"  # not required: does not fail
    assert record["policies"]["check 0 on x86-cpu"]["min_speedup"] == 0.01


def test_targets_this_host_cannot_run_are_skipped_with_the_reason(gate_run):
    _, record, _ = gate_run
    skipped = {item["target"]: item["reason"] for item in record["gate"]["skipped"]}
    assert "arm-edge" in skipped and "aarch64" in skipped["arm-edge"]
    assert "cuda-gpu" in skipped or any(cell["target"] == "cuda-gpu" for cell in record["cells"])


def test_junit_xml_parses_and_carries_the_reasons(gate_run):
    _, record, out = gate_run
    root = ET.parse(next(out.glob("*.xml"))).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(record["cells"])
    skipped_messages = [case.find("skipped").get("message") for case in cases if case.find("skipped") is not None]
    assert any("arm-edge cannot run here" in message for message in skipped_messages)
    # identity is rejected but not required: reported as skipped with its reasons, not as a failure
    identity = [m for m in skipped_messages if m.startswith("REJECT")]
    assert identity and "(not required)" in identity[0]
    assert not root.findall(".//failure")


def test_markdown_summary_is_written_and_appended_to_the_step_summary(tmp_path, monkeypatch):
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    config = _config(
        tmp_path, f'[[check]]\nmodel = "{TINY_CNN}"\nrecipes = ["identity"]\nrequired = ["identity"]\nthreads = 1\n'
    )
    code, record, out = _run(tmp_path, config)
    assert code == EXIT_CELL_FAILED  # identity is required and is always rejected
    assert record["gate"]["failures"][0].startswith("required tiny_cnn identity on x86-cpu was rejected")
    summary = step_summary.read_text()
    assert summary.startswith("earlier step\n") and "**gate failed**" in summary and "| identity" in summary
    assert next(out.glob("*.md")).read_text() in summary
    failures = ET.parse(next(out.glob("*.xml"))).getroot().findall(".//failure")
    assert len(failures) == 1 and failures[0].get("message").startswith("REJECT")
    # an A/A-like pair: the interval holds 1.0 or lies (by chance, rarely) just beside it
    assert any(code in (failures[0].text or "") for code in ("NO_REAL_SPEEDUP", "INCONCLUSIVE", "SLOWER"))


def test_config_errors_exit_2_and_name_the_file_and_key(tmp_path, capsys):
    config = _config(tmp_path, f'[[check]]\nmodel = "{TINY_CNN}"\nrecipe = ["identity"]\n')
    code, record, _ = _run(tmp_path, config)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and record is None
    assert "speedproof.toml: unknown key 'recipe' in check[0] (did you mean \"recipes\"?)" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[check]]\nmodel = "m"\nrecipes = ["structurd:0.5"]\n', "check[0].recipes: unknown recipe 'structurd'"),
        ('[[check]]\nmodel = "m"\nrecipes = ["identity"]\nrequired = ["fp16"]\n', "required names 'fp16'"),
        ('[[check]]\nmodel = "m"\nrecipes = ["identity"]\ntargets = ["x86"]\n', "unknown target 'x86'"),
        ('[[check]]\nmodel = "m"\nrecipes = ["identity"]\ninput_shape = "1x3"\n', "input_shape = '1x3'"),
        ('[[check]]\nmodel = "m"\nrecipes = ["identity"]\n[policy]\nmin_speedup = -1\n', "min_speedup = -1"),
        ("[policy]\nmin_speedup = 1.2\n", "no [[check]] tables"),
        (
            '[[check]]\nmodel = "m"\nrecipes = ["identity"]\ntargets = ["x86-cpu"]\nbackend = "tensorrt"\n',
            "check[0].targets: target x86-cpu",
        ),
        ('[[check]]\nmodel = "m"\nrecipes = ["identity"]\nbackend = "tensorflow"\n', "unknown backend 'tensorflow'"),
        ('[[check]]\nmodel = "m"\nrecipes = ["identity"]\nbackend = 3\n', "check[0].backend = 3"),
        ('[[check]]\nmodel = "m"\nrecipes = ["identity"]\nbackend = "torch:mode=turbo"\n', "mode='turbo'; valid:"),
        (
            '[[check]]\nmodel = "m"\nrecipes = ["identity"]\nbackend = "onnxruntime,openvino:num_streamz=2"\n',
            "unknown option 'num_streamz'",
        ),
        (
            '[[check]]\nmodel = "m"\nrecipes = ["identity"]\ntargets = ["x86-cpu"]\n'
            'backend = "onnxruntime,onnxruntime"\n',
            "names onnxruntime more than once",
        ),
        ('[[checks]]\nmodel = "m"\n', "unknown top-level key 'checks' (did you mean \"check\"?)"),
    ],
)
def test_config_validation(tmp_path, text, message):
    """Each check's values are refused with the file, the key and what is valid, before anything runs."""
    path = tmp_path / "gate.toml"
    path.write_text(text)
    with pytest.raises(SpeedproofError) as error:
        load_gate_config(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_require_all_targets_turns_a_skip_into_a_failure(tmp_path, tiny_conv_onnx):
    config = _config(
        tmp_path, f'[[check]]\nmodel = "{tiny_conv_onnx}"\nrecipes = ["identity"]\ntargets = ["arm-edge"]\n'
    )
    code, record, _ = _run(tmp_path, config, "--require-all-targets")
    assert code == EXIT_CELL_FAILED
    assert any("--require-all-targets" in failure for failure in record["gate"]["failures"])
    # without the flag nothing was verified at all, which is a failure too, never a silent pass
    code, record, _ = _run(tmp_path, config)
    assert code == EXIT_CELL_FAILED and "nothing was verified" in record["gate"]["failures"][-1]


def test_regression_against_a_stored_record_and_the_host_check(tmp_path, gate_run):
    _, stored, out = gate_run
    stored_path = next(out.glob("*.json"))
    # pretend the stored run measured structured:0.5 a thousand times faster
    boosted = json.loads(stored_path.read_text())
    for cell in boosted["cells"]:
        if cell["variant"] == "structured:0.5" and cell.get("speedup"):
            cell["speedup"]["ratio"] *= 1000
    boosted_path = tmp_path / "boosted.json"
    boosted_path.write_text(json.dumps(boosted))
    config = _config(
        tmp_path,
        f"""
[[check]]
model = "{TINY_CNN}"
recipes = ["structured:0.5"]
threads = 1
targets = ["x86-cpu"]
[check.policy]
min_speedup = 0.01
""",
    )
    code, record, _ = _run(tmp_path, config, "--baseline", str(boosted_path))
    assert code == EXIT_CELL_FAILED
    assert "below the stored" in record["gate"]["regressions"][0]["message"]

    other_host = json.loads(stored_path.read_text())
    other_host["host"]["cpu_model"] = "Some Other CPU"
    # a stored 1.00x: this run's structured:0.5 (clearly faster) cannot fall 5% below it, whatever the
    # noise of two short A/B runs minutes apart (their ratios differed by more than 5% under load)
    for cell in other_host["cells"]:
        if cell["variant"] == "structured:0.5" and cell.get("speedup"):
            cell["speedup"]["ratio"] = 1.0
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other_host))
    code, _, _ = _run(tmp_path, config, "--baseline", str(other_path))
    assert code == EXIT_USAGE
    code, record, _ = _run(tmp_path, config, "--baseline", str(other_path), "--allow-other-host")
    assert code == EXIT_OK and record["gate"]["regressions"] == [], record["gate"]


def test_a_check_measures_with_the_backend_it_names(tmp_path):
    config = _config(
        tmp_path, f'[[check]]\nmodel = "{TINY_CNN}"\nrecipes = ["identity"]\nbackend = "torch"\nthreads = 1\n'
    )
    code, record, out = _run(tmp_path, config)
    assert code == EXIT_OK  # nothing is required: the REJECT of identity is reported, not gated
    cells = {cell["variant"]: cell for cell in record["cells"]}
    assert {cell["backend"] for cell in cells.values()} == {"torch"}
    assert cells["identity"]["status"] == "ok" and cells["identity"]["artifact"]["path"].endswith(".pt2")
    assert cells["identity"]["verdict"]["decision"] == "REJECT"


def test_checks_on_different_devices_are_measured_at_the_same_time_and_each_device_in_order():
    """Stand-in runners and measurements (the order and overlap are the point, not what is measured):
    two devices meet at a barrier, which only passes when both measure at once."""
    import threading

    from harness.verdict.gate import CheckRun, PlannedCheck, _measure_per_device

    board, worker = SimpleNamespace(shares_this_host=False), SimpleNamespace(shares_this_host=False)
    both_measuring = threading.Barrier(2, timeout=30)
    order: list[str] = []

    def measured(name, meet=False):
        def measure():
            if meet:
                both_measuring.wait()
            order.append(name)
            return CheckRun(0, name, [])

        return measure

    planned = [
        PlannedCheck(board, measured("board-1", meet=True)),
        CheckRun(1, "skipped", []),
        PlannedCheck(worker, measured("worker-1", meet=True)),
        PlannedCheck(board, measured("board-2")),
    ]
    runs = _measure_per_device(planned)
    assert [run.target for run in runs] == ["board-1", "skipped", "worker-1", "board-2"]
    assert order.index("board-1") < order.index("board-2")


def test_runners_on_this_hosts_cpus_take_turns_while_a_remote_device_measures_beside_them():
    """Stand-ins again: this host and an emulated board share this host's CPUs, so they must never
    measure at once (each would time the other's load); a remote board may measure beside either."""
    import threading
    import time

    from harness.verdict.gate import CheckRun, PlannedCheck, _measure_per_device

    here, emulated = SimpleNamespace(shares_this_host=True), SimpleNamespace(shares_this_host=True)
    board = SimpleNamespace(shares_this_host=False)
    this_host_busy = threading.Lock()
    board_started = threading.Event()
    overlaps: list[str] = []

    def on_this_host(name):
        def measure():
            if not this_host_busy.acquire(blocking=False):
                overlaps.append(name)
                return CheckRun(0, name, [])
            try:
                assert board_started.wait(timeout=30)  # the board measures meanwhile
                time.sleep(0.3)  # long enough for a wrongly concurrent turn to start and see the lock
            finally:
                this_host_busy.release()
            return CheckRun(0, name, [])

        return measure

    def on_board():
        board_started.set()
        return CheckRun(0, "board", [])

    planned = [
        PlannedCheck(here, on_this_host("here")),
        PlannedCheck(emulated, on_this_host("emulated")),
        PlannedCheck(board, on_board),
    ]
    runs = _measure_per_device(planned)
    assert [run.target for run in runs] == ["here", "emulated", "board"]
    assert overlaps == []
