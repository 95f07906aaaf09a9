"""Typed cells serialise to the record's JSON; failed and skipped cells have one constructor each."""

from harness.records.cells import NOT_MEASURED, CellKey, CellStatus, GatePlacement, VerdictCell
from harness.verdict.reasons import Decision, ReasonCode

KEY = CellKey("tiny", "structured:0.5", "onnxruntime", 1)


def test_a_failed_variant_cell_carries_a_failed_verdict_and_every_field():
    cell = VerdictCell.failed(KEY, "worker crashed with SIGSEGV").as_dict()
    assert cell["status"] == "failed" and cell["error"] == "worker crashed with SIGSEGV"
    assert cell["verdict"]["decision"] == Decision.REJECT
    assert cell["verdict"]["reasons"] == [{"code": "FAILED", "message": "worker crashed with SIGSEGV"}]
    assert {"speedup", "ab", "latency_ms", "memory", "accuracy", "fidelity", "warnings"} <= set(cell)
    assert "reference" not in cell and "check" not in cell


def test_a_failed_baseline_is_a_reference_without_a_verdict():
    cell = VerdictCell.failed(CellKey("tiny", "baseline", NOT_MEASURED, 1), "not found", reference=True).as_dict()
    assert cell["reference"] is True and cell["verdict"] is None and cell["backend"] == "-"


def test_a_skipped_gate_cell_says_why_and_whether_it_was_required():
    placement = GatePlacement(check=0, target="cuda-gpu", required=True)
    cell = VerdictCell.skipped(CellKey("tiny", "fp16", NOT_MEASURED, NOT_MEASURED), "no CUDA device", placement)
    assert cell.status == CellStatus.SKIPPED
    assert cell.as_dict() == {
        "check": 0,
        "target": "cuda-gpu",
        "model": "tiny",
        "variant": "fp16",
        "backend": "-",
        "batch_size": "-",
        "status": "skipped",
        "skipped": "no CUDA device",
        "required": True,
        "verdict": None,
    }


def test_reason_codes_are_their_strings():
    assert f"{ReasonCode.NO_REAL_SPEEDUP}" == "NO_REAL_SPEEDUP" == ReasonCode.NO_REAL_SPEEDUP
    assert all(code.meaning for code in ReasonCode)
