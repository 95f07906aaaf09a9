"""verify end to end on a tiny torch source: real variants, real live workers, real A/B bursts."""

import json

import pytest

from harness.cli import EXIT_CELL_FAILED, EXIT_OK, EXIT_USAGE, main
from harness.verdict.verify import VerifyRequest, run_verify
from tests.helpers import FAST_POLICY, FAST_POLICY_FLAGS, FAST_PROTOCOL, TINY_CNN


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    request = VerifyRequest(
        model=TINY_CNN,
        recipes=("identity,structured:0.5,int8-dynamic,lowrank:0.5:min_features=100000",),
        threads=1,
        policy_overrides=FAST_POLICY,
        protocol=FAST_PROTOCOL,
        out_dir=out,
    )
    return run_verify(request)


def _cells(record):
    return {cell["variant"]: cell for cell in record["cells"]}


def test_every_variant_gets_a_verdict_with_speedup_and_quality(verified):
    record, path = verified
    cells = _cells(record)
    assert list(cells) == ["baseline", "identity", "structured:0.5", "int8-dynamic", "lowrank:0.5:min_features=100000"]
    assert cells["baseline"]["reference"] and cells["baseline"]["verdict"] is None
    for name in ("identity", "structured:0.5", "int8-dynamic"):
        cell = cells[name]
        assert cell["status"] == "ok", cell["error"]
        speedup = cell["speedup"]
        assert speedup["ci_low"] <= speedup["ratio"] <= speedup["ci_high"] and speedup["confidence"] == 0.95
        assert cell["verdict"]["decision"] in ("ACCEPT", "REJECT")
        assert cell["accuracy"] is not None and cell["fidelity"] is None  # tiny_cnn has labelled data
        assert cell["ab"]["pairs"] >= 1 and cell["memory"]["peak_rss_bytes"] > 0
    assert json.loads(path.read_text())["cells"] == record["cells"]
    assert record["policy"]["burst_duration_s"] == 0.05


def test_identity_is_rejected(verified):
    verdict = _cells(verified[0])["identity"]["verdict"]
    assert verdict["decision"] == "REJECT"
    assert {reason["code"] for reason in verdict["reasons"]} & {"NO_REAL_SPEEDUP", "INCONCLUSIVE", "SLOWER"}


def test_a_variant_that_changes_nothing_is_not_smaller_and_rejected(verified):
    """lowrank with a min_features no layer reaches leaves the model as it was."""
    verdict = _cells(verified[0])["lowrank:0.5:min_features=100000"]["verdict"]
    assert verdict["decision"] == "REJECT"


def test_a_failing_variant_is_rejected_as_failed_and_the_others_still_run(tmp_path):
    # a tiny_cnn without data cannot be fine-tuned: that variant fails to build
    record, _ = run_verify(
        VerifyRequest(
            model="tests.tiny_models:tiny_cnn_without_data",
            recipes=("structured:0.5:finetune=1,identity",),
            threads=1,
            policy_overrides=FAST_POLICY,
            protocol=FAST_PROTOCOL,
            out_dir=tmp_path,
        )
    )
    cells = _cells(record)
    failed = cells["structured:0.5:finetune=1"]["verdict"]
    assert failed["decision"] == "REJECT" and failed["reasons"][0]["code"] == "FAILED"
    assert "could not be built" in failed["reasons"][0]["message"]
    assert cells["identity"]["status"] == "ok"
    assert cells["identity"]["fidelity"] == 1.0  # no labels: fidelity to the baseline


def test_verify_command_prints_the_verdict_table_and_exits_1_on_a_rejection(tmp_path, capsys):
    code = main(
        ["verify", TINY_CNN, "--recipes", "identity", "--threads", "1", "--out", str(tmp_path), *FAST_POLICY_FLAGS]
    )
    out = capsys.readouterr().out
    assert code == EXIT_CELL_FAILED
    assert "speedup [CI]" in out and "REJECT" in out and "record written to" in out


def test_verify_command_rejects_a_bad_policy_file_before_building_anything(tmp_path, capsys):
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy]\nmin_sped = 1.2\n")
    code = main(["verify", TINY_CNN, "--recipes", "identity", "--policy", str(policy), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "policy.toml: unknown policy key 'min_sped'" in err and 'did you mean "min_speedup"' in err
    assert not list(tmp_path.glob("*.json"))


def test_a_throughput_requirement_runs_a_second_pair_at_its_batch(tmp_path, capsys):
    code = main(
        [
            "verify",
            TINY_CNN,
            "--recipes",
            "structured:0.5",
            "--throughput-batch-size",
            "4",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
            "--json",
            *FAST_POLICY_FLAGS,
        ]
    )
    assert code in (EXIT_OK, EXIT_CELL_FAILED)
    record = json.loads(capsys.readouterr().out)
    assert record["policy"]["throughput_batch_size"] == 4
    cell = _cells(record)["structured:0.5"]
    assert cell["status"] == "ok", cell["error"]
    second = cell["throughput_speedup"]
    assert second["batch_size"] == 4 and second["metric"] == "throughput"
    assert second["ci_low"] <= second["ratio"] <= second["ci_high"]
    assert cell["speedup"]["metric"] == "p50"
    verdict = cell["verdict"]
    said = [reason["message"] for reason in verdict["reasons"]] + verdict["notes"]
    assert any("throughput speedup" in text and "at batch 4" in text for text in said)
